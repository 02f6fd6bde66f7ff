import { createServer, type Server } from 'node:net'
import { afterAll, afterEach, beforeAll, expect, inject, it } from 'vitest'
import { copyFixture, prepareConsumer, prepareJestConsumer } from '../support/consumer.js'
import { runJest } from '../support/jest-run.js'
import { expectNoLeftovers, releaseNamespaces, snapshotLeftovers } from '../support/leftovers.js'
import { describeWithOutside } from '../support/outside.js'
import { runVitest } from '../support/vitest-run.js'

// network: 'egress' end to end, on Vitest 5 and Jest 30: 4 files at once each reach the
// outside server (scripts/outside-network.sh) by address, by a `hosts` name and by a
// name only the host's resolver knows, each holds a port 3000 of its own, reaches a
// `hostPorts` listener on the host's loopback and is refused on another host port; no
// helper outlives the run (expectNoLeftovers: every process the run started).

/** A listener on the host's loopback, and a port nothing of ours listens on. */
function hostListeners(): () => Record<string, string> {
  let open: Server | undefined
  let openPort = 0
  let closedPort = 0
  beforeAll(async () => {
    const listen = async () => {
      const server = createServer((socket) => socket.on('error', () => {}).end('host\n'))
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
      return server
    }
    open = await listen()
    openPort = (open.address() as { port: number }).port
    // a second server of the host's, on its loopback, that no sandbox may reach
    const other = await listen()
    closedPort = (other.address() as { port: number }).port
    afterAll(() => void other.close())
  })
  afterAll(() => void open?.close())
  return () => ({ E2E_HOST_PORT: String(openPort), E2E_CLOSED_PORT: String(closedPort) })
}

describeWithOutside("network: 'egress' on Vitest 5", () => {
  const env = hostListeners()
  let consumer: ReturnType<typeof prepareConsumer>
  beforeAll(() => {
    consumer = prepareConsumer(5, inject('tarball'))
  }, 300_000)
  afterEach(() => releaseNamespaces())

  it.each([
    ['4 files at once', ['--maxWorkers=4'], 'true'],
    ['one reused worker (isolate: false), a fresh egress network per file', ['--maxWorkers=1'], 'false'],
  ])('reaches the outside by address and by name; own port 3000; host loopback closed but hostPorts; %s', async (_, args, isolate) => {
    const root = copyFixture(consumer, 'egress')
    const before = snapshotLeftovers(consumer)
    const run = await runVitest(consumer, root, { args, env: { ...env(), E2E_ISOLATE: isolate } })
    expect(run.output).toMatch(/Test Files\s+4 passed \(4\)/)
    expect(run.code, run.output).toBe(0)
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
    ['4 workers', ['--maxWorkers=4']],
    ['one worker, a fresh egress network per file (-i)', ['-i']],
  ])('reaches the outside by address and by name; own port 3000; host loopback closed but hostPorts; %s', async (_, args) => {
    const root = copyFixture(consumer, 'jest-egress')
    const before = snapshotLeftovers(consumer)
    const run = await runJest(consumer, root, { args, env: env() })
    expect(run.output).toMatch(/Test Suites:\s+4 passed, 4 total/)
    expect(run.code, run.output).toBe(0)
    await expectNoLeftovers(before, consumer)
  })
})
