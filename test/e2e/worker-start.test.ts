import { beforeAll, expect, inject, it } from 'vitest'
import { copyFixture, prepareConsumer, type Consumer } from '../support/consumer.js'
import { expectNoLeftovers, releaseNamespaces, snapshotLeftovers } from '../support/leftovers.js'
import { runVitest } from '../support/vitest-run.js'
import { describeSandbox } from '../support/sandbox.js'

// A worker that can't start must fail the run, not hang it. Vitest 4.1's PoolRunner
// waits for the worker's 'started' answer for 60 s (START_TIMEOUT) and does not stop
// waiting when the process exits first; the pool must end that wait itself.
const PROMPTLY_MS = 30_000

for (const major of [4, 5] as const) {
  describeSandbox(`a worker that can't start, on Vitest ${major}`, () => {
    let consumer: Consumer
    beforeAll(() => {
      consumer = prepareConsumer(major, inject('tarball'))
    }, 300_000)

    it('fails the run promptly and says why', async () => {
      const root = copyFixture(consumer, 'worker-cant-start')
      const before = snapshotLeftovers(consumer)
      const started = Date.now()
      const run = await runVitest(consumer, root)
      const took = Date.now() - started
      expect(run.code, run.output).not.toBe(0)
      expect(run.output).toContain("E2E: this worker can't start")
      expect(run.output).toMatch(/vitest-pool-rootless: the sandboxed worker exited with code 1/)
      expect(run.output).not.toContain('a worker started despite a preload that throws')
      expect(took, `the run took ${took} ms:\n${run.output}`).toBeLessThan(PROMPTLY_MS)
      await expectNoLeftovers(before, consumer)
      releaseNamespaces()
    })
  })
}
