import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { beforeAll, expect, inject, it } from 'vitest'
import { copyFixture, prepareConsumer, type Consumer } from '../support/consumer.js'
import { expectNoLeftovers, releaseNamespaces, snapshotLeftovers } from '../support/leftovers.js'
import { runVitest } from '../support/vitest-run.js'
import { describeSandbox, mountTable } from '../support/sandbox.js'

// A test can't undo its sandbox: the launcher locks the sandbox's own mounts, so
// unmounting the temp dir's tmpfs or /etc/hosts never uncovers the host's.
for (const major of [4, 5] as const) {
  describeSandbox(`the sandbox's mounts are locked on Vitest ${major}`, () => {
    let consumer: Consumer
    beforeAll(() => {
      consumer = prepareConsumer(major, inject('tarball'))
    }, 300_000)

    it('a test that unmounts the temp dir and /etc/hosts never sees or writes the host\'s', async () => {
      const root = copyFixture(consumer, 'sandbox-locks')
      const marker = `vpr-locks-${major}-${process.pid}`
      const hostFile = join(tmpdir(), marker)
      writeFileSync(hostFile, 'the host\'s')
      const mountsBefore = mountTable()
      try {
        const before = snapshotLeftovers(consumer)
        const run = await runVitest(consumer, root, { env: { E2E_HOST_MARKER: marker } })
        expect(run.output).toMatch(/Test Files\s+3 passed \(3\)/)
        expect(run.code, run.output).toBe(0)
        expect(readdirSync(tmpdir()).filter((f) => f.startsWith(marker))).toEqual([marker])
        expect(mountTable()).toEqual(mountsBefore)
        await expectNoLeftovers(before, consumer)
        releaseNamespaces()
      } finally {
        rmSync(hostFile, { force: true })
      }
    })

    it('still lets a reused worker reset its sandbox between files (isolate: false)', async () => {
      const root = copyFixture(consumer, 'sandbox-locks')
      const before = snapshotLeftovers(consumer)
      const run = await runVitest(consumer, root, { args: ['--maxWorkers=1'], env: { E2E_ISOLATE: 'false', E2E_INCLUDE: 'allowed-*.test.ts' } })
      expect(run.output).toMatch(/Test Files\s+2 passed \(2\)/)
      expect(run.code, run.output).toBe(0)
      expect(existsSync(join(tmpdir(), 'own-a'))).toBe(false)
      await expectNoLeftovers(before, consumer)
      releaseNamespaces()
    })
  })
}
