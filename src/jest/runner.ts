import { openRun } from '../engine/open-run.js'
import type { SandboxRun } from '../engine/run.js'
import { validatePoolOptions, type PoolOnlyOptions, type SandboxOptions } from '../plan/options.js'
import { loadDefaultRunner, resolveTestWorker, type JestRunnerInstance } from './jest-internals.js'
import { runFiles } from './run-files.js'
import type { GlobalConfigView, RunnerContextView, TestView, TestWatcherView } from './jest-types.js'

/** Options of the Jest runner: the same as `rootless()`'s, with the same validation. */
export interface RootlessJestOptions extends SandboxOptions, PoolOnlyOptions {}

type Listener = (eventData: unknown) => void | Promise<void>

/** Notices said once per process, whatever the number of runs (watch mode). */
const said = new Set<string>()

/**
 * A Jest runner (`runner: 'vitest-pool-rootless/jest'`) that runs every test file as
 * uid 0 in its own user + mount + network (+ UTS, IPC, pid) namespace, with a private
 * tmpfs on the temp dir and a private `/etc/hosts` -- no sudo, no Docker. Each file gets
 * a fresh sandbox and a fresh process (jest-runner's own worker code runs it), at most
 * `maxWorkers` at once, also under `--runInBand`: no test file runs in the Jest process.
 *
 * Options come from `runner: ['vitest-pool-rootless/jest', { ... }]` (Jest >= 30.4.1), or
 * from a subclass made by {@link RootlessJestRunner.withOptions} for older Jest. They are
 * validated, and one sandbox is built as a probe, when Jest creates the runner: bad
 * input or a machine that can't build the sandbox stops the run with one error before
 * any file runs (with `fallback: 'unsandboxed'`, such a machine gets Jest's own runner,
 * said once). `globalSetup` and `globalTeardown` run in the Jest process, on the host.
 */
export class RootlessJestRunner {
  /** Jest's scheduler talks to this runner through events (`on`). */
  readonly supportsEventEmitters = true
  /** Files run in sandboxed processes, `maxWorkers` at once. */
  readonly isSerial = false

  /** Options for runners made by `withOptions` (Jest before 30.4.1 passes none). */
  protected static presetOptions: RootlessJestOptions | undefined

  private readonly listeners = new Map<string, Set<Listener>>()
  private readonly run: SandboxRun | undefined
  /** Jest's own runner, when the tests run unsandboxed (`fallback: 'unsandboxed'`). */
  private readonly unsandboxed: JestRunnerInstance | undefined

  /**
   * A runner class with `options` built in, for Jest versions that can't pass runner
   * options (29.7, and 30 before 30.4.1). In a one-line runner file:
   *
   * ```js
   * // rootless-runner.cjs, then runner: '<rootDir>/rootless-runner.cjs' in jest.config.js
   * module.exports = require('vitest-pool-rootless/jest').withOptions({ hostname: 'box' })
   * ```
   */
  static withOptions(options: RootlessJestOptions): typeof RootlessJestRunner {
    // validated now, so a mistake in the runner file names the option at once
    saysNothingRan(() => validatePoolOptions(options))
    return class extends this {
      protected static override presetOptions = options
    }
  }

  constructor(
    private readonly globalConfig: GlobalConfigView,
    private readonly context: RunnerContextView = {},
    options?: Record<string, unknown>,
  ) {
    const given = options !== undefined && Object.keys(options).length > 0 ? options : (new.target as typeof RootlessJestRunner).presetOptions
    // the probe: a machine that can't build the sandbox fails here, before any file
    // (or, with fallback: 'unsandboxed', runs the files with Jest's own runner)
    this.run = saysNothingRan(() => openRun(given, sayOnce)?.run)
    if (!this.run) {
      this.unsandboxed = new (loadDefaultRunner(resolveTestWorker([globalConfig.rootDir])))(globalConfig, context)
      return
    }
    if (globalConfig.detectOpenHandles) {
      sayOnce('vitest-pool-rootless/jest: --detectOpenHandles looks for open handles in the Jest process, and each test file runs in a sandboxed process of its own: it will find none there. To hunt a leak, run that file with Jest\'s default runner.')
    }
    if (globalConfig.workerThreads) {
      sayOnce('vitest-pool-rootless/jest: workerThreads is ignored: each test file runs in a child process of its own (a thread can\'t have a sandbox of its own).')
    }
  }

  /** Subscribes to Jest's test events; returns the unsubscribe function, as Jest expects. */
  on(eventName: string, listener: Listener): () => void {
    if (this.unsandboxed) return this.unsandboxed.on(eventName, listener)
    const set = this.listeners.get(eventName) ?? new Set()
    this.listeners.set(eventName, set)
    set.add(listener)
    return () => void set.delete(listener)
  }

  /** Runs `tests`, each in a fresh sandbox; ignores `serial` (nothing runs in the Jest process). */
  async runTests(tests: TestView[], watcher: TestWatcherView, options?: { serial?: boolean }): Promise<void> {
    if (!this.run) return this.unsandboxed!.runTests(tests, watcher, options)
    try {
      await runFiles({ tests, watcher, globalConfig: this.globalConfig, context: this.context, run: this.run, emit: (name, data) => this.emit(name, data) })
    } finally {
      // the warm user namespace, spares and state dir go with the run (watch mode makes
      // a new runner for every run)
      await this.run.close()
    }
  }

  private async emit(eventName: string, eventData: unknown): Promise<void> {
    await Promise.all([...(this.listeners.get(eventName) ?? [])].map(async (listener) => listener(eventData)))
  }
}

function sayOnce(message: string): void {
  if (said.has(message)) return
  said.add(message)
  process.stderr.write(`${message}\n`)
}

/**
 * Runs `open` (the options' check, the probe), noting on its error that no file ran. Jest
 * loads and creates its runners after it has started reporting, so such an error is
 * printed after Jest's summary of no files ("Ran all test suites."); said this way, that
 * summary isn't read as a run that happened.
 */
function saysNothingRan<T>(open: () => T): T {
  try {
    return open()
  } catch (error) {
    // our own errors carry their message as their stack (no trace): keep it so
    if (error instanceof Error && error.stack === `${error.name}: ${error.message}`) {
      error.message += `\n${NOTHING_RAN}`
      error.stack = `${error.name}: ${error.message}`
    }
    throw error
  }
}

/** The line a Jest run stopped before its first file ends with. */
export const NOTHING_RAN = 'vitest-pool-rootless/jest: no test file ran; the summary above counts the files it would have run.'
