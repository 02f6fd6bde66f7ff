import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { beforeAll, expect, inject, it } from 'vitest'
import { copyFixture, prepareConsumer, prepareJestConsumer, type Consumer, type JestConsumer } from '../support/consumer.js'
import { runJest, startJest } from '../support/jest-run.js'
import { expectNoLeftovers, releaseNamespaces, snapshotLeftovers } from '../support/leftovers.js'
import { runVitest, startVitest, type LiveRun } from '../support/vitest-run.js'
import { describeSandbox } from '../support/sandbox.js'

// `writable: ['./out']`: the host read-only but ./out, the temp dirs, and what Vitest's
// worker writes itself (a new snapshot, a file snapshot next to the test, v8 coverage),
// for a test file added in watch mode too. Vitest 3.2 finds the paths on its own pool's
// path (src/pool/v3.ts).
for (const major of [5, 4, 3] as const) describeSandbox(`a read-only host with a writable allow-list on Vitest ${major}`, () => {
  let consumer: Consumer
  beforeAll(() => {
    consumer = prepareConsumer(major, inject('tarball'))
  }, 300_000)

  for (const isolate of [true, false]) {
    it(`writes ./out, the temp dir, a new snapshot, a file snapshot and coverage; not the project or $HOME (isolate: ${isolate})`, async () => {
      const root = copyFixture(consumer, 'writable')
      const before = snapshotLeftovers(consumer)
      // UPDATE_SNAPSHOT=new: a new snapshot is written, as outside CI (runVitest sets CI=true)
      const run = await runVitest(consumer, root, { args: ['--coverage', ...(isolate ? [] : ['--maxWorkers=1'])], env: { UPDATE_SNAPSHOT: 'new', E2E_ISOLATE: String(isolate) } })
      expect(run.output).toMatch(/Test Files\s+3 passed \(3\)/)
      expect(run.code, run.output).toBe(0)
      expect(readFileSync(join(root, 'out', 'x'), 'utf8')).toBe('written in the sandbox')
      expect(readFileSync(join(root, 'expected', 'doubled.txt'), 'utf8')).toBe('doubled: 42\n')
      expect(existsSync(join(root, 'x'))).toBe(false)
      expect(existsSync(join(process.env.HOME ?? homedir(), 'vpr-writable-e2e'))).toBe(false)
      expect(readFileSync(join(root, '__snapshots__', 'snapshot.test.ts.snap'), 'utf8')).toContain('"doubled": 42')
      const coverage = JSON.parse(readFileSync(join(root, 'coverage', 'coverage-final.json'), 'utf8')) as Record<string, unknown>
      expect(Object.keys(coverage).map((file) => file.slice(root.length + 1))).toEqual(['math.ts'])
      await expectNoLeftovers(before, consumer)
      releaseNamespaces()
    })
  }

  for (const isolate of [true, false]) {
    it(`writes the snapshot of a test file added in watch mode in a directory of its own (isolate: ${isolate})`, async () => {
      const root = copyFixture(consumer, 'writable')
      const before = snapshotLeftovers(consumer)
      // later/ is there from the start, without a test file (so nothing in it is writable):
      // a directory made just before the file can lose the file to the watcher (chokidar
      // reads a new directory before it watches it; a file made in between is never seen)
      mkdirSync(join(root, 'later'))
      // UPDATE_SNAPSHOT=new: a new snapshot is written, as outside CI (whatever CI says here)
      const run = startVitest(consumer, root, { mode: 'watch', args: isolate ? [] : ['--maxWorkers=1'], env: { UPDATE_SNAPSHOT: 'new', E2E_ISOLATE: String(isolate) }, timeoutMs: 150_000 })
      // the first run's result is the test above's: here it's the file that comes later
      const source = "import { expect, test } from 'vitest'\n\ntest('later', () => {\n  expect({ later: true }).toMatchSnapshot()\n})\n"
      const rerun = await addInWatch(run, root, /Test Files\s+.*\(3\)/, 'later.test.ts', source, /Test Files\s+.*\(1\)/)
      expect(rerun).toMatch(/Test Files\s+1 passed \(1\)/)
      expect(readFileSync(join(root, 'later', '__snapshots__', 'later.test.ts.snap'), 'utf8')).toContain('"later": true')
      await expectNoLeftovers(before, consumer)
      releaseNamespaces()
    })
  }

  it('makes a missing writable path and removes it again when nothing was written there', async () => {
    const root = copyFixture(consumer, 'writable')
    const run = await runVitest(consumer, root, { args: ['snapshot.test.ts'], env: { UPDATE_SNAPSHOT: 'new' } })
    expect(run.code, run.output).toBe(0)
    // ./out and ./expected (to-file.test.ts's file snapshot) were made for the run (and
    // files.test.ts's snapshot dir, the same __snapshots__), and go with it
    expect(readdirSync(root).filter((name) => name !== 'node_modules').sort()).toEqual(['__snapshots__', 'files.test.ts', 'math.ts', 'snapshot.test.ts', 'to-file.test.ts', 'vitest.config.ts'])
    expect(readdirSync(join(root, 'node_modules'))).toEqual(['.vite']) // Vitest's results cache, written by its main process
  })
})

describeSandbox('a read-only host with a writable allow-list on Jest 30', () => {
  let consumer: JestConsumer
  beforeAll(() => {
    consumer = prepareJestConsumer(30, inject('tarball'))
  }, 300_000)

  it('writes ./out, the temp dir and a new snapshot; not the project or $HOME (one worker, reset between files)', async () => {
    const root = copyFixture(consumer, 'jest-writable')
    const before = snapshotLeftovers(consumer)
    // --ci=false: a new snapshot is written, as outside CI (runJest sets CI=true)
    const run = await runJest(consumer, root, { args: ['--ci=false', '-i'] })
    expect(run.code, run.output).toBe(0)
    expect(run.output).toMatch(/Tests:\s+2 passed, 2 total/)
    expect(run.output).toMatch(/1 snapshot written/)
    expect(readFileSync(join(root, 'out', 'x'), 'utf8')).toBe('written in the sandbox')
    expect(existsSync(join(root, 'x'))).toBe(false)
    expect(readFileSync(join(root, '__snapshots__', 'files.test.js.snap'), 'utf8')).toContain('"doubled": 42')
    await expectNoLeftovers(before, consumer)
    releaseNamespaces()
  })

  it('writes snapshots where a custom snapshotResolver puts them, with no writable entry for them', async () => {
    const root = copyFixture(consumer, 'jest-writable')
    // snapshots in snaps/ at the project's root, a directory nothing else makes writable
    writeFileSync(
      join(root, 'resolver.js'),
      "const { basename, join } = require('node:path')\nmodule.exports = {\n  resolveSnapshotPath: (test, ext) => join(__dirname, 'snaps', basename(test) + ext),\n  resolveTestPath: (snap, ext) => join(__dirname, basename(snap).slice(0, -ext.length)),\n  testPathForConsistencyCheck: join(__dirname, 'a.test.js'),\n}\n",
    )
    writeFileSync(join(root, 'jest.config.js'), "module.exports = { runner: ['vitest-pool-rootless/jest', { writable: ['./out'] }], testEnvironment: 'node', snapshotResolver: '<rootDir>/resolver.js' }\n")
    const run = await runJest(consumer, root, { args: ['--ci=false', '-i'] })
    expect(run.code, run.output).toBe(0)
    expect(run.output).toMatch(/1 snapshot written/)
    expect(readFileSync(join(root, 'snaps', 'files.test.js.snap'), 'utf8')).toContain('"doubled": 42')
    expect(existsSync(join(root, '__snapshots__'))).toBe(false)
  })

  it('writes the snapshot of a test file added in watch mode in a directory of its own', async () => {
    const root = copyFixture(consumer, 'jest-writable')
    const before = snapshotLeftovers(consumer)
    // Jest's watcher misses a file written into a directory made just before it: the
    // directory is there from the start, without a test file (so nothing in it is writable)
    mkdirSync(join(root, 'later'))
    // --ci=false: a new snapshot is written, as outside CI (whatever CI says here)
    const run = startJest(consumer, root, { args: ['--ci=false', '--watchAll', '-i'], watch: true, timeoutMs: 150_000 })
    // --watchAll runs every file again when one is added
    const rerun = await addInWatch(run, root, /Tests:\s+2 passed, 2 total/, 'later.test.js', "test('later', () => {\n  expect({ later: true }).toMatchSnapshot()\n})\n", /Tests:\s+.*3 total/)
    expect(rerun).toMatch(/Tests:\s+3 passed, 3 total/)
    expect(readFileSync(join(root, 'later', '__snapshots__', 'later.test.js.snap'), 'utf8')).toContain('"later": true')
    await expectNoLeftovers(before, consumer)
    releaseNamespaces()
  })
})

/**
 * Once a run under watch is through its first round (`first`), adds `later/<file>` -- no
 * test file was in later/ when the run started, so nothing there was made writable then --
 * and returns what the run printed from then to `rerun`; the run is stopped.
 */
async function addInWatch(run: LiveRun, root: string, first: RegExp, file: string, source: string, rerun: RegExp): Promise<string> {
  try {
    await run.waitFor(first, { ms: 90_000 })
    const since = run.output().length
    writeFileSync(join(root, 'later', file), source)
    await run.waitFor(rerun, { ms: 90_000, since })
    return run.output(since)
  } finally {
    run.kill('SIGTERM')
    await run.closed
  }
}
