// Everything that crosses the boundary between the host (the engine, the runner
// adapters) and a sandboxed process: environment handoffs, and the messages on a
// worker's IPC channel. Sequence diagram of a run: README.md beside this file.
// No imports: the sandbox's preload (inside/network-notices.ts) loads this too.

/**
 * The variable the engine sets to "1" in every sandboxed test process; read by
 * `vitest-pool-rootless/runtime` (src/runtime.cts, which spells it out itself: a
 * CommonJS entry loads nothing else; test/unit/runtime.test.ts keeps the two equal).
 */
export const SANDBOXED_ENV = 'VITEST_POOL_ROOTLESS_SANDBOXED'

/** The ports inside the sandbox that lead to the host, comma-separated (inside/network-notices.ts). */
export const FORWARDED_PORTS_ENV = 'VITEST_POOL_ROOTLESS_FORWARDED_PORTS'

/**
 * The text that marks a notice a sandboxed process prints about the sandbox itself (not
 * about the test): every process may say it, the runner shows it once per run
 * (engine/output.ts), so a suite of 500 files looking up one unknown name gets one
 * notice, not 500.
 */
export const ONCE_PER_RUN_MARK = "can't be resolved in the sandbox (ENOTFOUND)"

/** Environment variable that carries a reusable worker's reset plan. */
export const RESET_ENV = 'VITEST_POOL_ROOTLESS_RESET'

/** What a reused worker restores between test files (see inside/reset.ts); from `createResetPlan`. */
export interface ResetPlan {
  /** The Node-API addon that resets in process (native/addon.c), kept visible inside the sandbox. */
  addon: string
  /** `--reset` and what to rebuild: the writable layers as the launcher builds them, processes, network. */
  args: string[]
  /** The sandbox's /etc/hosts as the run wrote it. */
  hosts: string
}

// ---- Jest: the adapter (src/jest) and its entry inside (src/inside/jest-worker.ts) ----

/** Host → sandbox, first (the greeting): load jest-runner's worker and set it up. */
export interface SetupMessage {
  type: 'setup'
  /** jest-runner's worker module (build/testWorker.js), as the host resolved it. */
  testWorker: string
  /** Its `setup()` argument: each project's config and serialized module map. */
  setupData: unknown
  /** Modules to load ahead of the first test file (environments, transformers). */
  preload: string[]
}

/** Host → sandbox: run one test file through jest-runner's `worker()`; one at a time, in order. */
export interface RunMessage {
  type: 'run'
  /** This file's concurrency slot, 1-based, for `JEST_WORKER_ID`. */
  workerId: string
  /** `worker()`'s argument: `{ config, globalConfig, path, context }`. */
  data: unknown
}

export type ToSandbox = SetupMessage | RunMessage

/** An error as it crosses the channel: what Jest reads of a failed test file. */
export interface SerializedError {
  type: string
  message: string
  stack?: string
  code?: unknown
}

/**
 * Sandbox → host: how the file went; with a result, the heap the process holds after it
 * (for `workerIdleMemoryLimit`). After a `fatal` error of its own (its sandbox couldn't
 * be reset), the process exits.
 */
export type FromSandbox = { type: 'result'; result: unknown; heapUsed: number } | { type: 'error'; error: SerializedError; fatal?: true }

// ---- Vitest 3: the adapter (src/pool/v3.ts) and its entry inside (src/inside/vitest3-worker.ts) ----
// Each carries tinypool's mark, so Vitest's own worker RPC, which shares the channel,
// passes them by (see pool/v3-internals).

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
