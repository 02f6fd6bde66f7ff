// Everything that crosses the boundary between the host (the engine and the runner
// adapters) and a sandboxed process: what the engine hands over in the environment when
// it starts one, and the messages on a worker's IPC channel. README.md beside this file
// draws a run as a sequence diagram, the launcher's own protocols (status byte, the
// holder's "ready" line, the forwarder's control messages) included.
// No imports: every sandboxed process loads this (inside/entry.ts).

// ---- the environment a sandboxed process starts with (engine/run.ts sets it) ----

/**
 * "1" in every sandboxed test process; read by `vitest-pool-rootless/runtime`
 * (src/runtime.cts, which spells it out itself: a CommonJS entry loads nothing else;
 * test/unit/runtime.test.ts keeps the two equal).
 */
export const SANDBOXED_ENV = 'VITEST_POOL_ROOTLESS_SANDBOXED'

/**
 * Set where the network is the sandbox's own (`'isolated'` or `'egress'`): the ports
 * inside that lead to the host, comma-separated (maybe none). The process's words for
 * what that network causes (inside/network-notices.ts) are loaded where it is set.
 */
export const FORWARDED_PORTS_ENV = 'VITEST_POOL_ROOTLESS_FORWARDED_PORTS'

/**
 * Beside FORWARDED_PORTS_ENV: `'isolated'` or `'egress'`. Only the isolated network has
 * no DNS, so only there does an unknown name get the notice that says so.
 */
export const NETWORK_ENV = 'VITEST_POOL_ROOTLESS_NETWORK'

/**
 * Jest's worker, where the Jest process itself runs under a debugger: `InspectRequest` as
 * JSON. The worker opens its inspector on its own 127.0.0.1 before anything else
 * (inside/entry.ts), and the engine publishes that port to the host.
 */
export const INSPECT_ENV = 'VITEST_POOL_ROOTLESS_INSPECT'

export interface InspectRequest {
  port: number
  /** Wait for a debugger to attach before the worker goes on (the Jest process was `--inspect-brk`). */
  wait: boolean
}

/** A reused worker's reset plan, as JSON (`ResetPlan`); the worker removes it before any test runs. */
export const RESET_ENV = 'VITEST_POOL_ROOTLESS_RESET'

/** What a reused worker restores between test files (inside/sandbox-reset.ts); from `createResetPlan`. */
export interface ResetPlan {
  /** The Node-API addon that resets in process (native/addon.c), kept visible inside the sandbox. */
  addon: string
  /** `--reset` and what to rebuild: the writable layers as the launcher builds them, processes, network. */
  args: string[]
  /** The sandbox's /etc/hosts as the run wrote it. */
  hosts: string
}

/**
 * Set where the runner's `leaks` option isn't 'ignore': what a worker whose loop is ours
 * looks for after each file (`LeakChecks` as JSON; inside/leak-watch.ts), and removes.
 */
export const LEAKS_ENV = 'VITEST_POOL_ROOTLESS_LEAKS'

export interface LeakChecks {
  /** `leaks: 'fail'`: where the runner inside reports results itself (Vitest 4/5), it fails the file. */
  fail: boolean
  /** The worker has its own pid namespace: every process it sees is the sandbox's. */
  processes: boolean
  /** The network is the sandbox's own (isolated): every socket in it is the sandbox's. */
  sockets: boolean
  /** The addon that lists them (native/listeners.c), kept visible; the engine adds it. */
  addon?: string
}

/**
 * Set by the launcher, not the engine: the fd of the forwarder's control socket in a
 * sandbox that forwards ports (native/sandbox.h). A reused worker's reset hands the
 * forwarder the listeners of its fresh network namespace there.
 */
export const FORWARDER_ENV = 'VITEST_POOL_ROOTLESS_FORWARDER'

/**
 * Set by the launcher, like FORWARDER_ENV, with `network: 'egress'`: the fd of the
 * socket of the spawner that starts egress helpers (native/egress.c). A reused worker's
 * addon sends it each fresh network namespace, made ahead, and takes the fd away from
 * the test's children when it loads.
 */
export const EGRESS_ENV = 'VITEST_POOL_ROOTLESS_EGRESS'

/**
 * Vitest 4/5, `isolate: false`: the test file whose worker crashed, for the worker that
 * takes over the files it had not reached (`CrashedFile` as JSON). That worker fails the
 * file at once with `message`, through Vitest's own reporting, then runs the rest.
 */
export const CRASHED_FILE_ENV = 'VITEST_POOL_ROOTLESS_CRASHED_FILE'

export interface CrashedFile {
  file: string
  /** The crash, in words: which file, and the exit code or signal. */
  message: string
}

// ---- what a sandboxed process prints ----

/**
 * The text that marks a notice a sandboxed process prints about the sandbox itself (not
 * about the test): every process may say it, the runner shows it once per run
 * (engine/output.ts), so a suite of 500 files looking up one unknown name gets one
 * notice, not 500.
 */
export const ONCE_PER_RUN_MARK = "can't be resolved in the sandbox (ENOTFOUND)"

// ---- messages on the IPC channel ----
// Ours carry tinypool's mark: Vitest 3's worker RPC, which shares the channel with the
// worker loop's messages, passes by every message that has it (see pool/v3-internals.ts),
// and Vitest 4/5's channel gets our one message stripped by the adapter before Vitest sees it.

/** Tinypool's mark: Vitest 3's worker RPC ignores messages that carry it. */
export const TINYPOOL_MESSAGE = '__tinypool_worker_message__'

interface Marked {
  [TINYPOOL_MESSAGE]: true
  source: 'vitest-pool-rootless'
}

/** The runners whose worker loop we own (inside/worker-loop.ts), by their inside driver. */
export type LoopDriver = 'jest' | 'vitest3'

/**
 * Host → sandbox, first (the greeting, sent as the process starts, so a spare does it
 * while it waits): load the runner's inside driver and set it up with `data`.
 */
export interface SetupMessage extends Marked {
  type: 'setup'
  driver: LoopDriver
  data: unknown
}

/** Host → sandbox: run one test file; one at a time, in the order they come. */
export interface RunMessage extends Marked {
  type: 'run'
  /** The concurrency slot, 1..maxWorkers: `JEST_WORKER_ID`, Vitest's `VITEST_POOL_ID`. */
  slot: number
  /** No file follows: the worker exits after answering (isolate: true). */
  last: boolean
  /** The driver's part: what runs the file. */
  job: unknown
}

/**
 * Sandbox → host: the file is done. `error` when the runner's own worker threw (a test
 * failing is a result, not an error); `fatal` when the process can't serve another file
 * (its sandbox couldn't be reset): it exits after this. `heapUsed` is for
 * `workerIdleMemoryLimit`.
 */
export interface AnswerMessage extends Marked {
  type: 'done'
  result?: unknown
  error?: SerializedError
  fatal?: true
  heapUsed: number
  /** What the file left running, in words (inside/leak-watch.ts); absent: nothing, or not looked for. */
  leaks?: string[]
}

/**
 * Sandbox → host, Vitest 4/5 with `isolate: false`: the next test file of the current
 * request starts now (from the reset before each file, inside/reset-hook.ts). The n-th
 * of these since a request is its n-th file, so a crash is charged to that file alone.
 */
export interface FileStartsMessage extends Marked {
  type: 'file-starts'
}

/**
 * Sandbox → host, Vitest 4/5: what a test file left running (inside/leak-runner.ts),
 * for the pool to name or count; under `leaks: 'fail'` the runner failed the file already.
 */
export interface FileLeaksMessage extends Marked {
  type: 'file-leaks'
  file: string
  leaks: string[]
}

export type WireMessage = SetupMessage | RunMessage | AnswerMessage | FileStartsMessage | FileLeaksMessage

type Unmarked<T> = T extends WireMessage ? Omit<T, keyof Marked> : never

export function marked<T extends Unmarked<WireMessage>>(message: T): T & Marked {
  return { ...message, [TINYPOOL_MESSAGE]: true, source: 'vitest-pool-rootless' }
}

export function isWireMessage(message: unknown): message is WireMessage {
  const m = message as Partial<Marked> | null
  return typeof m === 'object' && m !== null && m[TINYPOOL_MESSAGE] === true && m.source === 'vitest-pool-rootless'
}

// ---- errors, both ways ----

/** An error as it crosses the channel. */
export interface SerializedError {
  name: string
  message: string
  stack?: string
  code?: unknown
}

/** What a runner reads of an error thrown inside: name, message, stack, code. */
export function serializeError(error: unknown): SerializedError {
  if (error !== null && typeof error === 'object') {
    const e = error as { type?: unknown; name?: unknown; message?: unknown; stack?: unknown; code?: unknown }
    const name = typeof e.name === 'string' ? e.name : typeof e.type === 'string' ? e.type : 'Error'
    const serialized: SerializedError = { name, message: String(e.message ?? '') }
    if (typeof e.stack === 'string') serialized.stack = e.stack
    if (e.code !== undefined) serialized.code = e.code
    return serialized
  }
  return { name: 'Error', message: String(error), stack: String(error) }
}

/**
 * The error again, on the host: an instance of `Kind` with the message, stack and code
 * it had, and its name also as `type` (how Jest's worker farm hands errors to Jest).
 */
export function deserializeError(serialized: SerializedError, Kind: new (message: string) => Error = Error): Error {
  const error = Object.assign(new Kind(serialized.message), { type: serialized.name })
  if (serialized.name !== error.name) Object.defineProperty(error, 'name', { value: serialized.name, configurable: true, writable: true })
  error.stack = serialized.stack ?? serialized.message
  if (serialized.code !== undefined) Object.assign(error, { code: serialized.code })
  return error
}
