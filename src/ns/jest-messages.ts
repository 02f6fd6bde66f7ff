// The messages between the Jest adapter (src/jest, host side) and its entry inside each
// sandbox (src/inside/jest-worker.ts). Objects with a `type`; Jest's own test events
// travel beside them as jest-worker's custom messages (arrays, see src/jest/jest-internals.ts).

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
