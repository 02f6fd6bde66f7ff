import { spawn } from 'node:child_process'
import type { Consumer } from './consumer.js'
import { TAG, TAG_ENV, trackNamespaces } from './leftovers.js'

/**
 * The one way the e2e tests run a consumer's real Vitest on a copied fixture: to
 * completion (`runVitest`) or live (`startVitest`), to act on what its tests print.
 * Every run carries the leftover tag (TAG_ENV) in its environment, and the namespaces
 * its process tree is seen in are noted, so `expectNoLeftovers` can tell what it left.
 */

/** How the Vitest process ended. */
export interface Exit {
  code: number | null
  signal: NodeJS.Signals | null
}

export interface VitestOptions {
  /** After `--reporter=verbose` (or after `--root` in watch mode). */
  args?: string[]
  /** Added to the environment, over `process.env` and the defaults. */
  env?: Record<string, string>
  /**
   * 'run' (default): `vitest run --root <root> --reporter=verbose ...args`, with CI=true.
   * 'watch': `vitest --watch --root <root> ...args`, stdin an open pipe, CI not added.
   * 'list': `vitest list --root <root> ...args`, with CI=true: files collected, not run.
   */
  mode?: 'run' | 'watch' | 'list'
  /**
   * Under `script` on a pseudo-terminal that becomes Vitest's controlling terminal, as
   * when a developer runs it from a shell. `pid` is then script's.
   */
  tty?: boolean
  /** SIGKILLed after this long; 150 s to completion, 60 s live, unless given. */
  timeoutMs?: number
}

/** A finished run: its exit and everything it printed (stdout and stderr interleaved). */
export interface VitestRun extends Exit {
  output: string
}

/** A run still going. */
export interface LiveRun {
  /** The spawned process: Vitest, or `script` with `tty`. */
  pid: number
  /** What it printed so far, from offset `since` (a `output().length` taken earlier). */
  output(since?: number): string
  /**
   * The first match of `pattern` in the output after offset `since`, now or later;
   * rejects with the output after `ms` or when Vitest exits without printing it.
   */
  waitFor(pattern: RegExp, options?: { ms?: number; since?: number }): Promise<RegExpExecArray>
  /** Sends `signal` to the spawned process (SIGTERM by default). */
  kill(signal?: NodeJS.Signals): void
  /** The process has exited (its output may still be arriving). */
  exited: Promise<Exit>
  /** The process has exited and its output ended. */
  closed: Promise<Exit>
}

export function startVitest(consumer: Consumer, root: string, options: VitestOptions = {}): LiveRun {
  const watch = options.mode === 'watch'
  const argv = watch
    ? [consumer.node, consumer.vitest, '--watch', '--root', root, ...(options.args ?? [])]
    : options.mode === 'list'
      ? [consumer.node, consumer.vitest, 'list', '--root', root, ...(options.args ?? [])]
      : [consumer.node, consumer.vitest, 'run', '--root', root, '--reporter=verbose', ...(options.args ?? [])]
  return startProcess(argv, root, { env: { ...(watch ? {} : { CI: 'true' }), ...options.env }, stdin: watch, tty: options.tty, timeoutMs: options.timeoutMs })
}

/** How `startProcess` runs a test runner: its environment and terminal. */
export interface ProcessOptions {
  /** Added over `process.env`, no colours and the leftover tag. */
  env?: Record<string, string>
  /** stdin an open pipe (watch mode); else /dev/null. */
  stdin?: boolean
  /** Under `script`, on a pseudo-terminal (see `VitestOptions.tty`). */
  tty?: boolean
  /** SIGKILLed after this long; 60 s unless given. */
  timeoutMs?: number
}

/**
 * Starts `argv` in `cwd` the way every runner run of the e2e tests starts: tagged for
 * the leftover accounting, its namespaces tracked, its output collected.
 */
export function startProcess(argv: string[], cwd: string, options: ProcessOptions = {}): LiveRun {
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`
  const [file, args] = options.tty ? ['script', ['-qec', argv.map(quote).join(' '), '/dev/null']] : [argv[0]!, argv.slice(1)]
  const child = spawn(file, args as string[], {
    cwd,
    env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0', [TAG_ENV]: TAG, ...options.env },
    stdio: [options.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (output += d))
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (output += d))
  const guard = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000)
  const stopTracking = child.pid === undefined ? () => {} : trackNamespaces(child.pid)
  let ended = false
  const exited = new Promise<Exit>((resolve, reject) => {
    child.once('error', (error) => {
      clearTimeout(guard)
      ended = true
      stopTracking()
      reject(error)
    })
    child.once('exit', (code, signal) => {
      stopTracking()
      resolve({ code, signal })
    })
  })
  const closed = new Promise<Exit>((resolve, reject) => {
    exited.catch(reject)
    child.once('close', (code, signal) => {
      clearTimeout(guard)
      ended = true
      resolve({ code, signal })
    })
  })
  // a caller that only awaits one of them must not see the other's rejection as unhandled
  closed.catch(() => {})
  return {
    pid: child.pid!,
    output: (since = 0) => output.slice(since),
    exited,
    closed,
    kill: (signal = 'SIGTERM') => void child.kill(signal),
    waitFor(pattern, { ms = 30_000, since = 0 } = {}) {
      return new Promise((resolve, reject) => {
        const deadline = Date.now() + ms
        const check = () => {
          const match = pattern.exec(output.slice(since))
          if (match) return resolve(match)
          // after exit, what it printed last may still be in the pipe: wait for its end
          if (Date.now() > deadline || ended) {
            return reject(new Error(`${argv[1]} never printed ${pattern}:\n${output.slice(since)}`))
          }
          setTimeout(check, 25)
        }
        check()
      })
    },
  }
}

/** Runs to completion (`startVitest`, then its closed output); 150 s at most. */
export async function runVitest(consumer: Consumer, root: string, options: VitestOptions = {}): Promise<VitestRun> {
  const run = startVitest(consumer, root, { timeoutMs: 150_000, ...options })
  const exit = await run.closed
  return { ...exit, output: run.output() }
}
