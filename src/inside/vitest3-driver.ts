// Vitest 3's half inside the sandbox: runs each test file with Vitest's own worker code
// (`worker.js`, what tinypool runs in Vitest 3's forks pool). What it relies on of
// Vitest 3 and tinypool is named here and in pool/v3-internals.ts; test/e2e/pool-v3.test.ts
// checks it against a real Vitest 3.2.
import type { InsideDriver } from './worker-loop.js'

/** `setup`'s data (src/pool/v3.ts): the test runner Vitest's worker loads, loaded while a spare waits. */
export interface Vitest3Setup {
  /** `<dist>/workers/forks.js`: most of what a run loads. */
  runner: string
}

/** A run's job: one file through `worker.js`. */
export interface Vitest3Job {
  /** `<dist>/worker.js` */
  entry: string
  method: 'run' | 'collect'
  /** The context `worker.js` takes: pool, worker, config, files, environment… */
  ctx: unknown
}

interface WorkerModule {
  run(ctx: unknown): Promise<void>
  collect(ctx: unknown): Promise<void>
  teardown?(): Promise<void>
}

let loading: Promise<unknown> | undefined
let worker: Promise<WorkerModule> | undefined

export const driver: InsideDriver = {
  setup(data) {
    loading = import((data as Vitest3Setup).runner)
    loading.catch(() => {})
  },
  async run(job, { slot, last }) {
    const { entry, method, ctx } = job as Vitest3Job
    await loading
    // Vitest's pool id comes from tinypool's state, read when worker.js first loads
    ;(process as unknown as { __tinypool_state__?: object }).__tinypool_state__ ??= tinypoolState(slot)
    worker ??= import(entry) as Promise<WorkerModule>
    const module = await worker
    await module[method](ctx)
    if (last) await module.teardown?.()
  },
}

/**
 * What tinypool's child-process entry sets before Vitest 3's worker loads: Vitest reads
 * its pool id (`VITEST_POOL_ID`) from tinypool's `workerId`, taken from here when
 * `worker.js` first loads (mirrored: tinypool 1.x, src/entry/process.ts).
 */
function tinypoolState(workerId: number): Record<string, unknown> {
  return { isChildProcess: true, isTinypoolWorker: true, workerData: null, workerId }
}
