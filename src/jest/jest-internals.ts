// Every reliance of the Jest adapter on something Jest does not document as public API
// lives here, and test/unit/jest-internals.test.ts checks each against an installed
// jest-runner. Mirrors jest-runner and jest-worker 29.7 and 30.x (packages/jest-runner/
// src/testWorker.ts, packages/jest-worker/src/types.ts and workers/ChildProcessWorker.ts).
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import type { ProjectConfigView } from './jest-types.js'

/** Raised when the Jest install lacks what the adapter runs files with. */
export class JestInstallError extends Error {
  override readonly name = 'JestInstallError'
}

/**
 * jest-runner's worker module, `build/testWorker.js`: what Jest's default runner loads
 * in its child processes. It exports `setup({ serializableResolvers })` and
 * `worker({ config, globalConfig, path, context })` (which runs one file). Found from
 * the projects' roots as Jest finds its default runner, then from this package.
 */
export function resolveTestWorker(fromDirs: readonly string[], self = import.meta.dirname): string {
  const tried: string[] = []
  for (const from of [...fromDirs, self]) {
    let entry: string
    try {
      entry = createRequire(join(from, 'noop.js')).resolve('jest-runner')
    } catch {
      continue
    }
    const worker = join(dirname(entry), 'testWorker.js')
    if (existsSync(worker)) return worker
    tried.push(worker)
  }
  const found = tried.length > 0 ? `; jest-runner has no worker at ${tried.join(', ')}` : '; jest-runner is not installed'
  throw new JestInstallError(`vitest-pool-rootless/jest: can't find the worker Jest runs test files with${found}. It supports jest-runner ^29.7 || ^30 (the one Jest installs).`)
}

/** jest-worker's message code for what a worker's `messageParent()` sends: Jest's test events. */
export const PARENT_MESSAGE_CUSTOM = 3

/** A test event a worker sent with `messageParent([name, args])`, or undefined for other messages. */
export function testEventOf(message: unknown): [string, unknown] | undefined {
  if (!Array.isArray(message) || message[0] !== PARENT_MESSAGE_CUSTOM || !Array.isArray(message[1])) return undefined
  const [name, args] = message[1] as [unknown, unknown]
  return typeof name === 'string' ? [name, args] : undefined
}

/**
 * `FORCE_COLOR=1` when Jest's worker farm would set it: when supports-color, as
 * jest-worker loads it, says this process's stdout takes colours.
 */
export function workerColorEnv(testWorker: string): Record<string, string> {
  try {
    const fromRunner = createRequire(testWorker)
    const fromWorker = createRequire(fromRunner.resolve('jest-worker'))
    const supportsColor = fromWorker('supports-color') as { stdout?: unknown }
    return supportsColor.stdout ? { FORCE_COLOR: '1' } : {}
  } catch {
    return process.stdout.isTTY ? { FORCE_COLOR: '1' } : {}
  }
}

/** What Jest constructs a runner with, and what the scheduler calls on it. */
export interface JestRunnerInstance {
  readonly supportsEventEmitters: boolean
  readonly isSerial?: boolean
  runTests(...args: unknown[]): Promise<void>
  on(eventName: string, listener: (eventData: unknown) => void | Promise<void>): () => void
}

/**
 * Jest's own runner class (jest-runner's default export), from the jest-runner the
 * worker module belongs to: what the tests run with when they run unsandboxed.
 */
export function loadDefaultRunner(testWorker: string): new (globalConfig: unknown, context: unknown) => JestRunnerInstance {
  const module = createRequire(testWorker)('./index.js') as { default?: unknown }
  if (typeof module.default !== 'function') throw new JestInstallError(`vitest-pool-rootless/jest: jest-runner at ${dirname(testWorker)} has no default runner class`)
  return module.default as new (globalConfig: unknown, context: unknown) => JestRunnerInstance
}

/**
 * Whether Jest runs tests from this process: its core is loaded. `globalSetup` runs
 * before Jest creates its runner, so there is no runner of ours yet to ask.
 */
export function jestRunsHere(cache: Record<string, unknown> = createRequire(import.meta.url).cache): boolean {
  return Object.keys(cache).some((path) => /[\\/]@jest[\\/]core[\\/]/.test(path))
}

/** `resolveSnapshotPath` of a project's snapshot resolver, as jest-snapshot builds it. */
export type SnapshotPathOf = (testPath: string) => string

/**
 * Where Jest's worker writes a test file's snapshots for `config`: jest-snapshot's
 * `buildSnapshotResolver` (the custom `snapshotResolver` of the project loaded as Jest
 * loads it, TypeScript too), from the jest-runner `testWorker` belongs to. Undefined when
 * jest-snapshot can't be found or the resolver doesn't load: the worker then fails the
 * file with Jest's own words for it.
 */
export async function snapshotPathOf(testWorker: string, config: ProjectConfigView): Promise<SnapshotPathOf | undefined> {
  const fromRunner = createRequire(testWorker)
  // jest-runner -> jest-runtime -> jest-snapshot, wherever the package manager put it
  const places = [() => fromRunner.resolve('jest-snapshot'), () => createRequire(fromRunner.resolve('jest-runtime')).resolve('jest-snapshot')]
  for (const place of places) {
    let module: { buildSnapshotResolver?: (config: unknown) => Promise<{ resolveSnapshotPath(testPath: string): string }> }
    try {
      module = fromRunner(place()) as typeof module
    } catch {
      continue
    }
    if (typeof module.buildSnapshotResolver !== 'function') return undefined
    try {
      const resolver = await module.buildSnapshotResolver(config)
      return (testPath) => resolver.resolveSnapshotPath(testPath)
    } catch {
      return undefined
    }
  }
  return undefined
}
