import { spawnSync } from 'node:child_process'
import { readFileSync, readlinkSync } from 'node:fs'
import { createServer, type AddressInfo, type Server } from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, inject, it } from 'vitest'
import { copyFixture, prepareConsumer, type Consumer } from '../support/consumer.js'
import { expectNoLeftovers, releaseNamespaces, snapshotLeftovers } from '../support/leftovers.js'
import { MAX_FDS, MAX_TICKS_IN_2S, processTree, usageOver } from '../support/procs.js'
import { describeSandbox, ROOT } from '../support/sandbox.js'
import { startVitest } from '../support/vitest-run.js'

// Issue 26's "hostile control fd", through a real Vitest run: a sandboxed test hands the
// forwarder's control socket to a child that sends it empty messages, short ones with an
// fd, ones with two fds, a UDP and an unbound socket as listeners (400 rounds of each).
// Afterwards the forwarded port still answers -- in that file, and in the next one, after
// the reused worker reset its sandbox through the same socket -- and while the test waits,
// no process of ours holds more than 64 fds or uses more than 10 % of a core over 2 s.

describeSandbox('a test that sends the forwarder junk on its control socket (Vitest 5)', () => {
  let consumer: Consumer
  let server: Server
  let port: number
  beforeAll(async () => {
    consumer = prepareConsumer(5, inject('tarball'))
    server = createServer((socket) => socket.end('still here'))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    port = (server.address() as AddressInfo).port
  }, 300_000)
  afterAll(() => server?.close())

  it('leaves the forwarder serving, under 64 fds and 10 % of a core', async () => {
    const root = copyFixture(consumer, 'hostile-control')
    const cc = spawnSync('cc', ['-O2', '-o', join(root, 'hostile-control'), join(ROOT, 'test', 'launcher', 'fixtures', 'hostile-control.c')], { encoding: 'utf8' })
    expect(cc.stderr).toBe('')
    const before = snapshotLeftovers(consumer)
    const run = startVitest(consumer, root, { env: { E2E_HOST_PORT: String(port) }, timeoutMs: 150_000 })
    await run.waitFor(/HOSTILE_DONE \d+/, { ms: 120_000 })
    // everything the run started: launchers, inits, forwarders, workers, spares, the holder
    const ours = processTree(run.pid).filter((pid) => pid !== run.pid)
    const hostNet = readlinkSync('/proc/self/ns/net')
    const forwarders = ours.filter((pid) => {
      try {
        // the launcher's fork that stays in the host's network, with no child of its own
        const command = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')
        return command.includes('--forward') && readlinkSync(`/proc/${pid}/ns/net`) === hostNet && processTree(pid).length === 1
      } catch {
        return false
      }
    })
    const usage = await usageOver(ours, 2000)
    const exit = await run.closed
    const output = run.output()
    expect(forwarders.length, `no forwarder among ${ours.join(' ')}`).toBeGreaterThan(0)
    for (const { pid, fds, ticks } of usage) {
      expect(fds, `fds of pid ${pid}`).toBeLessThanOrEqual(MAX_FDS)
      expect(ticks, `CPU ticks of pid ${pid} over 2 s`).toBeLessThanOrEqual(MAX_TICKS_IN_2S)
    }
    expect(output).toMatch(/Test Files\s+2 passed \(2\)/)
    expect(exit.code, output).toBe(0)
    await expectNoLeftovers(before, consumer)
    releaseNamespaces()
  })
})
