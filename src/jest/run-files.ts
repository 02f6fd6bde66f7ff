import type { ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { concurrency } from '../engine/concurrency.js'
import { sandboxNeeds } from '../engine/needs.js'
import { crashOf, followChild } from '../engine/worker-process.js'
import type { ChildExit } from '../engine/exit.js'
import type { LaunchSpec, SandboxRun } from '../engine/run.js'
import type { FromSandbox, RunMessage, SerializedError, SetupMessage } from '../wire/wire.js'
import { resolveTestWorker, testEventOf, workerColorEnv } from './jest-internals.js'
import type { GlobalConfigView, ProjectConfigView, RunnerContextView, TestView, TestWatcherView } from './jest-types.js'

/** The process each test file runs in, inside its sandbox. */
const ENTRY = fileURLToPath(new URL('../inside/jest-worker.js', import.meta.url))

/** One `runTests` call of the Jest runner. */
export interface FilesRun {
  tests: TestView[]
  watcher: TestWatcherView
  globalConfig: GlobalConfigView
  context: RunnerContextView
  run: SandboxRun
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
  const spec = launchSpec(tests, globalConfig)
  run.run.watchProjects(new Set(tests.map((test) => test.context.config.rootDir)))
  const maxWorkers = Math.max(1, globalConfig.maxWorkers || 1)
  const memoryLimit = typeof globalConfig.workerIdleMemoryLimit === 'number' ? globalConfig.workerIdleMemoryLimit : undefined
  // one process per slot; JEST_WORKER_ID is the slot's number, 1..maxWorkers, as Jest's own
  const slots: Slot[] = Array.from({ length: maxWorkers }, (_, i) => ({ id: maxWorkers - i }))
  const free = [...slots]
  const gone: Array<Promise<unknown>> = []
  const context = {
    ...run.context,
    changedFiles: run.context.changedFiles && [...run.context.changedFiles],
    sourcesRelatedToTestsInChangedFiles: run.context.sourcesRelatedToTestsInChangedFiles && [...run.context.sourcesRelatedToTestsInChangedFiles],
  }

  const runOne = async (test: TestView): Promise<unknown> => {
    if (watcher.isInterrupted()) throw new CancelRun()
    await run.emit('test-file-start', [test])
    const slot = free.pop()!
    try {
      // a process that died while idle (killed from outside) is replaced, not blamed
      if (slot.worker && !slot.worker.child.connected) retire(slot)
      slot.worker ??= await startWorker(run.run, spec)
      const data = { config: test.context.config, globalConfig, path: test.path, context }
      const answer = await runInWorker(slot.worker, { type: 'run', workerId: String(slot.id), data }, test.path, run.emit)
      if (memoryLimit !== undefined && answer.heapUsed > memoryLimit) retire(slot)
      return answer.result
    } catch (error) {
      // the process died, or can't go on (its sandbox couldn't be reset): the next file
      // of this slot gets a new one; a file that merely failed to run leaves it serving
      if (!(error instanceof TestFileError)) retire(slot)
      throw error
    } finally {
      free.push(slot)
    }
  }

  const limit = concurrency(maxWorkers)
  const all = Promise.all(
    tests.map((test) =>
      limit(() => runOne(test)).then(
        (result) => run.emit('test-file-success', [test, result]),
        (error: unknown) => (error instanceof CancelRun ? undefined : run.emit('test-file-failure', [test, error])),
      ),
    ),
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
    for (const slot of slots) retire(slot)
    await Promise.all(gone)
  }

  /** Ends a slot's process (it exits when its channel closes; SIGKILL if it won't). */
  function retire(slot: Slot): void {
    const worker = slot.worker
    slot.worker = undefined
    if (!worker) return
    gone.push(worker.gone)
    if (worker.child.connected) worker.child.disconnect()
    const kill = setTimeout(() => worker.child.kill('SIGKILL'), RETIRE_TIMEOUT_MS)
    void worker.gone.then(() => clearTimeout(kill))
  }
}

/** A retired process that doesn't exit on its own within this long is killed. */
const RETIRE_TIMEOUT_MS = 1000

/** One concurrent slot: its number and the process serving it, if one runs. */
interface Slot {
  id: number
  worker?: WorkerProcess
}

/** A sandboxed process serving a slot, its output piped into Jest's. */
interface WorkerProcess {
  child: ChildProcess
  /** Resolves with how it ended, once its output and channel are done too. */
  gone: Promise<ChildExit>
}

/** What every file's process is started with; equal for all files of this run, so spares fit any. */
function launchSpec(tests: TestView[], globalConfig: GlobalConfigView): LaunchSpec {
  const configs = [...new Map(tests.map((test) => [test.context.config.id, test] as const)).values()]
  const projects = [...new Set([globalConfig.rootDir, ...configs.flatMap(({ context: { config } }) => [config.rootDir, ...config.roots])])]
  const testWorker = resolveTestWorker(projects)
  // Jest's transform cache lives under the temp dir by default: kept visible, it stays
  // shared between files and runs, as without the sandbox (it must exist to be kept)
  const caches = [...new Set(configs.map(({ context: { config } }) => config.cacheDirectory))]
  for (const cache of caches) mkdirSync(cache, { recursive: true })
  const setup: SetupMessage = {
    type: 'setup',
    testWorker,
    setupData: { serializableResolvers: configs.map(({ context }) => ({ config: context.config, serializableModuleMap: context.moduleMap.toJSON() })) },
    preload: preloads(configs.map((test) => test.context.config)),
  }
  // as jest-worker starts its children: Jest's environment (after globalSetup), colours
  // if Jest's stdout takes them; JEST_WORKER_ID comes per file, with its slot
  const env: NodeJS.ProcessEnv = { ...process.env, ...workerColorEnv(testWorker) }
  delete env.JEST_WORKER_ID
  return {
    entrypoint: ENTRY,
    // jest-worker drops debugger flags and keeps the rest (--experimental-vm-modules…)
    execArgv: process.execArgv.filter((arg) => !/^--(debug|inspect)/.test(arg)),
    env,
    needs: [...sandboxNeeds(projects, [dirname(dirname(testWorker))]), ...caches],
    // one process serves a slot's files: it gets the plan to reset its sandbox between them
    reusable: true,
    // what jest-runner's farm uses: test results cross as JSON
    serialization: 'json',
    greeting: { key: randomUUID(), message: setup },
  }
}

/** Modules the first test file of a process loads: a spare loads them while it waits. */
function preloads(configs: ProjectConfigView[]): string[] {
  const paths = configs.flatMap((config) => [config.testEnvironment, config.testRunner, ...config.transform.map(([, path]) => path)])
  return [...new Set(paths.filter((path) => typeof path === 'string' && path.startsWith('/')))]
}

/** Starts a slot's process; its output goes to Jest's for as long as it runs. */
async function startWorker(run: SandboxRun, spec: LaunchSpec): Promise<WorkerProcess> {
  const child = await run.launch(spec, 0)
  return { child, gone: followChild(child, process.stdout, process.stderr) }
}

/**
 * Sends `message` to the slot's process and settles with its answer: the result (and
 * the heap it holds now), or the error Jest's worker threw, or -- when the process ends
 * without answering -- how it ended and which sandbox step failed. Test events it sends
 * on the way are passed on to Jest as they come.
 */
function runInWorker(worker: WorkerProcess, message: RunMessage, path: string, emit: FilesRun['emit']): Promise<{ result: unknown; heapUsed: number }> {
  const { child } = worker
  return new Promise((resolve, reject) => {
    const onMessage = (received: unknown) => {
      const event = testEventOf(received)
      if (event) return void emit(event[0], event[1])
      if (!isAnswer(received)) return
      child.off('message', onMessage)
      if (received.type === 'result') resolve({ result: received.result, heapUsed: received.heapUsed })
      else reject(toError(received.error, received.fatal ? Error : TestFileError))
    }
    child.on('message', onMessage)
    void worker.gone.then((exit) => {
      child.off('message', onMessage)
      // settles only if no answer came first
      reject(crashOf(exit, [path]))
    })
    if (child.connected) child.send(message, () => {})
  })
}

function isAnswer(message: unknown): message is FromSandbox {
  const type = (message as { type?: unknown } | null)?.type
  return type === 'result' || type === 'error'
}

/** A test file Jest's worker could not run (it threw): the process that ran it serves on. */
class TestFileError extends Error {}

/** As jest-worker turns a worker's thrown error back into an Error for Jest. */
function toError(serialized: SerializedError, Kind: new (message: string) => Error = Error): Error {
  const error = Object.assign(new Kind(serialized.message), { type: serialized.type })
  error.stack = serialized.stack ?? serialized.message
  if (serialized.code !== undefined) Object.assign(error, { code: serialized.code })
  return error
}
