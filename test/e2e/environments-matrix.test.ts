import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { beforeAll, expect, inject, it } from 'vitest'
import { copyFixture, prepareConsumer, type Consumer } from '../support/consumer.js'
import { expectNoLeftovers, releaseNamespaces, snapshotLeftovers } from '../support/leftovers.js'
import { runVitest } from '../support/vitest-run.js'
import { describeSandbox } from '../support/sandbox.js'

// Every built-in environment under isolate on and off, with the Vite module runner and
// Vitest's native one, on each Vitest major. Under isolate: false one worker runs all
// files of an environment, and only the reset between files gives each an empty /tmp.

type Environment = 'node' | 'jsdom' | 'happy-dom' | 'edge-runtime'
interface Case {
  env: Environment
  isolate: boolean
  runner: 'vite' | 'native'
  tmpfs: boolean
}

const ENVIRONMENTS: Environment[] = ['node', 'jsdom', 'happy-dom', 'edge-runtime']
const CASES: Case[] = [
  ...ENVIRONMENTS.flatMap((env) => [true, false].map((isolate) => ({ env, isolate, runner: 'vite' as const, tmpfs: true }))),
  // experimental.viteModuleRunner: false imports files with Node itself (4.1+)
  ...ENVIRONMENTS.map((env) => ({ env, isolate: false, runner: 'native' as const, tmpfs: true })),
  { env: 'jsdom', isolate: true, runner: 'native', tmpfs: true },
  // no tmpfs: nothing to reset in /tmp, but the reset setup file is still loaded
  { env: 'jsdom', isolate: false, runner: 'vite', tmpfs: false },
]

// a.test.js, b.test.js, c.test.js take the config's environment; the docblock files jsdom
const CONFIG_FILES = ['a', 'b', 'c']
const DOCBLOCK_FILES = ['docblock-1', 'docblock-2']
const TESTS_PER_FILE = 4

for (const major of [4, 5] as const) {
  describeSandbox(`built-in environments on Vitest ${major}`, () => {
    let consumer: Consumer
    beforeAll(() => {
      consumer = prepareConsumer(major, inject('tarball'))
    }, 300_000)

    it.each(CASES)('$env, isolate: $isolate, $runner module runner, tmpfs: $tmpfs', async ({ env, isolate, runner, tmpfs }) => {
      const root = copyFixture(consumer, 'environments')
      const log = join(root, 'ran.log')
      const marker = `vpr-envs-${major}-${process.pid}`
      const before = snapshotLeftovers(consumer)
      const run = await runVitest(consumer, root, { args: ['--maxWorkers=1'], env: {
        E2E_ENV: env,
        E2E_ISOLATE: String(isolate),
        E2E_NATIVE_RUNNER: runner === 'native' ? '1' : '0',
        E2E_TMPFS: String(tmpfs),
        E2E_MARKER: marker,
        E2E_LOG: log,
      } })
      const files = CONFIG_FILES.length + DOCBLOCK_FILES.length
      const skipped = tmpfs ? 0 : files
      expect(run.output).toMatch(new RegExp(`Test Files\\s+${files} passed \\(${files}\\)`))
      expect(run.output).toMatch(new RegExp(`Tests\\s+${files * TESTS_PER_FILE - skipped} passed${skipped ? ` \\| ${skipped} skipped` : ''} \\(${files * TESTS_PER_FILE}\\)`))
      expect(run.code, run.output).toBe(0)

      // The case ran what it claims: under isolate: false the files of one environment
      // shared one worker process, so the reset did the emptying; under
      // isolate: true each file had a sandbox of its own.
      const ran = new Map(
        (existsSync(log) ? readFileSync(log, 'utf8') : '')
          .trim()
          .split('\n')
          .filter(Boolean)
          .map((line) => line.split(' ') as [string, string, string])
          .map(([file, environment, worker]) => [file, { environment, worker }]),
      )
      expect([...ran.keys()].sort()).toEqual([...CONFIG_FILES, ...DOCBLOCK_FILES].sort())
      for (const file of CONFIG_FILES) expect(ran.get(file)!.environment).toBe(env)
      const workers = (group: string[]) => new Set(group.map((file) => ran.get(file)!.worker)).size
      if (isolate) {
        expect(workers([...CONFIG_FILES, ...DOCBLOCK_FILES])).toBe(files)
      } else {
        expect(workers(CONFIG_FILES)).toBe(1)
        expect(workers(DOCBLOCK_FILES)).toBe(1)
      }
      // nothing a file left in its private /tmp reached the host's
      if (tmpfs) expect(readdirSync(tmpdir()).filter((f) => f.startsWith(marker))).toEqual([])
      await expectNoLeftovers(before, consumer)
      releaseNamespaces()
    })
  })
}
