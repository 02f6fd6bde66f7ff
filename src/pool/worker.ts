import type { ChildProcess } from 'node:child_process'
import { EventEmitter } from 'node:events'
import type { Writable } from 'node:stream'
import type { PoolOptions, PoolWorker, WorkerRequest } from 'vitest/node'
import { exitOf, type SandboxRun } from '../engine/run.js'
import type { ChildExit } from '../engine/exit.js'
import { RootlessOptionError, WorkerExitError } from '../plan/errors.js'
import { resetRunnerFile, resetSetupFile } from './reset-setup-file.js'
import { forksWorkerEntry, hasForksWorkerEntry, usesNativeModuleRunner } from './vitest-internals.js'
import { workerPaths } from './worker-paths.js'
import { pipeInto, unpipeFrom } from '../engine/output.js'
import { stopChild } from '../engine/worker-process.js'
import { defaultSpareCount } from '../engine/spares.js'

/** How long a write error waits for the worker's exit before it is reported itself. */
const PIPE_ERROR_GRACE_MS = 200

type Listener = (...args: any[]) => void

/**
 * Vitest's `PoolWorker` transport for one sandboxed child: the engine starts Vitest's own
 * forks worker entry through the launcher, and this passes messages, pipes its output
 * into Vitest's logger, stops it (SIGTERM, then SIGKILL) and reports how it crashed.
 * Only Vitest's public pool API is used; what it reads of Vitest's layout is in
 * vitest-internals.ts.
 */
export class RootlessPoolWorker implements PoolWorker {
  readonly name = 'rootless'
  /**
   * Transformed modules go over IPC, not through files under the host's temp dir,
   * which the sandbox's private tmpfs would hide from the worker.
   */
  readonly cacheFs = false

  private child?: ChildProcess
  private exit?: ChildExit
  /** The process is gone (its exit may still be being classified). */
  private gone = false
  private readonly events = new EventEmitter()
  private readonly wrapped = new Map<Listener, Listener>()
  private readonly reusable: boolean
  private readonly nativeRunner: boolean
  /** A reused worker resets through Vitest's own runner (reset-runner.ts), not a setup file. */
  private readonly resetByRunner: boolean
  private readonly spares: number
  private readonly stdout: Writable
  private readonly stderr: Writable
  private resetFile?: string
  private files: string[] = []

  constructor(
    private readonly options: PoolOptions,
    private readonly run: SandboxRun,
    warm: number | undefined,
  ) {
    const config = options.project.config
    // a worker reused across files (isolate: false) needs no spare behind it
    this.reusable = config.isolate === false
    this.nativeRunner = usesNativeModuleRunner(config)
    this.resetByRunner = this.reusable && !this.nativeRunner && !config.runner && config.mode !== 'benchmark'
    if (this.reusable && !this.resetByRunner && config.sequence?.setupFiles === 'parallel') {
      // the reset is then a setup file of ours, which must finish before any of the user's touches /tmp
      const why = config.runner ? 'a custom `runner`' : config.mode === 'benchmark' ? 'benchmark mode' : 'the native module runner'
      throw new RootlessOptionError(
        'sequence.setupFiles',
        'parallel',
        `expects 'list' with isolate: false and ${why} under rootless() (the sandbox is then reset by a setup file that runs before yours), or use isolate: true`,
      )
    }
    this.spares = this.reusable ? 0 : (warm ?? defaultSpareCount(config.maxWorkers))
    this.stdout = options.project.vitest.logger.outputStream
    this.stderr = options.project.vitest.logger.errorStream
  }

  on(event: string, callback: Listener): void {
    const listener = this.wrap(event, callback)
    this.events.on(event, listener)
    // the child may have died between start() and Vitest subscribing: tell it now, or
    // Vitest would wait for a 'started' message that never comes
    if (event === 'exit' && this.exit) {
      const { code, signal } = this.exit
      setImmediate(() => this.events.listeners('exit').includes(listener) && listener(code, signal))
    }
  }

  off(event: string, callback: Listener): void {
    this.events.off(event, this.wrapped.get(callback) ?? callback)
    this.wrapped.delete(callback)
  }

  send(message: WorkerRequest): void {
    if (message.type === 'run' || message.type === 'collect') {
      this.files = message.context.files.map((f) => (typeof f === 'string' ? f : f.filepath))
    }
    if (message.type === 'start' && this.resetFile) {
      // a reused worker runs our reset before each file's own setup files
      const config = message.context.config
      const reset = this.resetByRunner ? { runner: this.resetFile } : { setupFiles: [this.resetFile, ...config.setupFiles] }
      message = { ...message, context: { ...message.context, config: { ...config, ...reset } } }
    }
    const child = this.child
    if (!child || !child.connected) {
      this.events.emit('error', Object.assign(new Error('vitest-pool-rootless: the sandboxed worker is gone'), { code: 'ERR_IPC_CHANNEL_CLOSED' }))
      return
    }
    child.send(message, (error) => {
      if (error) this.events.emit('error', error)
    })
  }

  async start(): Promise<void> {
    if (this.child) return
    if (!hasForksWorkerEntry(this.options.distPath)) {
      throw new Error(`vitest-pool-rootless: this Vitest has no worker entry at ${forksWorkerEntry(this.options.distPath)}; it supports Vitest ^4.1 || ^5 (see vitest-internals.ts)`)
    }
    const vite = this.options.project.vite
    if (this.resetByRunner) this.resetFile = resetRunnerFile(this.run.stateDir, this.options.distPath, vite)
    else if (this.reusable) this.resetFile = resetSetupFile(this.run.stateDir, this.nativeRunner, vite)
    const spec = {
      entrypoint: forksWorkerEntry(this.options.distPath),
      execArgv: this.options.execArgv,
      env: this.options.env,
      needs: workerPaths(this.options.project.config.root, this.options.project.vitest.config.root, this.options.distPath),
      reusable: this.reusable,
    }
    this.run.watchProjects([this.options.project.config.root])
    const child = await this.run.launch(spec, this.spares)
    this.child = child
    this.exit = undefined
    this.gone = false
    child.once('exit', () => (this.gone = true))
    // Vitest 4.1 waits up to 60 s for a 'started' reply and not for an exit: for a worker
    // that died before answering (it could not even load), answer with how it died
    let started = false
    child.on('message', (message: { type?: string }) => {
      started ||= message?.type === 'started'
      this.events.emit('message', message)
    })
    void exitOf(child).then(({ code, signal, step }) => {
      if (started) return
      const error = new WorkerExitError({ exitCode: code, signal, files: this.files, step })
      this.events.emit('message', { __vitest_worker_response__: true, type: 'started', error })
    })
    child.on('error', (error) => this.events.emit('error', error))
    void exitOf(child).then((exit) => {
      this.exit = exit
      this.events.emit('exit', exit.code, exit.signal)
    })
    pipeInto(child.stdout, this.stdout)
    pipeInto(child.stderr, this.stderr)
  }

  async stop(): Promise<void> {
    const child = this.child
    // start() failed before a child existed: nothing to stop
    if (!child) return
    // SIGTERM, then SIGKILL, as Vitest's forks pool
    if (!this.exit) await stopChild(child)
    unpipeFrom(child.stdout, this.stdout)
    unpipeFrom(child.stderr, this.stderr)
    this.child = undefined
  }

  deserialize(data: unknown): unknown {
    return data
  }

  private wrap(event: string, callback: Listener): Listener {
    let listener = callback
    if (event === 'error') {
      // A write into a worker that is dying fails (EPIPE, closed channel) just before its
      // exit is known. Hold such an error: if the exit follows, our report of it -- with
      // file, code and signal -- is the one that counts.
      listener = (error: NodeJS.ErrnoException) => {
        if (!isPipeError(error)) return callback(error)
        setTimeout(() => {
          if (!this.gone) callback(error)
        }, PIPE_ERROR_GRACE_MS).unref()
      }
    } else if (event === 'exit') {
      // Vitest listens for 'exit' only while it does not expect one (it stops listening
      // before it stops a worker), so this sees only crashes.
      listener = (code: number | null, signal: NodeJS.Signals | null) => {
        const reported = this.reportCrash(code, signal)
        try {
          callback(code, signal)
        } catch (error) {
          // Vitest's runner re-reports the exit as a generic error on its own emitter,
          // where the task that took our report no longer listens -- an 'error' event
          // nobody listens to throws. The crash is reported; don't let that take Vitest down.
          if (!reported) throw error
        }
      }
    }
    this.wrapped.set(callback, listener)
    return listener
  }

  /** An exit nobody asked for: say which files, which code or signal, and why if we know. */
  private reportCrash(code: number | null, signal: NodeJS.Signals | null): boolean {
    if (this.events.listenerCount('error') === 0) return false
    this.events.emit('error', new WorkerExitError({ exitCode: code, signal, files: this.files, step: this.exit?.step }))
    return true
  }
}

function isPipeError(error: NodeJS.ErrnoException): boolean {
  return error?.code === 'EPIPE' || error?.code === 'ERR_IPC_CHANNEL_CLOSED' || error?.code === 'ECONNRESET'
}
