import { spawn } from 'node:child_process'
import { createServer, type Server } from 'node:net'
import { afterAll, afterEach, beforeAll, expect, inject, it } from 'vitest'
import { copyFixture, prepareConsumer, prepareJestConsumer } from '../support/consumer.js'
import { runJest } from '../support/jest-run.js'
import { TAG, TAG_ENV, expectNoLeftovers, releaseNamespaces, snapshotLeftovers } from '../support/leftovers.js'
import { describeWithOutside } from '../support/outside.js'
import { CLI, ROOT } from '../support/sandbox.js'
import { runVitest } from '../support/vitest-run.js'

// network: 'egress' end to end, on Vitest 5 and Jest 30: 4 files at once each reach the
// outside server (scripts/outside-network.sh) by address, by a `hosts` name and by a
// name only the host's resolver knows, each holds a port 3000 of its own, reaches a
// `hostPorts` listener on the host's loopback and is refused on another host port; no
// helper outlives the run (expectNoLeftovers: every process the run started). With an
// `egress` list, the same, and the host's address on the outside's link (reached without
// a list) refused at once.

/**
 * A listener on the host's loopback, a port nothing of ours listens on, and a listener on
 * the host's address on the outside's link (198.18.0.1: what egress reaches unless a list
 * leaves it out).
 */
function hostListeners(): () => Record<string, string> {
  let open: Server | undefined
  let openPort = 0
  let closedPort = 0
  let otherPort = 0
  beforeAll(async () => {
    const listen = async (address = '127.0.0.1') => {
      const server = createServer((socket) => socket.on('error', () => {}).end('host\n'))
      await new Promise<void>((resolve) => server.listen(0, address, resolve))
      return server
    }
    open = await listen()
    openPort = (open.address() as { port: number }).port
    // a second server of the host's, on its loopback, that no sandbox may reach
    const other = await listen()
    closedPort = (other.address() as { port: number }).port
    afterAll(() => void other.close())
    const link = await listen('198.18.0.1')
    otherPort = (link.address() as { port: number }).port
    afterAll(() => void link.close())
  })
  afterAll(() => void open?.close())
  return () => ({ E2E_HOST_PORT: String(openPort), E2E_CLOSED_PORT: String(closedPort), E2E_OTHER_PORT: String(otherPort) })
}

describeWithOutside("network: 'egress' on Vitest 5", () => {
  const env = hostListeners()
  let consumer: ReturnType<typeof prepareConsumer>
  beforeAll(() => {
    consumer = prepareConsumer(5, inject('tarball'))
  }, 300_000)
  afterEach(() => releaseNamespaces())

  it.each([
    ['4 files at once', ['--maxWorkers=4'], 'true', ''],
    ['one reused worker (isolate: false), a fresh egress network per file', ['--maxWorkers=1'], 'false', ''],
    // a name in the list: its address is reached, by address too; 198.18.0.1 is not
    ["4 files at once, egress: ['outside.vpr.test']", ['--maxWorkers=4'], 'true', 'outside.vpr.test'],
    ["one reused worker (isolate: false), egress: ['outside.vpr.test', '192.0.2.0/24']", ['--maxWorkers=1'], 'false', 'outside.vpr.test,192.0.2.0/24'],
  ])('reaches the outside by address and by name; own port 3000; host loopback closed but hostPorts; %s', async (_, args, isolate, egress) => {
    const root = copyFixture(consumer, 'egress')
    const before = snapshotLeftovers(consumer)
    const run = await runVitest(consumer, root, { args, env: { ...env(), E2E_ISOLATE: isolate, E2E_EGRESS: egress } })
    expect(run.output).toMatch(/Test Files\s+4 passed \(4\)/)
    expect(run.output).not.toContain('no DNS server is reachable')
    expect(run.code, run.output).toBe(0)
    await expectNoLeftovers(before, consumer)
  })

  // under isolate: false a file's keep-alive connections stay in node:http's agent and the
  // next file reuses them: each file's network's helper must outlive its file while one is open
  it('keeps the keep-alive connections earlier files opened to the outside working in the files after them (isolate: false, one worker), as forks does', async () => {
    const root = copyFixture(consumer, 'egress-keepalive')
    const before = snapshotLeftovers(consumer)
    for (const pool of ['forks', 'rootless']) {
      const run = await runVitest(consumer, root, { env: { E2E_POOL: pool } })
      expect(run.output, pool).toMatch(/Test Files\s+4 passed \(4\)/)
      expect(run.code, run.output).toBe(0)
    }
    await expectNoLeftovers(before, consumer)
  })
})

describeWithOutside("network: 'egress' on Jest 30", () => {
  const env = hostListeners()
  let consumer: ReturnType<typeof prepareJestConsumer>
  beforeAll(() => {
    consumer = prepareJestConsumer(30, inject('tarball'))
  }, 300_000)
  afterEach(() => releaseNamespaces())

  it.each([
    ['4 workers', ['--maxWorkers=4'], ''],
    ['one worker, a fresh egress network per file (-i)', ['-i'], ''],
    // an address in the list: reached by its names too; 198.18.0.1 is not
    ["4 workers, egress: ['198.18.0.2']", ['--maxWorkers=4'], '198.18.0.2'],
  ])('reaches the outside by address and by name; own port 3000; host loopback closed but hostPorts; %s', async (_, args, egress) => {
    const root = copyFixture(consumer, 'jest-egress')
    const before = snapshotLeftovers(consumer)
    const run = await runJest(consumer, root, { args, env: { ...env(), E2E_EGRESS: egress } })
    expect(run.output).toMatch(/Test Suites:\s+4 passed, 4 total/)
    expect(run.output).not.toContain('no DNS server is reachable')
    expect(run.code, run.output).toBe(0)
    await expectNoLeftovers(before, consumer)
  })
})

/** What each check of the CLI's command gives inside, one line each (an HTTP body, 'connected' or an error code). */
const EXEC_CHECKS = `
const http = require('node:http'), net = require('node:net')
const get = (url) => new Promise((resolve) => http.get(url, { timeout: 10000 }, (res) => {
  let data = ''; res.setEncoding('utf8').on('data', (d) => (data += d)).on('end', () => resolve(data.trim()))
}).on('error', (e) => resolve(e.code)))
const connect = (port, host) => new Promise((resolve) => {
  const start = Date.now(), socket = net.connect({ port, host })
  socket.once('connect', () => (socket.destroy(), resolve('connected')))
  socket.once('error', (e) => resolve(e.code + (Date.now() - start < 1000 ? '' : ' slowly')))
})
;(async () => {
  const own = net.createServer((s) => s.on('error', () => {}).end('own')).listen(3000, '127.0.0.1')
  await new Promise((resolve) => own.once('listening', resolve))
  const [hostPort, closedPort, otherPort] = process.argv.slice(1).map(Number)
  const said = [await get('http://198.18.0.2:8080/hello'), await get('http://outside.vpr.test:8080/hello'), await connect(3000, '127.0.0.1'),
    await connect(hostPort, '127.0.0.1'), await connect(closedPort, '127.0.0.1'), await connect(otherPort, '198.18.0.1')]
  own.close()
  console.log(said.join('\\n'))
})()`

/** `vitest-pool-rootless exec FLAGS -- node -e EXEC_CHECKS PORTS`, waited for without blocking this process's listeners. */
function execChecks(flags: string[], ports: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, 'exec', ...flags, '--', process.execPath, '-e', EXEC_CHECKS, ports.E2E_HOST_PORT!, ports.E2E_CLOSED_PORT!, ports.E2E_OTHER_PORT!], {
    cwd: ROOT,
    // the tag finds a helper left behind, whatever its parent
    env: { ...process.env, [TAG_ENV]: TAG },
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })))
}

describeWithOutside('vitest-pool-rootless exec --network egress', () => {
  const env = hostListeners()
  // what the CLI starts is this process's descendant or tagged: only that counts
  const scope = { dir: '/nonexistent/vitest-pool-rootless-exec-egress' }
  afterEach(() => releaseNamespaces())

  it.each([
    // without a list, the host's address on the outside's link is reached like any other
    ['--network egress', ['--network', 'egress'], 'connected'],
    ['--egress NAME (implies --network egress): only that name\'s addresses, the rest refused at once', ['--egress', 'outside.vpr.test'], 'EHOSTUNREACH'],
  ])('%s: reaches the outside by address and by name, holds its own port 3000, reaches --host-port only; nothing left after', async (_, flags, other) => {
    const ports = env()
    const before = snapshotLeftovers(scope)
    const r = await execChecks([...flags, '--host-port', ports.E2E_HOST_PORT!], ports)
    expect(r.stderr).toBe('')
    expect(r.stdout.split('\n').slice(0, 6)).toEqual(['hello from outside', 'hello from outside', 'connected', 'connected', 'ECONNREFUSED', other])
    expect(r.code).toBe(0)
    await expectNoLeftovers(before, scope)
  })

  it('names --egress in one error for a bad entry or a name the host cannot resolve, before anything starts', async () => {
    const ports = env()
    const bad = await execChecks(['--egress', '10.0.0.0/33'], ports)
    expect(bad.code).not.toBe(0)
    expect(bad.stderr).toContain("option `--egress` expects host names, IP addresses or CIDR ranges")
    const unknown = await execChecks(['--egress', 'no-such-name.vpr.test'], ports)
    expect(unknown.code).not.toBe(0)
    expect(unknown.stderr).toContain('option `--egress` names a destination, but this machine can\'t resolve "no-such-name.vpr.test"')
    const isolated = await execChecks(['--network', 'isolated', '--egress', '198.18.0.2'], ports)
    expect(isolated.stderr).toContain("option `--egress` lists the destinations --network egress reaches, so it can't be used with --network isolated")
  })
})
