import { EventEmitter } from 'node:events'
import type { PoolOptions, PoolWorker, WorkerRequest } from 'vitest/node'
import { LeakTally, leakWatchEnv } from '../engine/leak-report.js'
import { defaultSpareCount } from '../engine/spares.js'
import type { ChildExit } from '../engine/exit.js'
import type { LaunchSpec, SandboxRun } from '../engine/run.js'
import { crashOf, WorkerProcess, type Output } from '../engine/worker-process.js'
import { RootlessOptionError, WorkerExitError } from '../plan/errors.js'
import { CRASHED_FILE_ENV, isWireMessage, type CrashedFile } from '../wire/wire.js'
import { allowInVite, failCrashedFile, leakRunnerFile, resetRunnerFile, resetSetupFile } from './reset-setup-file.js'
import { forksWorkerEntry, hasForksWorkerEntry, usesNativeModuleRunner } from './vitest-internals.js'
import { publishInspector } from './inspector.js'
import { workerPaths } from './worker-paths.js'
import { vitestWritable, vitestWritableFor } from './vitest-writable.js'

/** How long a write error waits for the worker's exit before it is reported itself. */
const PIPE_ERROR_GRACE_MS = 200

type Listener = (...args: any[]) => void

/** A `run` or `collect` request under way: its files, and how many of them have started. */
interface Request {
  message: Extract<WorkerRequest, { type: 'run' | 'collect' }>
  files: string[]
  started: number
}

/**
 * Vitest's `PoolWorker` transport for one sandboxed child: the engine starts Vitest's own
 * forks worker entry through the launcher, and this passes messages, follows its output
 * into Vitest's logger, stops it and reports how it crashed. Vitest schedules; this only
 * carries. Only Vitest's public pool API is used; what it reads of Vitest's layout is in
 * vitest-internals.ts.
 *
 * A crash costs one file. A reused worker (isolate: false) says when each file of a
 * request starts (inside/reset-hook.ts); a request of one file needs no word. When a
 * worker dies in the middle of a request, the crash is charged to the file that was
 * running, and a new sandboxed worker takes over the rest of the request -- it fails
 * that file at once, with the exit code or signal, through Vitest's own reporting, and
 * runs the files the old one had not reached.
 */
export class RootlessPoolWorker implements PoolWorker {
  readonly name = 'rootless'
  /**
   * Transformed modules go over IPC, not through files under the host's temp dir,
   * which the sandbox's private tmpfs would hide from the worker.
   */
  readonly cacheFs = false

  private worker?: WorkerProcess
  /** How the worker ended, once it did (and no other took over). */
  private exit?: ChildExit
  private readonly events = new EventEmitter()
  private readonly wrapped = new Map<Listener, Listener>()
  private readonly reusable: boolean
  private readonly nativeRunner: boolean
  /** A reused worker resets through Vitest's own runner (reset-runner.ts), not a setup file. */
  private readonly resetByRunner: boolean
  /** A one-file worker names what its file left through Vitest's own runner (leak-runner.ts). */
  private readonly leakRunner: boolean
  private readonly spares: number
  private readonly output: Output
  private resetFile?: string
  /** Vitest's `start` message as the worker got it, for a worker that takes over. */
  private startMessage?: WorkerRequest
  private request?: Request
  /** The files of the last request, named when a worker dies where no file can be told. */
  private files: string[] = []
  /** With `writable` set: what stays writable of the read-only host (snapshot dirs among it). */
  private writable?: string[]
  /** Messages for a worker still taking over, sent once it has. */
  private held?: WorkerRequest[]
  /** The file the current worker was started to fail (it took over from one that crashed there). */
  private failing?: string
  /** `--inspect`/`--inspect-brk`: the port the worker's inspector opens on, published to the host. */
  private readonly inspectorPort?: number

  constructor(
    private readonly options: PoolOptions,
    private readonly run: SandboxRun,
    warm: number | undefined,
    private readonly leaks: LeakTally = new LeakTally('ignore'),
  ) {
    const config = options.project.config
    // a worker reused across files (isolate: false) needs no spare behind it
    this.reusable = config.isolate === false
    this.nativeRunner = usesNativeModuleRunner(config)
    const ownRunner = !this.nativeRunner && !config.runner && config.mode !== 'benchmark'
    this.resetByRunner = this.reusable && ownRunner
    // leaks are looked for by Vitest's own runner, extended (a reused worker's reset runner does it too)
    this.leakRunner = !this.reusable && ownRunner && leaks.mode !== 'ignore'
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
    this.inspectorPort = publishInspector(run, config)
    this.output = { stdout: options.project.vitest.logger.outputStream, stderr: options.project.vitest.logger.errorStream }
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
      const files = message.context.files.map((f) => (typeof f === 'string' ? f : f.filepath))
      this.request = { message, files, started: 0 }
      this.files = files
    }
    if (message.type === 'start') {
      // a reused worker runs our reset before each file's own setup files; a one-file
      // worker, with leaks looked for, gets our runner that looks (resetFile names either)
      if (this.resetFile) {
        const config = message.context.config
        const reset = this.resetByRunner || this.leakRunner ? { runner: this.resetFile } : { setupFiles: [this.resetFile, ...config.setupFiles] }
        message = { ...message, context: { ...message.context, config: { ...config, ...reset } } }
      }
      this.startMessage = message
    }
    if (this.held) return void this.held.push(message)
    if (message.type === 'run' && this.writable) {
      // a file the sandbox wasn't made for (added in watch mode) writes its snapshots
      // where the sandbox is read-only: a new one, made for it, runs the request
      const writable = vitestWritableFor(this.run, this.options.project as unknown as Parameters<typeof vitestWritableFor>[1], this.request!.files)
      if (writable !== this.writable) {
        this.writable = writable
        return void this.relaunch(message).catch((error: unknown) => {
          this.held = undefined
          this.events.emit('error', error)
        })
      }
    }
    const child = this.worker?.child
    if (!child || !child.connected) {
      this.events.emit('error', Object.assign(new Error('vitest-pool-rootless: the sandboxed worker is gone'), { code: 'ERR_IPC_CHANNEL_CLOSED' }))
      return
    }
    child.send(message, (error) => {
      if (error && this.worker?.child === child) this.events.emit('error', error)
    })
  }

  async start(): Promise<void> {
    if (this.worker) return
    if (!hasForksWorkerEntry(this.options.distPath)) {
      throw new Error(`vitest-pool-rootless: this Vitest has no worker entry at ${forksWorkerEntry(this.options.distPath)}; it supports Vitest ^4.1 || ^5 (see vitest-internals.ts)`)
    }
    const vite = this.options.project.vite
    if (this.resetByRunner) this.resetFile = resetRunnerFile(this.run.stateDir, this.options.distPath, vite)
    else if (this.reusable) this.resetFile = resetSetupFile(this.run.stateDir, this.nativeRunner, vite)
    else if (this.leakRunner) this.resetFile = leakRunnerFile(this.run.stateDir, this.options.distPath, vite)
    this.run.watchProjects([this.options.project.config.root])
    this.exit = undefined
    this.writable = await vitestWritable(this.run, this.options.project as unknown as Parameters<typeof vitestWritable>[1])
    const worker = await this.launch(this.spec(), this.spares)
    // Vitest 4.1 waits up to 60 s for a 'started' reply and not for an exit: for a worker
    // that died before answering (it could not even load), answer with how it died
    let started = false
    worker.child.on('message', (message: { type?: string }) => (started ||= message?.type === 'started'))
    void worker.ended.then(({ code, signal, step }) => {
      if (started || this.worker !== worker) return
      const error = new WorkerExitError({ exitCode: code, signal, files: this.files, step })
      this.events.emit('message', { __vitest_worker_response__: true, type: 'started', error })
    })
  }

  async stop(): Promise<void> {
    const worker = this.worker
    // start() failed before a child existed: nothing to stop
    if (!worker) return
    // SIGTERM, then SIGKILL, as Vitest's forks pool; resolves once its output is all in
    await worker.stop()
    this.worker = undefined
  }

  deserialize(data: unknown): unknown {
    return data
  }

  private spec(env: NodeJS.ProcessEnv = this.options.env): LaunchSpec {
    return {
      entrypoint: forksWorkerEntry(this.options.distPath),
      execArgv: this.options.execArgv,
      env: this.resetByRunner || this.leakRunner ? { ...env, ...leakWatchEnv(this.leaks.mode, this.run.options) } : env,
      needs: workerPaths(this.options.project.config.root, this.options.project.vitest.config.root, this.options.distPath),
      ...(this.writable ? { writable: this.writable } : {}),
      reusable: this.reusable,
      ...(this.inspectorPort === undefined ? {} : { publish: this.inspectorPort }),
    }
  }

  /** Starts a sandboxed worker for `spec` and makes it the one this transport carries for. */
  private async launch(spec: LaunchSpec, spares: number): Promise<WorkerProcess> {
    const worker = new WorkerProcess(await this.run.launch(spec, spares), this.output)
    this.worker = worker
    const { child } = worker
    child.on('message', (message: unknown) => {
      if (this.worker !== worker) return
      // ours, from the reset before each file; Vitest never sees it
      if (isWireMessage(message)) {
        if (message.type === 'file-starts' && this.request) this.request.started++
        if (message.type === 'file-leaks') {
          const line = this.leaks.add(message.file, message.leaks, this.options.project.config.root)
          if (line && this.leaks.mode === 'report') this.output.stderr.write(`${line}\n`)
        }
        return
      }
      if ((message as { type?: string } | null)?.type === 'testfileFinished') this.request = undefined
      this.events.emit('message', message)
    })
    child.on('error', (error) => this.worker === worker && this.events.emit('error', error))
    void worker.ended.then((exit) => this.ended(worker, exit))
    return worker
  }

  /** The worker is gone: a new one takes over the rest of the request where it can, else Vitest is told. */
  private ended(worker: WorkerProcess, exit: ChildExit): void {
    if (this.worker !== worker) return
    const request = this.request
    // which file was running is known only where the worker said so (isolate: false); a
    // sandbox that could not be built is the run's problem, not one file's
    const running = request && (request.files.length === 1 ? request.files[0] : request.files[request.started - 1])
    if (request && running !== undefined && running !== this.failing && exit.step === undefined && this.startMessage) {
      void this.takeOver(request, exit).catch(() => this.tell(exit))
      return
    }
    this.tell(exit)
  }

  private tell(exit: ChildExit): void {
    this.exit = exit
    this.held = undefined
    this.events.emit('exit', exit.code, exit.signal)
  }

  /**
   * A new worker for the files the crashed one had not finished: it gets Vitest's `start`
   * again, then the request with those files; it fails the first -- the one that was
   * running -- at once, with how the old worker ended, and runs the others.
   */
  private async takeOver(request: Request, exit: ChildExit): Promise<void> {
    this.held = []
    const first = request.files.length === 1 ? 0 : request.started - 1
    const crashed = request.files[first]!
    const rest = request.message.context.files.slice(first)
    const crash: CrashedFile = { file: crashed, message: crashOf(exit, [crashed]).message }
    this.failing = crashed
    const worker = await this.launch(this.spec({ ...this.options.env, [CRASHED_FILE_ENV]: JSON.stringify(crash) }), 0)
    await this.startAgain(worker, this.reusable ? this.startMessage! : this.failingFirst(this.startMessage!))
    this.release({ ...request.message, context: { ...request.message.context, files: rest } })
  }

  /**
   * The request `message` in a new sandbox made with the current writable paths, the
   * old one stopped before it ran anything of it; messages sent meanwhile follow it.
   */
  private async relaunch(message: WorkerRequest): Promise<void> {
    this.held = []
    const old = this.worker
    const worker = await this.launch(this.spec(), 0)
    void old?.stop()
    await this.startAgain(worker, this.startMessage!)
    this.release(message)
  }

  /** Vitest's `start` again, for a worker that replaces one Vitest started: its 'started' answer is ours. */
  private startAgain(worker: WorkerProcess, start: WorkerRequest): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const onStarted = (message: { type?: string; error?: unknown } | null) => {
        if (message?.type !== 'started') return
        worker.child.off('message', onStarted)
        message.error ? reject(message.error) : resolve()
      }
      // before the transport's own listener: this 'started' is ours, not Vitest's
      worker.child.prependListener('message', onStarted)
      void worker.ended.then(() => reject(new Error('the worker that took over ended before it started')))
      worker.send(start)
    })
  }

  /** Sends `message`, then what was held while a new worker started. */
  private release(message: WorkerRequest): void {
    const held = this.held ?? []
    this.held = undefined
    this.send(message)
    for (const next of held) this.send(next)
  }

  /**
   * `start` for a worker that fails the file its crashed predecessor ran: a reused one
   * does that in its reset hook, one that runs a single file gets a setup file for it.
   */
  private failingFirst(start: WorkerRequest): WorkerRequest {
    if (start.type !== 'start') return start
    const file = failCrashedFile()
    allowInVite(this.options.project.vite, file)
    const config = start.context.config
    return { ...start, context: { ...start.context, config: { ...config, setupFiles: [file, ...config.setupFiles] } } }
  }

  private wrap(event: string, callback: Listener): Listener {
    let listener = callback
    if (event === 'error') {
      // A write into a worker that is dying fails (EPIPE, closed channel) just before its
      // exit is known. Hold such an error: if the exit follows, our report of it -- with
      // file, code and signal -- is the one that counts.
      listener = (error: NodeJS.ErrnoException) => {
        if (!isPipeError(error)) return callback(error)
        const worker = this.worker
        setTimeout(() => {
          if (worker?.child.exitCode === null && worker.child.signalCode === null && this.worker === worker) callback(error)
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
