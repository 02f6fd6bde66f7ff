import type { ChildProcess } from 'node:child_process'
import type { LaunchSpec } from './run.js'

/**
 * Spares per kind of process when the user sets no number (`warm`): enough to replace
 * the processes that finish at about the same time, without a crowd of idle node
 * processes on big machines.
 */
export function defaultSpareCount(maxWorkers: number | undefined): number {
  return Math.max(1, Math.min(maxWorkers ?? 1, 2))
}

/** A spare nobody took for this long is stopped (watch mode idling, a project done). */
export const SPARE_IDLE_MS = 15_000

const pools = new Set<SparePool>()
// one listener for every pool of the process, however often Vitest restarts
process.once('exit', () => {
  for (const pool of pools) pool.killAll()
})

interface Spare {
  child: ChildProcess
  timer: NodeJS.Timeout
}

/**
 * Booted worker processes waiting for a test file, so a file starts on a worker whose
 * node and Vitest entry are already loaded. Spares are keyed by everything that
 * shapes the process (entry, execArgv, env, kept paths); a spare is handed out once.
 *
 * Spares don't keep Vitest alive (their handles are unref'd until taken) and die with
 * it: on 'exit' here, and by PR_SET_PDEATHSIG in the launcher if Vitest is killed.
 * Unused ones are stopped after SPARE_IDLE_MS: the last file of a project, or a spec
 * that stopped matching (the environment changed between watch-mode runs), leaves
 * nothing idle for long.
 */
export class SparePool {
  private readonly waiting = new Map<string, Spare[]>()

  constructor(private readonly start: (spec: LaunchSpec) => ChildProcess) {
    pools.add(this)
  }

  /** A live spare for `spec`, ready to use, or undefined. */
  take(spec: LaunchSpec): ChildProcess | undefined {
    const key = keyOf(spec)
    const list = this.waiting.get(key)
    while (list && list.length > 0) {
      const { child, timer } = list.shift()!
      clearTimeout(timer)
      if (child.exitCode === null && child.signalCode === null) {
        setRef(child, true)
        return child
      }
    }
    return undefined
  }

  /** Starts spares for `spec` until `count` wait. */
  fill(spec: LaunchSpec, count: number): void {
    if (count <= 0) return
    const key = keyOf(spec)
    const list = this.waiting.get(key) ?? []
    this.waiting.set(key, list)
    while (list.length < count) {
      let child: ChildProcess
      try {
        child = this.start(spec)
      } catch {
        return // no spare this time; the next file starts its worker itself
      }
      const spare: Spare = { child, timer: setTimeout(() => this.drop(key, spare, true), SPARE_IDLE_MS).unref() }
      // a spare that can't start (EAGAIN, a replaced launcher) or dies while waiting
      // is dropped; an 'error' event nobody listens to would crash Vitest
      child.on('error', () => this.drop(key, spare, false))
      child.once('exit', () => this.drop(key, spare, false))
      setRef(child, false)
      list.push(spare)
    }
  }

  killAll(): void {
    for (const [key, list] of this.waiting) for (const spare of [...list]) this.drop(key, spare, true)
  }

  private drop(key: string, spare: Spare, kill: boolean): void {
    clearTimeout(spare.timer)
    const list = this.waiting.get(key)
    const index = list?.indexOf(spare) ?? -1
    if (index === -1) return
    list!.splice(index, 1)
    if (kill) spare.child.kill('SIGKILL')
  }
}

function keyOf(spec: LaunchSpec): string {
  return JSON.stringify([spec.entrypoint, spec.execArgv, spec.env, spec.needs, spec.writable, spec.reusable, spec.serialization, spec.greeting?.key, spec.runnerPorts, spec.hostForwards])
}

interface Refable {
  ref(): unknown
  unref(): unknown
}

/** ref/unref the process and every handle it holds open in this process. */
function setRef(child: ChildProcess, ref: boolean): void {
  // child.stdio covers the extra pipes too (the launcher's status pipe)
  const handles = [child, child.channel, ...(child.stdio ?? [child.stdin, child.stdout, child.stderr])] as Array<Partial<Refable> | null | undefined>
  for (const handle of handles) {
    if (handle && typeof handle.ref === 'function' && typeof handle.unref === 'function') ref ? handle.ref() : handle.unref()
  }
}
