import { relative } from 'node:path'
import type { ResolvedSandboxOptions } from '../plan/options.js'
import { LEAKS_ENV, type LeakChecks } from '../wire/wire.js'

/** The runner's `leaks` option. */
export type LeaksMode = 'report' | 'fail' | 'ignore'

/** What a worker whose loop is ours is told to look for after each file (none for 'ignore'). */
export function leakWatchEnv(mode: LeaksMode, options: Pick<ResolvedSandboxOptions, 'pidNamespace' | 'network'>): Record<string, string> {
  if (mode === 'ignore') return {}
  const checks: LeakChecks = { fail: mode === 'fail', processes: options.pidNamespace, sockets: options.network !== 'host' }
  return { [LEAKS_ENV]: JSON.stringify(checks) }
}

/** `vitest-pool-rootless: tests/b.test.ts left: sleep 517 (pid 14), a server on 127.0.0.1:3000` */
export function leakLine(file: string, leaks: readonly string[], root: string = process.cwd()): string {
  const shown = relative(root, file)
  return `vitest-pool-rootless: ${shown.startsWith('..') ? file : shown} left: ${leaks.join(', ')}`
}

/**
 * The leaks of one run: a line per leaking file as each ends ('report'), and one line at
 * the end that counts them and says how to make them fail the files or go quiet.
 */
export class LeakTally {
  private files = 0
  private items = 0

  constructor(readonly mode: LeaksMode) {}

  /** Notes one file's leaks; the line to print for it ('report'), or undefined. */
  add(file: string, leaks: readonly string[] | undefined, root?: string): string | undefined {
    if (this.mode === 'ignore' || !leaks || leaks.length === 0) return undefined
    this.files++
    this.items += leaks.length
    return leakLine(file, leaks, root)
  }

  /** The run's one summary line, or undefined when no file leaked. */
  summary(): string | undefined {
    if (this.files === 0) return undefined
    const what = `${this.items} ${this.items === 1 ? 'thing' : 'things'} left running by ${this.files} test ${this.files === 1 ? 'file' : 'files'}`
    return this.mode === 'fail'
      ? `vitest-pool-rootless: ${what} (leaks: 'fail' failed ${this.files === 1 ? 'it' : 'them'})`
      : `vitest-pool-rootless: ${what}, named above; leaks: 'fail' fails such files, leaks: 'ignore' stops looking`
  }
}
