// The messages between the Vitest 3 adapter (src/pool/v3.ts, host side) and its entry
// inside each sandbox (src/inside/vitest3-worker.ts). Each carries tinypool's mark, so
// Vitest's own worker RPC, which shares the channel, passes them by (see v3-internals).

/** Tinypool's mark: Vitest 3's worker RPC ignores messages that carry it. */
export const TINYPOOL_MESSAGE = '__tinypool_worker_message__'

interface Marked {
  [TINYPOOL_MESSAGE]: true
  source: 'vitest-pool-rootless'
}

/** Host → sandbox, first (the greeting): load Vitest's test runner while waiting. */
export interface LoadMessage extends Marked {
  type: 'load'
  /** `<dist>/workers/forks.js`: most of what a run loads. */
  runner: string
}

/** Host → sandbox: run (or collect) one file through Vitest's `worker.js`. */
export interface RunFileMessage extends Marked {
  type: 'run'
  /** `<dist>/worker.js` */
  entry: string
  method: 'run' | 'collect'
  /** The pool slot: Vitest's VITEST_POOL_ID. */
  poolId: number
  /** The context `worker.js` takes: pool, worker, config, files, environment… */
  ctx: unknown
  /** Exit after this file (isolate: true); else wait for the next. */
  last: boolean
}

/** Sandbox → host: the file is done (`error` set when Vitest's worker threw). */
export interface DoneMessage extends Marked {
  type: 'done'
  error?: { name: string; message: string; stack?: string }
}

export function marked<T extends object>(message: T): T & Marked {
  return { ...message, [TINYPOOL_MESSAGE]: true, source: 'vitest-pool-rootless' }
}

export function isOurs(message: unknown): message is LoadMessage | RunFileMessage | DoneMessage {
  const m = message as Partial<Marked> | null
  return !!m && m[TINYPOOL_MESSAGE] === true && m.source === 'vitest-pool-rootless'
}

/**
 * What tinypool's child-process entry sets before Vitest 3's worker loads: Vitest reads
 * its pool id (`VITEST_POOL_ID`) from tinypool's `workerId`, taken from here when
 * `worker.js` first loads (mirrored: tinypool 1.x, src/entry/process.ts).
 */
export function tinypoolState(workerId: number): Record<string, unknown> {
  return { isChildProcess: true, isTinypoolWorker: true, workerData: null, workerId }
}
