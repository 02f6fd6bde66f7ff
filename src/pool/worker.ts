import type { ChildProcess } from 'node:child_process'
import { EventEmitter } from 'node:events'
import { ForksPoolWorker, type PoolOptions, type WorkerRequest } from 'vitest/node'
import { RootlessOptionError, WorkerExitError } from '../ns/errors.js'
import { launcherStep } from '../ns/steps.js'
import type { RunState } from '../engine/run.js'
import { resetSetupFile } from './reset-setup-file.js'
import { workerPaths } from './worker-paths.js'

/** The part of ForksPoolWorker we build ourselves: its child process. */
interface ForkSlot {
  _fork?: ChildProcess
  readonly entrypoint: string
}

/**
 * Vitest's `forks` transport with one change: the child is started through the
 * launcher, so it runs as uid 0 in a fresh sandbox. Piping stdio into Vitest's logger,
 * SIGTERM-then-SIGKILL on stop and message passing are ForksPoolWorker's own.
 */
export class RootlessPoolWorker extends ForksPoolWorker {
  override readonly name: string = 'rootless'
  /**
   * Transformed modules go over IPC, not through files under the host's temp dir,
   * which the sandbox's private tmpfs would hide from the worker.
   */
  override readonly cacheFs: boolean = false

  private readonly run: RunState
  private readonly needs: string[]
  private readonly spares: number
  private readonly reusable: boolean
  private resetSetupFile?: string
  private readonly nativeRunner: boolean
  private readonly project: PoolOptions['project']
  private readonly errors = new EventEmitter()
  private files: string[] = []
  private readonly exitListeners = new Map<(...args: any[]) => void, (...args: any[]) => void>()
  private readonly errorListeners = new Map<(...args: any[]) => void, (...args: any[]) => void>()
  private exited = false

  constructor(options: PoolOptions, run: RunState, warm: number | undefined) {
    super(options)
    this.run = run
    this.project = options.project
    // a worker reused across files (isolate: false) needs no spare behind it
    const config = options.project.config
    this.reusable = config.isolate === false
    this.nativeRunner = (config as { experimental?: { viteModuleRunner?: boolean } }).experimental?.viteModuleRunner === false
    if (this.reusable && config.sequence?.setupFiles === 'parallel') {
      // our reset must finish before any setup file of the user's touches /tmp
      throw new RootlessOptionError('sequence.setupFiles', 'parallel', "expects 'list' with isolate: false under rootless() (the sandbox is reset before your setup files run), or use isolate: true")
    }
    this.spares = this.reusable ? 0 : (warm ?? defaultSpares(config.maxWorkers))
    // paths a worker reads from disk; those under a tmpfs target are bound back in
    this.needs = workerPaths(options)
  }

  override on(event: string, callback: (arg: any) => void): void {
    if (event === 'error') {
      this.errors.on('error', callback)
      // A write into a worker that is dying fails (EPIPE, closed channel) just before its
      // 'exit' arrives. Hold such an error: if the exit follows, our report of it -- with
      // file, code and signal -- is the one that counts (Vitest 5 does the same).
      const held = (error: NodeJS.ErrnoException) => {
        if (!isPipeError(error)) return callback(error)
        setTimeout(() => {
          if (!this.exited) callback(error)
        }, PIPE_ERROR_GRACE_MS).unref()
      }
      this.errorListeners.set(callback, held)
      return super.on(event, held)
    }
    if (event === 'exit') {
      // Vitest's runner listens for 'exit' only while it does not expect one (it stops
      // listening before it stops the worker), so this wrapper sees only crashes.
      const wrapped = (code: number | null, signal: NodeJS.Signals | null) => {
        this.reportCrash(code, signal)
        try {
          ;(callback as (c: number | null, s: NodeJS.Signals | null) => void)(code, signal)
        } catch (error) {
          // The runner re-reports the exit as a generic 'error'. Ours was already taken
          // by the task, which then stopped listening, and an 'error' event nobody
          // listens to would throw and take down the whole Vitest process.
          if (!(error instanceof Error && error.message.startsWith('Worker exited unexpectedly'))) throw error
        }
      }
      this.exitListeners.set(callback, wrapped)
      return super.on(event, wrapped as (arg: any) => void)
    }
    super.on(event, callback)
  }

  override off(event: string, callback: (arg: any) => void): void {
    if (event === 'error') {
      this.errors.off('error', callback)
      const held = this.errorListeners.get(callback)
      this.errorListeners.delete(callback)
      return super.off(event, held ?? callback)
    }
    if (event === 'exit') {
      const wrapped = this.exitListeners.get(callback)
      this.exitListeners.delete(callback)
      return super.off(event, wrapped ?? callback)
    }
    super.off(event, callback)
  }

  override send(message: WorkerRequest): void {
    if (message.type === 'run' || message.type === 'collect') {
      this.files = message.context.files.map((f) => (typeof f === 'string' ? f : f.filepath))
    }
    if (message.type === 'start' && this.resetSetupFile) {
      // a reused worker runs our reset before each file's own setup files
      const config = message.context.config
      message = { ...message, context: { ...message.context, config: { ...config, setupFiles: [this.resetSetupFile, ...config.setupFiles] } } }
    }
    super.send(message)
  }

  override async start(): Promise<void> {
    const slot = this as unknown as ForkSlot
    if (!slot._fork) {
      if (this.reusable) this.resetSetupFile = resetSetupFile(await this.run.stateDir(), this.nativeRunner, this.project.vite)
      const spec = { entrypoint: slot.entrypoint, execArgv: this.execArgv, env: this.env, needs: this.needs, reusable: this.reusable }
      const child = await this.run.launch(spec, this.spares)
      slot._fork = child
      this.exited = false
      child.once('exit', () => (this.exited = true))
      await super.start()
      if (slot._fork !== child) {
        // never let a Vitest change start the worker outside the sandbox unnoticed
        child.kill('SIGKILL')
        throw new Error('vitest-pool-rootless: this Vitest version started its own worker process; the rootless pool does not support it yet.')
      }
      return
    }
    await super.start()
  }

  override async stop(): Promise<void> {
    // start() failed before a child existed (e.g. the sandbox probe): nothing to stop
    if (!(this as unknown as ForkSlot)._fork) return
    await super.stop()
  }

  /** An exit nobody asked for: say which files, which code or signal, and why if we know. */
  private reportCrash(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.errors.listenerCount('error') === 0) return
    this.errors.emit('error', new WorkerExitError({ exitCode: code, signal, files: this.files, step: launcherStep(code) }))
  }
}

/** How long a write error waits for the worker's exit before it is reported itself. */
const PIPE_ERROR_GRACE_MS = 200

function isPipeError(error: NodeJS.ErrnoException): boolean {
  return error?.code === 'EPIPE' || error?.code === 'ERR_IPC_CHANNEL_CLOSED' || error?.code === 'ECONNRESET'
}

/**
 * Spares per worker kind when `warm` is not set: enough to replace the workers that
 * finish at about the same time, without a crowd of idle node processes on big machines.
 */
export function defaultSpares(maxWorkers: number | undefined): number {
  return Math.max(1, Math.min(maxWorkers ?? 1, 2))
}
