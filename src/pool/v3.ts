import { writeFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import v8 from 'node:v8'
import { WorkerFarm, type FarmJob } from '../engine/farm.js'
import { LeakTally, leakWatchEnv } from '../engine/leak-report.js'
import type { OpenedRun } from '../engine/open-run.js'
import type { LaunchSpec, SandboxRun } from '../engine/run.js'
import { defaultSpareCount } from '../engine/spares.js'
import { publishInspector } from './inspector.js'
import type { WorkerProcess } from '../engine/worker-process.js'
import { WorkerExitError } from '../plan/errors.js'
import { CRASHED_FILE_ENV, deserializeError, marked, type CrashedFile } from '../wire/wire.js'
import type { Vitest3Job, Vitest3Setup } from '../inside/vitest3-driver.js'
import { openVitestRun } from './open.js'
import { allowInVite, failCrashedFile, type ViteServerView } from './reset-setup-file.js'
import { environmentOf, vitest3Worker, wrapSerializableConfig, type EnvironmentConfigView, type RpcMessage, type Vitest3Environment, type Vitest3Worker } from './v3-internals.js'
import { workerPaths } from './worker-paths.js'
import { vitestWritable, vitestWritableFor } from './vitest-writable.js'

// The Vitest 3.2 adapter: Vitest 3 takes a pool as a module whose default export makes a
// `ProcessPool` (`runTests`, `collectTests`, `close`). This one is a driver over the
// engine's worker farm: each test file is a job that runs with Vitest's own worker code
// (inside/vitest3-driver.ts) in a sandboxed process, as Vitest 3's forks pool runs it in
// the processes tinypool starts; this side serves the file's RPC calls with Vitest's own
// methods.

/** The parts of Vitest 3's objects the adapter reads (typed here: this package builds against Vitest 4). */
interface Vitest3 {
  distPath: string
  config: { root: string; watch: boolean; maxWorkers?: number; fileParallelism?: boolean; poolOptions?: Record<string, unknown> }
  state: { clearFiles(project: Project3, paths: string[]): void; cancelFiles(paths: string[], project: Project3): void }
  onCancel(listener: (reason: string) => void): void
  onClose(listener: () => unknown): void
}
interface Project3 {
  name: string
  config: EnvironmentConfigView & { isolate?: boolean }
  vite: ViteServerView
  vitest: Vitest3
  getSerializableConfig(): { setupFiles: string[]; testNamePattern?: unknown; defines?: unknown; [key: string]: unknown }
  getProvidedContext(): unknown
}
interface Spec3 {
  project: Project3
  moduleId: string
  testLines?: number[]
}
/** Vitest 3's `ProcessPool`. */
export interface ProcessPool3 {
  name: string
  runTests(specs: Spec3[], invalidates?: string[]): Promise<void>
  collectTests(specs: Spec3[], invalidates?: string[]): Promise<void>
  close(): Promise<void>
}
type Methods = Record<string, (...args: unknown[]) => unknown>

/** What `rootless()` made for a Vitest 3 config: the opened run, and the spares wanted. */
type Prepared = OpenedRun
const prepared = new Map<number, Prepared>()

/**
 * For `rootless()` on Vitest 3, which takes a pool only as a module path: a module in the
 * run's state directory whose default export makes this run's pool. It imports this very
 * module by URL, so both share `prepared` (Node loads it once).
 */
export function vitest3PoolModule(opened: OpenedRun): string {
  const { run } = opened
  const id = prepared.size + 1
  prepared.set(id, opened)
  const file = join(run.stateDir, `vitest3-pool-${id}.mjs`)
  writeFileSync(file, `import { poolFor } from ${JSON.stringify(SELF)}\nexport default poolFor(${id})\n`)
  return file
}

/**
 * This module's URL as Vitest 3 must import it: in the bundled package this code may sit
 * in a shared chunk, whose export names are the bundler's; the entry dist/pool/v3.js
 * re-exports `poolFor` from it by name (scripts/bundle-dist.mjs). From the TypeScript
 * sources, the source file itself.
 */
const SELF = import.meta.url.endsWith('.ts') ? import.meta.url : new URL('../pool/v3.js', import.meta.url).href

/** The pool factory of a module `vitest3PoolModule` wrote. */
export function poolFor(id: number): (vitest: Vitest3, options: { execArgv: string[]; env: NodeJS.ProcessEnv }) => Promise<ProcessPool3> {
  return (vitest, options) => {
    const made = prepared.get(id)
    if (!made) throw new Error('vitest-pool-rootless: this pool module belongs to another Vitest process; let rootless() make it')
    return createPool(vitest, options, made)
  }
}

/**
 * `pool: 'vitest-pool-rootless'` (Vitest 3's string form): options from
 * `poolOptions.rootless`, checked -- and the sandbox probed -- when Vitest first runs it.
 */
export default async function rootlessPool3(vitest: Vitest3, options: { execArgv: string[]; env: NodeJS.ProcessEnv }): Promise<ProcessPool3> {
  const opened = openVitestRun(vitest.config.poolOptions?.rootless, ({ fallback }) => {
    if (fallback === 'unsandboxed') {
      throw new Error("vitest-pool-rootless: fallback: 'unsandboxed' needs pool: rootless({ fallback: 'unsandboxed' }) on Vitest 3: a pool named by a string can't turn into Vitest's forks pool")
    }
  })
  return createPool(vitest, options, opened!)
}

/** Each sandboxed process's entry: the worker loop of ours, with Vitest 3's inside driver. */
const ENTRY = fileURLToPath(new URL('../inside/worker-loop.js', import.meta.url))

async function createPool(vitest: Vitest3, options: { execArgv: string[]; env: NodeJS.ProcessEnv }, { run, warm, leaks }: Prepared): Promise<ProcessPool3> {
  const { createMethodsRPC } = (await import('vitest/node')) as unknown as { createMethodsRPC(project: Project3, options: { cacheFs?: boolean; collect?: boolean }): Methods }
  const worker = vitest3Worker(vitest.distPath)
  const poolOptions = (vitest.config.poolOptions?.rootless ?? {}) as { singleFork?: boolean }
  const cpus = availableParallelism()
  const maxWorkers = poolOptions.singleFork || vitest.config.fileParallelism === false ? 1 : vitest.config.maxWorkers ?? (vitest.config.watch ? Math.max(Math.floor(cpus / 2), 1) : Math.max(cpus - 1, 1))
  const farm = new WorkerFarm(run, { maxWorkers, output: process })
  const spares = warm ?? defaultSpareCount(maxWorkers)
  const tally = new LeakTally(leaks)
  let closing: Promise<void> | undefined
  const close = () =>
    (closing ??= (async () => {
      await farm.close()
      await run.close()
      const summary = tally.summary()
      if (summary) process.stderr.write(`${summary}\n`)
    })())
  // Vitest closes on exit and before each config reload (watch mode)
  vitest.onClose(close)
  let cancelled = false
  /** The processes running a file now: a cancel reaches them as Vitest's own onCancel RPC event. */
  const running = new Map<FarmJob, WorkerProcess>()
  vitest.onCancel((reason) => {
    cancelled = true
    for (const worker of running.values()) worker.send(v8.serialize({ t: 'q', m: 'onCancel', a: [reason] } satisfies RpcMessage))
  })

  // per project, not per file: what its workers start with
  const launchSpecs = new Map<Project3, Map<boolean, LaunchSpec>>()
  const writableOf = new Map<Project3, string[] | undefined>()
  function specOf(project: Project3, reusable: boolean): LaunchSpec {
    let bySharing = launchSpecs.get(project)
    if (!bySharing) {
      launchSpecs.set(project, (bySharing = new Map()))
      run.watchProjects([project.config.root, vitest.config.root])
    }
    let spec = bySharing.get(reusable)
    if (!spec) {
      const setup: Vitest3Setup = { runner: pathToFileURL(worker.runner).href }
      // `--inspect-brk`: the inspector Vitest's worker code opens, published to the host
      const inspectorPort = publishInspector(run, vitest.config as Parameters<typeof publishInspector>[1])
      spec = {
        entrypoint: ENTRY,
        execArgv: options.execArgv,
        env: { ...options.env, ...leakWatchEnv(leaks, run.options) },
        needs: workerPaths(project.config.root, vitest.config.root, vitest.distPath),
        ...(writableOf.get(project) ? { writable: writableOf.get(project) } : {}),
        reusable,
        ...(inspectorPort === undefined ? {} : { publish: inspectorPort }),
        greeting: { key: 'vitest3', message: marked({ type: 'setup', driver: 'vitest3', data: setup }) },
      }
      bySharing.set(reusable, spec)
    }
    return spec
  }

  let workerIds = 0
  /**
   * One file as a farm job: `method` with Vitest's worker, its RPC calls served here.
   * With `crashed`, the file failed a worker before: a worker of its own fails it at once.
   */
  function jobOf(method: 'run' | 'collect', spec: Spec3, environment: Vitest3Environment, invalidates: string[], crashed?: CrashedFile): FarmJob {
    const { project } = spec
    // isolate: false shares processes between the files of one project and environment,
    // one environment at a time, as Vitest's forks pool does
    const group = project.config.isolate === false && !crashed ? `${project.name}\0${environment.name}\0${JSON.stringify(environment.options)}` : undefined
    const functions = createMethodsRPC(project, { cacheFs: false, collect: method === 'collect' })
    const launch = specOf(project, group !== undefined)
    const failing = crashed && failCrashedFile()
    if (failing) allowInVite(project.vite, failing)
    const job: FarmJob = {
      file: spec.moduleId,
      spec: crashed ? { ...launch, env: { ...launch.env, [CRASHED_FILE_ENV]: JSON.stringify(crashed) } } : launch,
      group,
      spares: crashed ? 0 : spares,
      start() {
        if (cancelled) throw new Cancelled()
      },
      running: (process) => void running.set(job, process),
      job(): Vitest3Job {
        const config = project.getSerializableConfig()
        const ctx = {
          pool: 'forks',
          worker: worker.runner,
          config: wrapSerializableConfig(failing ? { ...config, setupFiles: [failing, ...config.setupFiles] } : config),
          files: [{ filepath: spec.moduleId, testLocations: spec.testLines }],
          invalidates,
          environment,
          workerId: ++workerIds,
          projectName: project.name,
          providedContext: project.getProvidedContext(),
        }
        return { entry: pathToFileURL(worker.entry).href, method, ctx }
      },
      onMessage: (message, process) => void serveRpc(functions, message, process),
    }
    return job
  }

  /** Runs `method` on each file: one sandboxed process per file (isolate), or per slot and environment. */
  async function runFiles(method: 'run' | 'collect', specs: Spec3[], invalidates: string[] = []): Promise<void> {
    cancelled = false
    for (const project of new Set(specs.map((s) => s.project))) {
      vitest.state.clearFiles(project, specs.filter((s) => s.project === project).map((s) => s.moduleId))
      // a read-only host (`writable`): what stays writable, found for the project's files
      // when the run starts, and grown by a file added since (watch mode): its workers
      // start anew with it
      const snapshots = project as unknown as Parameters<typeof vitestWritable>[1]
      if (!writableOf.has(project)) writableOf.set(project, await vitestWritable(run, snapshots))
      const writable = vitestWritableFor(run, snapshots, specs.filter((s) => s.project === project).map((s) => s.moduleId))
      if (writable !== writableOf.get(project)) {
        writableOf.set(project, writable)
        launchSpecs.delete(project)
      }
    }
    const jobs = specs.map((spec) => {
      const environment = environmentOf(spec.moduleId, spec.project.config, vitest.distPath)
      return { spec, environment, job: jobOf(method, spec, environment, invalidates) }
    })
    const errors: unknown[] = []
    const runOne = async ({ spec, environment, job }: (typeof jobs)[number]) => {
      try {
        const answer = await farm.run(job)
        if (answer.error) errors.push(deserializeError(answer.error))
        const line = tally.add(spec.moduleId, answer.leaks, vitest.config.root)
        // Vitest 3's worker reported the file's result already: 'fail' fails the run, naming the file
        if (line && leaks === 'fail') errors.push(new Error(line))
        else if (line) process.stderr.write(`${line}\n`)
      } catch (error) {
        if (error instanceof Cancelled) vitest.state.cancelFiles([spec.moduleId], spec.project)
        // a crash costs this file alone, reported as its failure; one the sandbox caused
        // (a step failed) is the run's to report
        else if (error instanceof WorkerExitError && error.step === undefined) await failCrashed(method, spec, environment, invalidates, error, errors)
        else errors.push(error)
      } finally {
        running.delete(job)
      }
    }
    // every isolated file at once; groups that share processes one after the other
    await Promise.all(jobs.filter(({ job }) => job.group === undefined).map(runOne))
    const groups = new Map<string, typeof jobs>()
    for (const entry of jobs) if (entry.job.group !== undefined) groups.set(entry.job.group, [...(groups.get(entry.job.group) ?? []), entry])
    for (const group of groups.values()) {
      await Promise.all(group.map(runOne))
      await farm.releaseIdle()
    }
    if (errors.length > 0) throw new AggregateError(errors, 'Errors occurred while running tests. For more information, see serialized error.')
  }

  /** Fails a file whose worker crashed, through Vitest's own reporting, on a worker of its own. */
  async function failCrashed(method: 'run' | 'collect', spec: Spec3, environment: Vitest3Environment, invalidates: string[], crash: WorkerExitError, errors: unknown[]): Promise<void> {
    const job = jobOf(method, spec, environment, invalidates, { file: spec.moduleId, message: crash.message })
    try {
      const answer = await farm.run(job)
      if (answer.error) errors.push(deserializeError(answer.error))
    } catch {
      errors.push(crash)
    } finally {
      running.delete(job)
    }
  }

  return {
    name: 'rootless',
    runTests: (specs, invalidates) => runFiles('run', specs, invalidates),
    collectTests: (specs, invalidates) => runFiles('collect', specs, invalidates),
    close,
  }
}

/** The run was cancelled before this file started. */
class Cancelled extends Error {}

/** Vitest's worker RPC from a file's process: serves its calls (birpc requests) with Vitest's own methods. */
async function serveRpc(functions: Methods, received: unknown, worker: WorkerProcess): Promise<void> {
  let request: RpcMessage
  try {
    request = v8.deserialize(Buffer.from(received as Uint8Array)) as RpcMessage
  } catch {
    return
  }
  if (request.t !== 'q') return
  const fn = functions[request.m]
  let result: unknown
  let error: unknown
  try {
    if (!fn) throw new Error(`[birpc] function "${request.m}" not found`)
    result = await fn.apply(functions, request.a)
  } catch (e) {
    error = e
  }
  if (request.i) worker.send(v8.serialize(error ? { t: 's', i: request.i, e: error } : { t: 's', i: request.i, r: result }))
}
