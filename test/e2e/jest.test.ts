import { createServer, type Server } from 'node:net'
import { afterAll, afterEach, beforeAll, expect, inject, it } from 'vitest'
import { copyFixture, prepareJestConsumer, type JestConsumer } from '../support/consumer.js'
import { runJest } from '../support/jest-run.js'
import { expectNoLeftovers, releaseNamespaces, snapshotLeftovers } from '../support/leftovers.js'
import { describeSandbox } from '../support/sandbox.js'

// The Jest runner end to end: the packed tarball installed next to real Jest (30, and
// 29.7 through the one-line runner file), fixture projects run as the user running the
// suite (CI runs it as an unprivileged user too).

for (const major of [30, 29] as const) {
  describeSandbox(`the Jest runner on Jest ${major}`, () => {
    let consumer: JestConsumer
    // a server of the host's, on its loopback: no sandbox may reach it
    let host: Server
    let hostPort = 0
    beforeAll(async () => {
      consumer = prepareJestConsumer(major, inject('tarball'))
      host = createServer((socket) => socket.end('host'))
      await new Promise<void>((resolve) => host.listen(0, '127.0.0.1', resolve))
      hostPort = (host.address() as { port: number }).port
    }, 300_000)
    afterAll(() => new Promise<void>((resolve) => host.close(() => resolve())))
    afterEach(() => releaseNamespaces())

    it.each([
      ['2 workers', ['--maxWorkers=2'], '2'],
      ['--runInBand (one process, reset between files)', ['-i'], '1'],
    ])('gives every file uid 0, chown, port 80, hosts, hostname, a private /tmp and network; %s', async (_, args, workers) => {
      const root = copyFixture(consumer, 'jest-sandboxed')
      const before = snapshotLeftovers(consumer)
      const run = await runJest(consumer, root, {
        args,
        env: { E2E_HOST_UID: String(process.geteuid!()), E2E_HOST_PORT: String(hostPort), E2E_MAX_WORKERS: workers },
      })
      expect(run.output).toMatch(/Tests:\s+21 passed, 21 total/)
      expect(run.output).toMatch(/Test Suites:\s+3 passed, 3 total/)
      expect(run.code, run.output).toBe(0)
      await expectNoLeftovers(before, consumer)
    })

    it("lets 10 files bind port 3000 at the same time, where Jest's own runner collides", async () => {
      const root = copyFixture(consumer, 'jest-same-port')
      const control = await runJest(consumer, root, { env: { E2E_RUNNER: 'default' } })
      expect(control.output).toContain('EADDRINUSE')
      expect(control.code).not.toBe(0)
      const before = snapshotLeftovers(consumer)
      const run = await runJest(consumer, root)
      expect(run.output).toMatch(/Test Suites:\s+10 passed, 10 total/)
      expect(run.code, run.output).toBe(0)
      await expectNoLeftovers(before, consumer)
    })
  })
}
