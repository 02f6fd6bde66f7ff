import { isWireMessage, marked, type AnswerMessage } from '../wire/wire.js'
import type { LaunchSpec, SandboxRun } from './run.js'
import { crashOf, WorkerProcess, type Output } from './worker-process.js'

/** One test file for the farm to run: what a runner's driver hands it. */
export interface FarmJob {
  /** The test file; a crash of its worker is charged to it alone. */
  file: string
  /** What the worker is started with (entry, execArgv, env, kept paths, greeting). */
  spec: LaunchSpec
  /**
   * Workers that may serve this job after others, and others after it: those of the
   * same group (isolate: false, one per project and environment; the Jest runner).
   * Unset: a worker of its own, which exits after it (isolate: true).
   */
  group?: string
  /**
   * At most this many booted spares of `spec` kept waiting behind a job with no group
   * -- never more than the files of that spec still waiting for a slot.
   */
  spares?: number
  /**
   * Called when the job has a slot, before its worker is taken: the runner says the file
   * starts, or throws to drop the job unrun (a cancelled run).
   */
  start?(): Promise<void> | void
  /** The driver's part of the run message (wire.ts `RunMessage.job`), for concurrency slot `slot`. */
  job(slot: number): unknown
  /** Called with the worker as the run message goes to it. */
  running?(worker: WorkerProcess): void
  /** What the worker sends while it runs the file, besides its answer: RPC calls, test events. */
  onMessage?(message: unknown, worker: WorkerProcess): void
}

export interface FarmOptions {
  /** Files that run at once; slots are numbered 1..maxWorkers. */
  maxWorkers: number
  output: Output
  /** A worker whose heap holds more than this many bytes after a file is replaced (Jest's `workerIdleMemoryLimit`). */
  memoryLimit?: number
}

/** One concurrency slot: its number and the worker serving it, if one does. */
interface Slot {
  id: number
  worker?: WorkerProcess
  group?: string
}

interface Waiting {
  job: FarmJob
  resolve(answer: AnswerMessage): void
  reject(error: unknown): void
}

/** The farm was closed while the job waited for a slot: it never ran. */
export class FarmClosedError extends Error {
  override readonly name = 'FarmClosedError'
}

/**
 * The sandboxed worker processes of the runners whose worker loop we own (Vitest 3,
 * Jest; inside/worker-loop.ts): at most `maxWorkers` files at once, each on a numbered
 * slot (`JEST_WORKER_ID`, `VITEST_POOL_ID`), a worker reused for the next file of its
 * group or retired (memory limit, a failed reset, another group's turn), and
 * `run(file) -> answer | crash`. A crash costs the file that was running, nothing else:
 * that slot's next file gets a new worker. Output is followed and flushed by
 * WorkerProcess. Runners are drivers over it: what a worker starts with, the run
 * message, what its answer becomes.
 */
export class WorkerFarm {
  private readonly free: Slot[]
  private readonly queue: Waiting[] = []
  /** Every worker started and not yet ended: what `close` waits for. */
  private readonly workers = new Set<WorkerProcess>()
  private closed = false

  constructor(
    private readonly sandbox: SandboxRun,
    private readonly options: FarmOptions,
  ) {
    const max = Math.max(1, options.maxWorkers)
    // taken from the end: slot 1 first, as Jest and tinypool number theirs
    this.free = Array.from({ length: max }, (_, i) => ({ id: max - i }))
  }

  /** Runs `job` when a slot is free: its worker's answer, or a WorkerExitError if the worker died first. */
  run(job: FarmJob): Promise<AnswerMessage> {
    if (this.closed) return Promise.reject(new FarmClosedError('vitest-pool-rootless: the worker farm is closed'))
    return new Promise((resolve, reject) => {
      this.queue.push({ job, resolve, reject })
      this.schedule()
    })
  }

  /** Stops the workers that wait for a file (a group's files are done, or the run is). */
  async releaseIdle(): Promise<void> {
    await Promise.all(this.free.map((slot) => this.retire(slot)))
  }

  /** Drops the jobs still waiting, stops every worker, and resolves once all have ended. */
  async close(): Promise<void> {
    this.closed = true
    for (const waiting of this.queue.splice(0)) waiting.reject(new FarmClosedError('vitest-pool-rootless: the run ended before this file started'))
    await Promise.all([...this.workers].map((worker) => worker.stop()))
  }

  private schedule(): void {
    while (this.queue.length > 0 && this.free.length > 0) {
      const waiting = this.queue.shift()!
      const [slot] = this.free.splice(this.slotFor(waiting.job), 1)
      void this.runOn(slot!, waiting).finally(() => {
        this.free.push(slot!)
        this.schedule()
      })
    }
  }

  /** The free slot for `job`: one whose worker serves its group, else the most recently freed. */
  private slotFor(job: FarmJob): number {
    for (let at = this.free.length - 1; at >= 0; at--) {
      const slot = this.free[at]!
      if (job.group !== undefined && slot.worker !== undefined && slot.group === job.group) return at
    }
    return this.free.length - 1
  }

  private async runOn(slot: Slot, { job, resolve, reject }: Waiting): Promise<void> {
    try {
      await job.start?.()
      // a worker of another group, or one that died while idle (killed from outside), is replaced, not blamed
      if (slot.worker && (!slot.worker.connected || job.group === undefined || slot.group !== job.group)) await this.retire(slot)
      slot.worker ??= this.track(new WorkerProcess(await this.sandbox.launch(job.spec, this.sparesFor(job)), this.options.output))
      slot.group = job.group
      const answer = await this.exchange(slot, job)
      const { memoryLimit } = this.options
      // it can't serve another file: it goes, and the slot's next file gets a new one
      if (answer.fatal || (memoryLimit !== undefined && answer.heapUsed > memoryLimit)) void this.retire(slot)
      // one with no group exits after its file by itself
      else if (job.group === undefined) slot.worker = undefined
      resolve(answer)
    } catch (error) {
      // the worker died, or never started: the slot's next file gets a new one
      if (slot.worker && !slot.worker.connected) void this.retire(slot)
      reject(error)
    }
  }

  /** Spares to keep booted behind `job`: a spare nobody takes is a wasted start. */
  private sparesFor(job: FarmJob): number {
    if (job.group !== undefined || !job.spares) return 0
    const coming = this.queue.filter((waiting) => waiting.job.group === undefined && waiting.job.spec === job.spec).length
    return Math.min(job.spares, coming)
  }

  /** Sends the run message and settles with the answer, or with the crash if the worker ends first. */
  private exchange(slot: Slot, job: FarmJob): Promise<AnswerMessage> {
    const worker = slot.worker!
    return new Promise((resolve, reject) => {
      const onMessage = (message: unknown) => {
        if (isWireMessage(message) && message.type === 'done') {
          worker.child.off('message', onMessage)
          resolve(message)
        } else if (!isWireMessage(message)) {
          job.onMessage?.(message, worker)
        }
      }
      worker.child.on('message', onMessage)
      job.running?.(worker)
      // settles only if no answer came first
      void worker.ended.then((exit) => {
        worker.child.off('message', onMessage)
        reject(crashOf(exit, [job.file]))
      })
      worker.send(marked({ type: 'run', slot: slot.id, last: job.group === undefined, job: job.job(slot.id) }))
    })
  }

  private track(worker: WorkerProcess): WorkerProcess {
    this.workers.add(worker)
    void worker.ended.then(() => this.workers.delete(worker))
    return worker
  }

  /** Ends the slot's worker, if it has one; resolves once it is gone. */
  private async retire(slot: Slot): Promise<void> {
    const worker = slot.worker
    slot.worker = undefined
    slot.group = undefined
    if (worker) await worker.stop()
  }
}
