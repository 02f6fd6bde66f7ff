import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { JestInstallError, loadDefaultRunner, resolveTestWorker, snapshotPathOf, testEventOf, workerColorEnv } from '../../src/jest/jest-internals.js'
import type { ProjectConfigView } from '../../src/jest/jest-types.js'
import { ROOT } from '../support/sandbox.js'

// What the Jest adapter relies on of Jest's internals, checked against the installed
// jest-runner (a dev dependency; the e2e suite runs real Jest 29.7 and 30 on top): an
// upgrade that moves or changes any of it fails here.

const require = createRequire(import.meta.url)

describe('jest-runner\'s worker module', () => {
  it('is found from a project root, and exports setup() and worker() as the adapter calls them', async () => {
    const path = resolveTestWorker([ROOT])
    expect(path).toBe(join(dirname(require.resolve('jest-runner')), 'testWorker.js'))
    const testWorker = require(path) as Record<string, unknown>
    expect(typeof testWorker.setup).toBe('function')
    expect(typeof testWorker.worker).toBe('function')
    // worker({ config, globalConfig, path, context }) and setup({ serializableResolvers })
    expect((testWorker.worker as (...args: unknown[]) => unknown).length).toBe(1)
    expect((testWorker.setup as (...args: unknown[]) => unknown).length).toBe(1)
  })

  it('is looked up from this package when no project has jest-runner', () => {
    expect(resolveTestWorker(['/nonexistent'])).toBe(join(dirname(require.resolve('jest-runner')), 'testWorker.js'))
  })

  it('says what is missing when jest-runner is nowhere to be found', () => {
    expect(() => resolveTestWorker(['/nonexistent'], '/nonexistent')).toThrow(JestInstallError)
    expect(() => resolveTestWorker(['/nonexistent'], '/nonexistent')).toThrow(/can't find the worker Jest runs test files with; jest-runner is not installed/)
  })
})

describe("jest-worker's test events", () => {
  it('are what messageParent() sends: [PARENT_MESSAGE_CUSTOM, [name, args]]', () => {
    const { messageParent } = require('jest-worker') as { messageParent(message: unknown, parent?: { send(m: unknown): void }): void }
    const sent: unknown[] = []
    messageParent(['test-case-result', ['/a.test.js', { title: 't' }]], { send: (m) => sent.push(m) })
    expect(sent).toHaveLength(1)
    expect(testEventOf(sent[0])).toEqual(['test-case-result', ['/a.test.js', { title: 't' }]])
  })

  it('are told apart from the adapter\'s own answers', () => {
    expect(testEventOf({ type: 'result', result: {} })).toBeUndefined()
    expect(testEventOf([1, 'x'])).toBeUndefined()
    expect(testEventOf([3, [42, []]])).toBeUndefined()
  })
})

describe('colours', () => {
  it('follow supports-color as jest-worker loads it: FORCE_COLOR=1 or nothing', () => {
    const env = workerColorEnv(resolveTestWorker([ROOT]))
    const supportsColor = createRequire(require.resolve('jest-worker'))('supports-color') as { stdout: unknown }
    expect(env).toEqual(supportsColor.stdout ? { FORCE_COLOR: '1' } : {})
  })
})

describe("Jest's own runner, for runs that fall back to it", () => {
  it('is jest-runner\'s default export: an event-emitting runner class', () => {
    const Runner = loadDefaultRunner(resolveTestWorker([ROOT]))
    const runner = new Runner({ maxWorkers: 1 }, {})
    expect(runner.supportsEventEmitters).toBe(true)
    expect(typeof runner.runTests).toBe('function')
    expect(typeof runner.on('test-file-start', () => {})).toBe('function')
  })
})

describe("a project's snapshot resolver", () => {
  /** A project with `snapshotResolver` set to a module of `source`, its config as Jest normalizes it. */
  async function projectWith(source: string): Promise<{ root: string; config: ProjectConfigView }> {
    const root = mkdtempSync(join(tmpdir(), 'jest-resolver-'))
    writeFileSync(join(root, 'resolver.js'), source)
    writeFileSync(join(root, 'jest.config.js'), "module.exports = { snapshotResolver: '<rootDir>/resolver.js' }\n")
    const { readConfig } = require('jest-config') as { readConfig(argv: object, path: string): Promise<{ projectConfig: ProjectConfigView }> }
    const { projectConfig } = await readConfig({ $0: 'jest', _: [] }, root)
    return { root, config: projectConfig }
  }

  it("is the project's custom one, loaded as Jest's worker loads it: snapshots where it says", async () => {
    const { root, config } = await projectWith(`const { basename, dirname, join } = require('node:path')
module.exports = {
  resolveSnapshotPath: (test, ext) => join(dirname(test), '..', 'snaps', basename(test) + ext),
  resolveTestPath: (snap, ext) => join(dirname(snap), '..', 'tests', basename(snap).slice(0, -ext.length)),
  testPathForConsistencyCheck: '/p/tests/a.test.js',
}
`)
    try {
      const snapshotPath = await snapshotPathOf(resolveTestWorker([ROOT]), config)
      expect(snapshotPath?.(join(root, 'tests', 'b.test.js'))).toBe(join(root, 'snaps', 'b.test.js.snap'))
    } finally {
      rmSync(root, { recursive: true, force: true })
    }
  })

  it('is none when the resolver does not load: the worker says why, in Jest\'s words', async () => {
    const { root, config } = await projectWith("throw new Error('broken resolver')\n")
    try {
      expect(await snapshotPathOf(resolveTestWorker([ROOT]), config)).toBeUndefined()
    } finally {
      rmSync(root, { recursive: true, force: true })
    }
  })
})
