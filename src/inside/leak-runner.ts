import { leakLine } from '../engine/leak-report.js'
import { LEAKS_ENV, marked, RESET_ENV } from '../wire/wire.js'
import { withBeforeFile } from './before-file-runner.js'
import { LeakWatch } from './leak-watch.js'

/** What this needs of a Vitest test runner class: its public `importFile` and `onAfterRunSuite`. */
type RunnerClass = abstract new (...args: any[]) => {
  importFile(filepath: string, source: 'collect' | 'setup'): unknown
  onAfterRunSuite?(suite: SuiteView): unknown
}

/** The part of a Vitest file task a leak fails it through, as Vitest fails one for obsolete snapshots. */
interface SuiteView {
  filepath?: string
  mode?: string
  result?: { state?: string; errors?: unknown[] }
}

/**
 * Vitest 4/5's test runner, naming what each test file left running when it ends
 * (LeakWatch): what is there at the file's first import (its first setup file, or the
 * file itself) is the baseline, what is new and still there after the file's last hook
 * is its leak. The host is told (FileLeaksMessage) and names the file or counts it;
 * under `leaks: 'fail'` the file fails here, with the list as an error of the file, as
 * Vitest's own runner fails a file for obsolete snapshots. Without LEAKS_ENV
 * (`leaks: 'ignore'`) the runner is Vitest's own, untouched.
 */
export function withLeakWatch<T extends RunnerClass>(Base: T): T {
  const checks = process.env[LEAKS_ENV]
  // a reused worker (isolate: false) keeps its children in its session between files
  const watch = LeakWatch.fromEnv(process.env[RESET_ENV] !== undefined)
  if (!watch) return Base
  const fail = (JSON.parse(checks!) as { fail: boolean }).fail
  abstract class LeakWatchRunner extends (withBeforeFile(Base, () => watch!.start()) as RunnerClass) {
    override async onAfterRunSuite(suite: SuiteView): Promise<void> {
      await super.onAfterRunSuite?.(suite)
      if (suite.filepath === undefined || suite.mode === 'skip') return
      const leaks = await watch!.left()
      if (leaks.length === 0) return
      if (fail && suite.result) {
        const message = leakLine(suite.filepath, leaks)
        ;(suite.result.errors ??= []).push({ name: 'LeakError', message, stack: `LeakError: ${message}` })
        suite.result.state = 'fail'
      }
      process.send?.(marked({ type: 'file-leaks', file: suite.filepath, leaks }), () => {})
    }
  }
  return LeakWatchRunner as unknown as T
}
