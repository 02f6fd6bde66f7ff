/** Bad input: names the option, the value received and what was expected. */
export class RootlessOptionError extends Error {
  override readonly name = 'RootlessOptionError'
  /** The option as the user spells it, e.g. `hosts` or `--tmpfs`. */
  readonly option: string
  /** The value that was rejected. */
  readonly received: unknown

  constructor(option: string, received: unknown, expected: string) {
    super(`vitest-pool-rootless: option \`${option}\` ${expected}, got ${describe(received)}`)
    this.option = option
    this.received = received
    userFacing(this)
  }

  /**
   * A key that is no option: the closest known name when there is one (a misspelling),
   * then the known names. The value given is beside the point, so it isn't shown.
   */
  static unknown(key: string, received: unknown, known: readonly string[], closest?: string): RootlessOptionError {
    const error = new RootlessOptionError(key, received, '')
    const guess = closest === undefined ? '.' : `; did you mean \`${closest}\`?`
    error.message = `vitest-pool-rootless: \`${key}\` is not an option${guess} The options are ${known.join(', ')}.`
    userFacing(error)
    return error
  }
}

/**
 * The environment can't host a sandbox as configured, e.g. `TMPDIR` names a directory
 * that doesn't exist. Names the variable and says how to fix it.
 */
export class RootlessEnvironmentError extends Error {
  override readonly name = 'RootlessEnvironmentError'
  /** The environment variable at fault, e.g. `TMPDIR`. */
  readonly variable: string

  constructor(variable: string, message: string) {
    super(message)
    this.variable = variable
    userFacing(this)
  }
}

/** A command line the CLI can't make sense of: printed with the subcommand's usage. */
export class RootlessUsageError extends Error {
  override readonly name = 'RootlessUsageError'
}

/** The sandbox could not be built: a launcher step failed before the command ran. */
export class SandboxError extends Error {
  override readonly name = 'SandboxError'
  /** The launcher step that failed (`unshare`, `uid-map`, `tmpfs`…). */
  readonly step: string
  readonly exitCode: number | null
  readonly signal: NodeJS.Signals | null
  /**
   * Whose the fault is: the machine's (no user namespaces, AppArmor…: `fallback` may run
   * the tests unsandboxed instead) or the options' (a tmpfs that hides node: never).
   */
  readonly fault: 'machine' | 'options'

  constructor(message: string, details: { step: string; exitCode: number | null; signal?: NodeJS.Signals | null; cause?: unknown; fault?: 'machine' | 'options' }) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause })
    this.step = details.step
    this.exitCode = details.exitCode
    this.signal = details.signal ?? null
    this.fault = details.fault ?? 'machine'
    userFacing(this)
  }
}

/** A sandboxed worker ended while running test files: which files, and how it ended. */
export class WorkerExitError extends Error {
  override readonly name = 'WorkerExitError'
  readonly exitCode: number | null
  readonly signal: NodeJS.Signals | null
  readonly files: string[]
  /** The launcher step that failed, when the sandbox itself could not be built. */
  readonly step?: string

  constructor(details: { exitCode: number | null; signal: NodeJS.Signals | null; files: string[]; step?: string }) {
    const how = details.signal ? `was killed by ${details.signal}` : `exited with code ${details.exitCode}`
    const files = details.files.length > 0 ? ` while running ${details.files.join(', ')}` : ''
    const why = details.step ? ` before the test started: the sandbox's "${details.step}" step failed (its message is in the output above)` : ''
    super(`vitest-pool-rootless: the sandboxed worker ${how}${files}${why}`)
    this.exitCode = details.exitCode
    this.signal = details.signal
    this.files = details.files
    this.step = details.step
  }
}

/** Renders a received value for an error message: short, quoted, never `[object Object]`. */
export function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value)
  if (typeof value === 'bigint') return `${value}n`
  if (value === undefined || typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value)
  if (typeof value === 'function') return 'a function'
  try {
    const text = JSON.stringify(value)
    return text.length > 120 ? `${text.slice(0, 117)}...` : text
  } catch {
    return Object.prototype.toString.call(value)
  }
}

/**
 * An error whose message says everything a user needs: printed without our stack frames
 * and without its detail fields, so a runner shows one short block. The fields stay
 * readable for code that catches it.
 */
function userFacing(error: Error): void {
  error.stack = `${error.name}: ${error.message}`
  for (const key of Object.keys(error)) Object.defineProperty(error, key, { enumerable: false })
}
