import { spawnSync } from 'node:child_process'
import { appendFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeAll, describe, expect, inject, it } from 'vitest'
import { copyFixture, prepareConsumer, type Consumer } from './consumer.js'
import { expectNoLeftovers, releaseNamespaces, snapshotLeftovers } from './leftovers.js'
import { describeSandbox, mountTable } from './sandbox.js'
import { describeWithServices, networkFixtureEnv } from './services.js'
import { runVitest, startVitest } from './vitest-run.js'

/** The pool's end-to-end suite against one Vitest major, on fixtures in test/fixtures. */
export function definePoolSuite(major: 3 | 4 | 5): void {
  describeSandbox(`rootless() on Vitest ${major}`, () => {
    let consumer: Consumer
    beforeAll(() => {
      consumer = prepareConsumer(major, inject('tarball'))
    }, 300_000)
    // a run no check followed must not keep its namespaces held open
    afterEach(() => releaseNamespaces())

    it('gives every file uid 0, chown, port 80, hosts, hostname and an empty private /tmp', async () => {
      const root = copyFixture(consumer, 'sandboxed')
      // a module of several MB: transformed code must reach the worker despite the tmpfs
      const big = Array.from({ length: 40_000 }, (_, i) => `item-${i}-${'x'.repeat(60)}`)
      writeFileSync(join(root, 'big.generated.ts'), `export const BIG: string[] = ${JSON.stringify(big)}\n`)
      const marker = `vpr-e2e-${major}-${process.pid}`
      const mountsBefore = mountTable()
      const before = snapshotLeftovers(consumer)
      const run = await runVitest(consumer, root, { env: { E2E_MARKER: marker, E2E_BIG_LENGTH: String(big.length), E2E_SECRET_TOKEN: 'must not reach the tests' } })
      expect(run.output).toMatch(/Test Files\s+3 passed \(3\)/)
      expect(run.output).toMatch(/Tests\s+27 passed \(27\)/)
      expect(run.code, run.output).toBe(0)
      // each file found /tmp empty, so a's marker was invisible to b and c; none reached the host
      expect(readdirSync(tmpdir()).filter((f) => f.startsWith(marker))).toEqual([])
      expect(mountTable()).toEqual(mountsBefore)
      await expectNoLeftovers(before, consumer)
    })

    it('lets 10 files bind port 3000 at the same time, where forks collide', async () => {
      const root = copyFixture(consumer, 'same-port')
      const rootless = await runVitest(consumer, root)
      expect(rootless.output).toMatch(/Test Files\s+10 passed \(10\)/)
      expect(rootless.code, rootless.output).toBe(0)
      const forks = await runVitest(consumer, root, { env: { E2E_POOL: 'forks' } })
      expect(forks.output).toContain('EADDRINUSE')
      expect(forks.code).not.toBe(0)
    })

    it("starts a test's worker threads as under forks: nothing of ours in their execArgv or NODE_OPTIONS", async () => {
      const root = copyFixture(consumer, 'worker-threads')
      const started = (output: string) => /thread started with (.*)/.exec(output)?.[1]
      const rootless = await runVitest(consumer, root)
      expect(rootless.code, rootless.output).toBe(0)
      const forks = await runVitest(consumer, root, { env: { E2E_POOL: 'forks' } })
      expect(forks.code, forks.output).toBe(0)
      expect(started(rootless.output), rootless.output).toBeDefined()
      expect(started(rootless.output)).toBe(started(forks.output))
    })

    it('reports a worker that exits or is killed, by file and code or signal, and runs the rest', async () => {
      const root = copyFixture(consumer, 'crashes')
      const before = snapshotLeftovers(consumer)
      const run = await runVitest(consumer, root)
      expect(run.code).not.toBe(0)
      expect(run.output).toMatch(/✓ ok\.test\.ts/)
      expect(run.output).toMatch(/process\.exit unexpectedly called with "3"|exited with code 3/)
      expect(run.output).toMatch(/sigkill\.test\.ts/)
      expect(run.output).toMatch(/killed by SIGKILL[^\n]*sigkill\.test\.ts/)
      expect(run.output).toContain('thrown at import time')
      // each crash is charged to its file, which counts as failed, as one that throws at import does
      expect(run.output).toMatch(/Test Files\s+3 failed \| 1 passed \(4\)/)
      await expectNoLeftovers(before, consumer)
    })

    it('charges a crash under isolate: false to the file that ran, and runs the files it had not reached', async () => {
      const root = copyFixture(consumer, 'crash-one-file')
      const before = snapshotLeftovers(consumer)
      const run = await runVitest(consumer, root)
      expect(run.code).not.toBe(0)
      expect(run.output).toMatch(/Test Files\s+1 failed \| 3 passed \(4\)/)
      expect(run.output).toMatch(/FAIL\s+b\.test\.ts/)
      expect(run.output).toMatch(/killed by SIGSEGV while running \S*b\.test\.ts\n/)
      for (const file of ['a', 'c', 'd']) expect(run.output).toMatch(new RegExp(`✓ ${file}\\.test\\.ts`))
      await expectNoLeftovers(before, consumer)
    })

    it('refuses invalid options before any worker starts, naming the option and value', async () => {
      const root = copyFixture(consumer, 'bad-options')
      const run = await runVitest(consumer, root)
      expect(run.code).not.toBe(0)
      expect(run.output).toContain('option `hostname` expects 1 to 64 letters, digits, "-", "_" or ".", in labels separated by single dots, none starting or ending with "-", got "not/a/hostname"')
      expect(run.output).not.toContain('a worker started despite invalid options')
    })

    it('mixes with a forks project; setup files run inside, globalSetup on the host; retry works', async () => {
      const root = copyFixture(consumer, 'projects')
      const run = await runVitest(consumer, root)
      expect(run.output).toMatch(/Test Files\s+2 passed \(2\)/)
      expect(run.code, run.output).toBe(0)
    })

    it('resets the sandbox between files that share a worker (isolate: false)', async () => {
      const root = copyFixture(consumer, 'sandboxed')
      // one worker runs all three files: each must still find an empty /tmp and clean hosts
      const before = snapshotLeftovers(consumer)
      const run = await runVitest(consumer, root, { args: ['--maxWorkers=1'], env: { E2E_ISOLATE: 'false' } })
      expect(run.output).toMatch(/Test Files\s+3 passed \(3\)/)
      expect(run.code, run.output).toBe(0)
      await expectNoLeftovers(before, consumer)
    })

    describe('isolate: false resets before every file, however Vitest loads it', () => {
      type Found = { name: string; port: string; tmp: string[]; runner: string }
      /** What each file found at its top, in the order they were collected. */
      const found = (root: string): Found[] => readFileSync(join(root, 'results.log'), 'utf8').trim().split('\n').map((line) => JSON.parse(line) as Found)
      const fresh = { port: 'free', tmp: [] }

      it('when files are only collected (vitest list), with a custom runner, and after a setup file fails', async () => {
        const before = snapshotLeftovers(consumer)
        let root = copyFixture(consumer, 'reset-paths')
        // Vitest 5 lists by parsing the files unless told to run them
        const list = await runVitest(consumer, root, { mode: 'list', args: major >= 5 ? ['--no-static-parse'] : [], env: { E2E_SETUP: 'ok' } })
        expect(list.code, list.output).toBe(0)
        expect(list.output).toMatch(/c\.test\.ts > finds port 3000 free/)
        expect(found(root).map(({ port, tmp }) => ({ port, tmp }))).toEqual([fresh, fresh, fresh])

        root = copyFixture(consumer, 'reset-paths')
        const custom = await runVitest(consumer, root, { env: { E2E_SETUP: 'ok', E2E_RUNNER: '1' } })
        expect(custom.output).toMatch(/Test Files\s+3 passed \(3\)/)
        expect(custom.code, custom.output).toBe(0)
        expect(found(root).map((f) => f.runner)).toEqual(['custom', 'custom', 'custom'])

        // the second file's setup fails: that file fails, and the third still gets a fresh sandbox
        root = copyFixture(consumer, 'reset-paths')
        const failing = await runVitest(consumer, root, { env: { E2E_SETUP: 'throw' } })
        expect(failing.output).toMatch(/Test Files\s+1 failed \| 2 passed \(3\)/)
        expect(failing.output).toContain('setup file failed on purpose')
        expect(found(root).map(({ port, tmp }) => ({ port, tmp }))).toEqual([fresh, fresh])
        await expectNoLeftovers(before, consumer)
      })

      it('with parallel setup files (Vitest 3 resets in our worker loop, 4 and 5 in their runner); with a custom runner too on Vitest 3, refused naming the option on 4 and 5', async () => {
        let root = copyFixture(consumer, 'reset-paths')
        const parallel = await runVitest(consumer, root, { env: { E2E_SETUP: 'ok', E2E_PARALLEL: '1' } })
        expect(parallel.output).toMatch(/Test Files\s+3 passed \(3\)/)
        expect(parallel.code, parallel.output).toBe(0)
        expect(found(root).map((f) => f.runner)).toEqual(['vitest', 'vitest', 'vitest'])

        root = copyFixture(consumer, 'reset-paths')
        const custom = await runVitest(consumer, root, { env: { E2E_SETUP: 'ok', E2E_PARALLEL: '1', E2E_RUNNER: '1' } })
        if (major === 3) {
          expect(custom.output).toMatch(/Test Files\s+3 passed \(3\)/)
          expect(custom.code, custom.output).toBe(0)
          expect(found(root).map((f) => f.runner)).toEqual(['custom', 'custom', 'custom'])
        } else {
          expect(custom.code).not.toBe(0)
          expect(custom.output).toContain("option `sequence.setupFiles` expects 'list' with isolate: false and a custom `runner` under rootless()")
          expect(custom.output).not.toContain('finds port 3000 free')
        }
      })
    })

    describeWithServices('network', () => {
      const env = networkFixtureEnv()
      const NOTICE = /can't be resolved in the sandbox \(ENOTFOUND\)/g

      it('reaches globalSetup servers with no option, PostgreSQL and Redis through hostPorts, nothing else', async () => {
        const root = copyFixture(consumer, 'network')
        const before = snapshotLeftovers(consumer)
        const run = await runVitest(consumer, root, { env: env() })
        expect(run.output).toMatch(/Test Files\s+7 passed \(7\)/)
        expect(run.code, run.output).toBe(0)
        // every file's process looked up an unknown name: the run shows one notice
        expect(run.output.match(NOTICE)).toHaveLength(1)
        await expectNoLeftovers(before, consumer)
      })

      it('gives each file on a reused worker a fresh network and no leftover processes (isolate: false)', async () => {
        const root = copyFixture(consumer, 'network')
        const before = snapshotLeftovers(consumer)
        const run = await runVitest(consumer, root, { args: ['--maxWorkers=1'], env: { ...env(), E2E_ISOLATE: 'false' } })
        expect(run.output).toMatch(/Test Files\s+7 passed \(7\)/)
        expect(run.code, run.output).toBe(0)
        // the three leaking files ran one after another on the one worker
        expect([...run.output.matchAll(/leak-check: (\d) earlier/g)].map((m) => m[1]).sort()).toEqual(['0', '1', '2'])
        await expectNoLeftovers(before, consumer)
      })
    })

    it('re-runs a changed file in watch mode, in a fresh sandbox', async () => {
      const root = copyFixture(consumer, 'sandboxed')
      const before = snapshotLeftovers(consumer)
      const run = startVitest(consumer, root, { mode: 'watch', timeoutMs: 150_000 })
      try {
        await run.waitFor(/Test Files\s+3 passed \(3\)/, { ms: 60_000 })
        const since = run.output().length
        appendFileSync(join(root, 'b.test.ts'), '\n// edited\n')
        await run.waitFor(/Test Files\s+1 passed \(1\)/, { ms: 60_000, since })
        expect(run.output(since)).toContain('b.test.ts')
      } finally {
        run.kill('SIGTERM')
        await run.closed
      }
      await expectNoLeftovers(before, consumer)
    })

    it('shards, writes blob reports, and merges them', async () => {
      const root = copyFixture(consumer, 'sandboxed')
      for (const shard of ['1/2', '2/2']) {
        const run = await runVitest(consumer, root, { args: [`--shard=${shard}`, '--reporter=blob', `--outputFile=.vitest-reports/blob-${shard.replace('/', '-')}.json`] })
        expect(run.code, run.output).toBe(0)
      }
      const merged = await runVitest(consumer, root, { args: ['--merge-reports=.vitest-reports'] })
      expect(merged.output).toMatch(/Test Files\s+3 passed \(3\)/)
      expect(merged.code, merged.output).toBe(0)
    })

    it('collects v8 coverage from sandboxed workers', async () => {
      const root = copyFixture(consumer, 'sandboxed')
      const run = await runVitest(consumer, root, { args: ['--coverage.enabled', '--coverage.provider=v8', '--coverage.reporter=json-summary', '--coverage.include=checks.ts'] })
      expect(run.code, run.output).toBe(0)
      const summary = JSON.parse(readFileSync(join(root, 'coverage', 'coverage-summary.json'), 'utf8')) as { total: { lines: { pct: number } } }
      expect(summary.total.lines.pct).toBeGreaterThan(90)
    })

    it("type-checks a user's config: rootless(options), in projects too, and the runtime export", () => {
      const root = copyFixture(consumer, 'types')
      const tsc = spawnSync(consumer.node, [join(consumer.dir, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', root], { encoding: 'utf8' })
      expect(tsc.status, `${tsc.stdout}${tsc.stderr}`).toBe(0)
    })

    it.runIf(major === 3)("takes Vitest 3's string form, pool: 'vitest-pool-rootless', with options from poolOptions.rootless", async () => {
      const root = copyFixture(consumer, 'pool-by-name')
      const before = snapshotLeftovers(consumer)
      const run = await runVitest(consumer, root)
      expect(run.code, run.output).toBe(0)
      expect(run.output).toMatch(/Tests\s+1 passed \(1\)/)
      await expectNoLeftovers(before, consumer)
    })

    it('stops at the first failure with bail (the worker reports it over RPC)', async () => {
      const root = copyFixture(consumer, 'bail')
      const bailed = await runVitest(consumer, root, { args: ['--bail=1'] })
      expect(bailed.output).toMatch(/Tests\s+1 failed \(3\)/)
      const full = await runVitest(consumer, root)
      expect(full.output).toMatch(/Tests\s+1 failed \| 2 passed \(3\)/)
    })
  })
}
