import type { ChildProcess } from 'node:child_process'
import type { ChildExit } from '../engine/exit.js'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import v8 from 'node:v8'
import { concurrency } from '../engine/concurrency.js'
import { runSettings, SandboxRun, type LaunchSpec } from '../engine/run.js'
import { defaultSpareCount } from '../engine/spares.js'
import { crashOf, followChild, stopChild } from '../engine/worker-process.js'
import { RootlessOptionError } from '../plan/errors.js'
import { validatePoolOptions } from '../plan/options.js'
import { isOurs, marked, type DoneMessage } from '../wire/wire.js'
import { resetSetupFile, type ViteServerView } from './reset-setup-file.js'
import { workerPaths } from './worker-paths.js'
import { environmentOf, vitest3Worker, wrapSerializableConfig, type EnvironmentConfigView, type RpcMessage, type Vitest3Environment } from './v3-internals.js'

// The Vitest 3.2 adapter: Vitest 3 takes a pool as a module whose default export makes a
// `ProcessPool` (`runTests`, `collectTests`, `close`). This one runs each test file with
// Vitest's own worker code in a sandboxed process the engine starts, as Vitest 3's
// forks pool does in the processes tinypool starts.

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
  config: EnvironmentConfigView & { isolate?: boolean; sequence?: { setupFiles?: string }; poolOptions?: Record<string, unknown> }
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

/** A sandboxed process of the pool, and how it ended once all it sent has arrived. */
interface Worker3 {
  child: ChildProcess
  gone: Promise<ChildExit>
}

/** What `rootless()` made for a Vitest 3 config: the opened run, and the spares wanted. */
interface Prepared {
  run: SandboxRun
  warm: number | undefined
}
const prepared = new Map<number, Prepared>()

/**
 * For `rootless()` on Vitest 3, which takes a pool only as a module path: a module in the
 * run's state directory whose default export makes this run's pool. It imports this very
 * module by URL, so both share `prepared` (Node loads it once).
 */
export function vitest3PoolModule(run: SandboxRun, warm: number | undefined): string {
  const id = prepared.size + 1
  prepared.set(id, { run, warm })
  const file = join(run.stateDir, `vitest3-pool-${id}.mjs`)
  writeFileSync(file, `import { poolFor } from ${JSON.stringify(import.meta.url)}\nexport default poolFor(${id})\n`)
  return file
}

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
  const { warm, fallback, runnerPorts, ...sandbox } = validatePoolOptions(vitest.config.poolOptions?.rootless)
  if (fallback === 'unsandboxed') {
    throw new Error("vitest-pool-rootless: fallback: 'unsandboxed' needs pool: rootless({ fallback: 'unsandboxed' }) on Vitest 3: a pool named by a string can't turn into Vitest's forks pool")
  }
  const run = new SandboxRun(sandbox, runSettings(runnerPorts))
  run.open()
  for (const warning of sandbox.warnings) process.stderr.write(`${warning}\n`)
  return createPool(vitest, options, { run, warm })
}

/** The sandbox's entry: src/inside/vitest3-worker.ts. */
const ENTRY = fileURLToPath(new URL('../inside/vitest3-worker.js', import.meta.url))

async function createPool(vitest: Vitest3, options: { execArgv: string[]; env: NodeJS.ProcessEnv }, { run, warm }: Prepared): Promise<ProcessPool3> {
  const { createMethodsRPC } = (await import('vitest/node')) as unknown as { createMethodsRPC(project: Project3, options: { cacheFs?: boolean; collect?: boolean }): Record<string, (...args: unknown[]) => unknown> }
  const worker = vitest3Worker(vitest.distPath)
  const live = new Set<ChildProcess>()
  let closing: Promise<void> | undefined
  const close = () =>
    (closing ??= (async () => {
      for (const child of live) child.kill('SIGKILL')
      await run.close()
    })())
  // Vitest closes on exit and before each config reload (watch mode)
  vitest.onClose(close)
  let cancelled = false
  const cancelListeners = new Set<(reason: string) => void>()
  vitest.onCancel((reason) => {
    cancelled = true
    for (const listener of cancelListeners) listener(reason)
  })

  const poolOptions = (vitest.config.poolOptions?.rootless ?? {}) as { singleFork?: boolean }
  const cpus = (await import('node:os')).availableParallelism()
  const maxWorkers = poolOptions.singleFork || vitest.config.fileParallelism === false ? 1 : vitest.config.maxWorkers ?? (vitest.config.watch ? Math.max(Math.floor(cpus / 2), 1) : Math.max(cpus - 1, 1))

  /** Runs `method` on each file: one sandboxed process per file (isolate), or per slot and environment. */
  async function runFiles(method: 'run' | 'collect', specs: Spec3[], invalidates: string[] = []): Promise<void> {
    cancelled = false
    const files = specs.map((spec) => ({ spec, environment: environmentOf(spec.moduleId, spec.project.config, vitest.distPath) }))
    const projects = new Set(specs.map((s) => s.project))
    for (const { config } of projects) {
      // a reused worker's reset is a setup file of ours, which must finish before any of the user's touches /tmp
      if (config.isolate === false && config.sequence?.setupFiles === 'parallel') {
        throw new RootlessOptionError('sequence.setupFiles', 'parallel', "expects 'list' with isolate: false on Vitest 3 under rootless() (the sandbox is then reset by a setup file that runs before yours), or use isolate: true")
      }
    }
    for (const project of projects) {
      vitest.state.clearFiles(project, specs.filter((s) => s.project === project).map((s) => s.moduleId))
    }
    const limit = concurrency(maxWorkers)
    const errors: unknown[] = []
    // isolate: false shares processes between the files of one project and environment
    const groups = new Map<string, typeof files>()
    for (const file of files) {
      const key = file.spec.project.config.isolate === false ? `${file.spec.project.name}\0${file.environment.name}\0${JSON.stringify(file.environment.options)}` : `file ${groups.size}`
      groups.set(key, [...(groups.get(key) ?? []), file])
    }
    let waiting = files.length
    // VITEST_POOL_ID: 1..maxWorkers, one per process running at a time, as tinypool's
    const poolIds = Array.from({ length: maxWorkers }, (_, i) => maxWorkers - i)
    let workerIds = 0
    const runGroup = async (group: typeof files) => {
      const reusable = group[0]!.spec.project.config.isolate === false
      const idle: Array<Worker3 & { poolId: number }> = []
      await Promise.all(
        group.map((file) =>
          limit(async () => {
            const { spec, environment } = file
            waiting--
            if (cancelled) return vitest.state.cancelFiles([spec.moduleId], spec.project)
            let slot = reusable ? idle.pop() : undefined
            try {
              // spares for files still to come, never more: a spare nobody takes is a wasted start
              slot ??= { ...(await launch(spec.project, reusable, reusable ? 0 : Math.min(warm ?? defaultSpareCount(maxWorkers), waiting))), poolId: poolIds.pop()! }
              await runFile(slot, method, spec, environment, invalidates, { workerId: ++workerIds, poolId: slot.poolId, last: !reusable })
              if (reusable && slot.child.connected) {
                idle.push(slot)
                slot = undefined
              }
            } catch (error) {
              errors.push(error)
            } finally {
              if (slot) poolIds.push(slot.poolId)
            }
          }),
        ),
      )
      for (const { child, poolId } of idle) {
        void stopChild(child)
        poolIds.push(poolId)
      }
    }
    // every isolated file at once; groups that share processes one after the other, as
    // Vitest's forks pool does (its processes serve one environment at a time)
    const all = [...groups.values()]
    await Promise.all(all.filter((group) => group[0]!.spec.project.config.isolate !== false).map(runGroup))
    for (const group of all.filter((g) => g[0]!.spec.project.config.isolate === false)) await runGroup(group)
    if (errors.length > 0) throw new AggregateError(errors, 'Errors occurred while running tests. For more information, see serialized error.')
  }

  // per project, not per file: where its worker reads from, and its reset setup file
  const needs = new Map<Project3, string[]>()
  const resetFiles = new Map<Project3, string>()

  async function launch(project: Project3, reusable: boolean, spares: number): Promise<Worker3> {
    let paths = needs.get(project)
    if (!paths) {
      needs.set(project, (paths = workerPaths(project.config.root, vitest.config.root, vitest.distPath)))
      run.watchProjects([project.config.root, vitest.config.root])
    }
    const spec: LaunchSpec = {
      entrypoint: ENTRY,
      execArgv: options.execArgv,
      env: options.env,
      needs: paths,
      reusable,
      greeting: { key: 'vitest3', message: marked({ type: 'load' as const, runner: pathToFileURL(worker.runner).href }) },
    }
    const child = await run.launch(spec, spares)
    live.add(child)
    child.once('exit', () => live.delete(child))
    return { child, gone: followChild(child, process.stdout, process.stderr) }
  }

  /** Runs one file in `worker`, serving its RPC calls, until it says done or dies. */
  function runFile({ child, gone }: Worker3, method: 'run' | 'collect', spec: Spec3, environment: Vitest3Environment, invalidates: string[], ids: { workerId: number; poolId: number; last: boolean }): Promise<void> {
    const { workerId, poolId, last } = ids
    const { project } = spec
    const functions = createMethodsRPC(project, { cacheFs: false, collect: method === 'collect' })
    const post = (message: RpcMessage) => child.connected && child.send(v8.serialize(message), () => {})
    const onCancel = (reason: string) => post({ t: 'q', m: 'onCancel', a: [reason] })
    cancelListeners.add(onCancel)
    const config = project.getSerializableConfig()
    // a reused process rebuilds its sandbox before each file (the reset setup file, first)
    let resetFile = resetFiles.get(project)
    if (spec.project.config.isolate === false && !resetFile) resetFiles.set(project, (resetFile = resetSetupFile(run.stateDir, false, project.vite)))
    const setupFiles = resetFile ? [resetFile, ...config.setupFiles] : config.setupFiles
    const ctx = {
      pool: 'forks',
      worker: worker.runner,
      config: wrapSerializableConfig({ ...config, setupFiles }),
      files: [{ filepath: spec.moduleId, testLocations: spec.testLines }],
      invalidates,
      environment,
      workerId,
      projectName: project.name,
      providedContext: project.getProvidedContext(),
    }
    return new Promise<void>((resolve, reject) => {
      const onMessage = async (received: unknown) => {
        if (isOurs(received)) {
          if ((received as DoneMessage).type !== 'done') return
          finish()
          const error = (received as DoneMessage).error
          return error ? reject(Object.assign(new Error(error.message), error)) : resolve()
        }
        // Vitest's worker RPC: serve its calls (birpc requests) with Vitest's own methods
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
        if (request.i) post(error ? { t: 's', i: request.i, e: error } : { t: 's', i: request.i, r: result })
      }
      const finish = () => {
        child.off('message', onMessage)
        cancelListeners.delete(onCancel)
      }
      // after all the process sent: an answer that came first settled this already
      void gone.then((exit) => {
        finish()
        reject(crashOf(exit, [spec.moduleId]))
      })
      child.on('message', onMessage)
      child.send(marked({ type: 'run' as const, entry: pathToFileURL(worker.entry).href, method, poolId, ctx, last }), () => {})
    })
  }

  return {
    name: 'rootless',
    runTests: (specs, invalidates) => runFiles('run', specs, invalidates),
    collectTests: (specs, invalidates) => runFiles('collect', specs, invalidates),
    close,
  }
}
