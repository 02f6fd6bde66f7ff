import { randomUUID } from 'node:crypto'
import { mkdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { WorkerFarm, type FarmJob } from '../engine/farm.js'
import { LeakTally, leakWatchEnv, type LeaksMode } from '../engine/leak-report.js'
import { sandboxNeeds } from '../engine/needs.js'
import type { LaunchSpec, SandboxRun } from '../engine/run.js'
import type { JestSetup } from '../inside/jest-driver.js'
import { deserializeError, marked } from '../wire/wire.js'
import { resolveTestWorker, snapshotPathOf, testEventOf, workerColorEnv, type SnapshotPathOf } from './jest-internals.js'
import { workerDebugger } from './worker-debugger.js'
import type { GlobalConfigView, ProjectConfigView, RunnerContextView, TestView, TestWatcherView } from './jest-types.js'

// The Jest runner's driver over the engine's worker farm: what every file's worker starts
// with (jest-runner's own worker, behind our loop: inside/jest-driver.ts), the run
// message, and how an answer becomes one of Jest's test events.

/** Each sandboxed process's entry: the worker loop of ours, with Jest's inside driver. */
const ENTRY = fileURLToPath(new URL('../inside/worker-loop.js', import.meta.url))

/** One `runTests` call of the Jest runner. */
export interface FilesRun {
  tests: TestView[]
  watcher: TestWatcherView
  globalConfig: GlobalConfigView
  context: RunnerContextView
  run: SandboxRun
  /** What to do with what a file left running (`leaks`). */
  leaks: LeaksMode
  /** Emits one of Jest's test events to the scheduler. */
  emit(eventName: string, eventData: unknown): Promise<void>
}

/** Watch mode stopped the run: like jest-runner, stop quietly. */
class CancelRun extends Error {
  override readonly name = 'CancelRun'
}

/**
 * Runs each test file in a sandboxed process, `maxWorkers` at once, and tells Jest how
 * each went through its events -- what jest-runner does with its worker farm: one
 * process per concurrent slot, reused across files (Jest's own isolation, a module
 * registry per file, holds there as in the farm). Before each file after the first the
 * process rebuilds its sandbox in place, so every file starts with an empty temp dir, a
 * fresh network, no process or mount an earlier file left. Nothing is retried: a file
 * whose process dies is reported once, as failed, with how it ended, and its slot gets
 * a new process for the next file.
 */
export async function runFiles(run: FilesRun): Promise<void> {
  const { tests, watcher, globalConfig } = run
  if (tests.length === 0) return
  const testWorker = resolveTestWorker(projectDirs(tests, globalConfig))
  const base = launchSpec(tests, globalConfig, testWorker, workerDebugger(run.run))
  // a read-only host (`writable`): the worker still writes snapshots and the transform cache
  const writable = run.run.options.writable && run.run.writablePaths(globalConfig.rootDir, [...(await snapshotDirs(tests, testWorker)), ...tests.map((test) => test.context.config.cacheDirectory)])
  const spec = { ...base, env: { ...base.env, ...leakWatchEnv(run.leaks, run.run.options) }, ...(writable ? { writable } : {}) }
  const tally = new LeakTally(run.leaks)
  run.run.watchProjects(new Set(tests.map((test) => test.context.config.rootDir)))
  const farm = new WorkerFarm(run.run, {
    maxWorkers: Math.max(1, globalConfig.maxWorkers || 1),
    output: process,
    memoryLimit: typeof globalConfig.workerIdleMemoryLimit === 'number' ? globalConfig.workerIdleMemoryLimit : undefined,
  })
  const context = {
    ...run.context,
    changedFiles: run.context.changedFiles && [...run.context.changedFiles],
    sourcesRelatedToTestsInChangedFiles: run.context.sourcesRelatedToTestsInChangedFiles && [...run.context.sourcesRelatedToTestsInChangedFiles],
  }
  const jobOf = (test: TestView): FarmJob => ({
    file: test.path,
    spec,
    // one process serves a slot's files, whichever they are
    group: 'jest',
    async start() {
      if (watcher.isInterrupted()) throw new CancelRun()
      await run.emit('test-file-start', [test])
    },
    // `worker()`'s argument; JEST_WORKER_ID is the slot's number, 1..maxWorkers, as Jest's own
    job: () => ({ config: test.context.config, globalConfig, path: test.path, context }),
    onMessage(message) {
      const event = testEventOf(message)
      if (event) void run.emit(event[0], event[1])
    },
  })

  const all = Promise.all(
    tests.map(async (test) => {
      try {
        const answer = await farm.run(jobOf(test))
        // an error is what Jest's worker threw: the file could not run; a failing test is a result
        if (answer.error) throw deserializeError(answer.error)
        const line = tally.add(test.path, answer.leaks, globalConfig.rootDir)
        if (line && run.leaks === 'fail') failWith(answer.result as JestResultView, line)
        else if (line) process.stderr.write(`${line}\n`)
        await run.emit('test-file-success', [test, answer.result])
      } catch (error) {
        if (!(error instanceof CancelRun) && !watcher.isInterrupted()) await run.emit('test-file-failure', [test, error])
      }
    }),
  )
  const interrupted = new Promise<void>((resolve) => {
    watcher.on('change', (state) => {
      if (state.interrupted) resolve()
    })
  })
  try {
    await Promise.race([all, interrupted])
  } finally {
    // done, or interrupted (watch mode): the processes go, sandboxes and all
    await farm.close()
    const summary = tally.summary()
    if (summary) process.stderr.write(`${summary}\n`)
  }
}

/** The part of Jest's TestResult a leak fails a file through: a suite-level error, its tests' results kept. */
interface JestResultView {
  testExecError?: { message: string; stack: string }
  failureMessage?: string | null
}

/** Fails the file (`leaks: 'fail'`) as Jest fails a suite whose code threw outside a test. */
function failWith(result: JestResultView, line: string): void {
  result.testExecError = { message: line, stack: line }
  result.failureMessage = [result.failureMessage, `  ● ${line}`].filter(Boolean).join('\n\n')
}

/** The files' projects, one test of each. */
const projectsOf = (tests: TestView[]): TestView[] => [...new Map(tests.map((test) => [test.context.config.id, test] as const)).values()]

/** The run's root and each project's root and roots: where Jest is looked up from, and what the sandbox needs. */
function projectDirs(tests: TestView[], globalConfig: GlobalConfigView): string[] {
  return [...new Set([globalConfig.rootDir, ...projectsOf(tests).flatMap(({ context: { config } }) => [config.rootDir, ...config.roots])])]
}

/**
 * The directories the files' snapshots go to: `__snapshots__` next to each, or where the
 * project's custom `snapshotResolver` puts them, asked of it as Jest's worker will.
 */
async function snapshotDirs(tests: TestView[], testWorker: string): Promise<string[]> {
  const custom = new Map<string, SnapshotPathOf | undefined>()
  for (const { context: { config } } of projectsOf(tests)) {
    if (typeof config.snapshotResolver === 'string') custom.set(config.id, await snapshotPathOf(testWorker, config))
  }
  return [
    ...new Set(
      tests.map((test) => {
        const snapshotPath = custom.get(test.context.config.id)
        return snapshotPath ? dirname(snapshotPath(test.path)) : join(dirname(test.path), '__snapshots__')
      }),
    ),
  ]
}

/** What every file's process is started with; equal for all files of this run, so spares fit any. */
function launchSpec(tests: TestView[], globalConfig: GlobalConfigView, testWorker: string, debug?: { publish: number; env: Record<string, string> }): LaunchSpec {
  const configs = projectsOf(tests)
  const projects = projectDirs(tests, globalConfig)
  // Jest's transform cache lives under the temp dir by default: kept visible, it stays
  // shared between files and runs, as without the sandbox (it must exist to be kept)
  const caches = [...new Set(configs.map(({ context: { config } }) => config.cacheDirectory))]
  for (const cache of caches) mkdirSync(cache, { recursive: true })
  const setup: JestSetup = {
    testWorker,
    setupData: { serializableResolvers: configs.map(({ context }) => ({ config: context.config, serializableModuleMap: context.moduleMap.toJSON() })) },
    preload: preloads(configs.map((test) => test.context.config)),
  }
  // as jest-worker starts its children: Jest's environment (after globalSetup), colours
  // if Jest's stdout takes them; JEST_WORKER_ID comes per file, with its slot
  const env: NodeJS.ProcessEnv = { ...process.env, ...workerColorEnv(testWorker), ...debug?.env }
  delete env.JEST_WORKER_ID
  return {
    entrypoint: ENTRY,
    // jest-worker drops debugger flags and keeps the rest (--experimental-vm-modules…);
    // a debugger of the Jest process gets one of the worker's own (worker-debugger.ts)
    execArgv: process.execArgv.filter((arg) => !/^--(debug|inspect)/.test(arg)),
    ...(debug ? { publish: debug.publish } : {}),
    env,
    needs: [...sandboxNeeds(projects, [dirname(dirname(testWorker))]), ...caches],
    // one process serves a slot's files: it gets the plan to reset its sandbox between them
    reusable: true,
    // what jest-runner's farm uses: test results cross as JSON
    serialization: 'json',
    greeting: { key: randomUUID(), message: marked({ type: 'setup', driver: 'jest', data: setup }) },
  }
}

/** Modules the first test file of a process loads: a spare loads them while it waits. */
function preloads(configs: ProjectConfigView[]): string[] {
  const paths = configs.flatMap((config) => [config.testEnvironment, config.testRunner, ...config.transform.map(([, path]) => path)])
  return [...new Set(paths.filter((path) => typeof path === 'string' && path.startsWith('/')))]
}
