import type { ChildProcess } from 'node:child_process'
import type { Readable, Writable } from 'node:stream'
import type { WorkerSpec } from './run-state.js'

/**
 * Booted worker processes waiting for a test file, so a file starts on a worker whose
 * node and Vitest entry are already loaded. Spares are keyed by everything that
 * shapes the process (entry, execArgv, env, kept paths); a spare is handed out once.
 *
 * Spares don't keep Vitest alive (their handles are unref'd until taken) and die with
 * it: on 'exit' here, and by PR_SET_PDEATHSIG in the launcher if Vitest is killed.
 */
export class SparePool {
  private readonly waiting = new Map<string, ChildProcess[]>()

  constructor(private readonly start: (spec: WorkerSpec) => ChildProcess) {
    process.once('exit', () => this.killAll())
  }

  /** A live spare for `spec`, ready to use, or undefined. */
  take(spec: WorkerSpec): ChildProcess | undefined {
    const list = this.waiting.get(keyOf(spec))
    while (list && list.length > 0) {
      const child = list.shift()!
      if (child.exitCode === null && child.signalCode === null) {
        setRef(child, true)
        return child
      }
    }
    return undefined
  }

  /** Starts spares for `spec` until `count` wait. */
  fill(spec: WorkerSpec, count: number): void {
    if (count <= 0) return
    const key = keyOf(spec)
    const list = this.waiting.get(key) ?? []
    this.waiting.set(key, list)
    while (list.length < count) {
      const child = this.start(spec)
      // a spare that dies while waiting (e.g. killed) is simply dropped
      child.once('exit', () => {
        const index = list.indexOf(child)
        if (index !== -1) list.splice(index, 1)
      })
      setRef(child, false)
      list.push(child)
    }
  }

  killAll(): void {
    for (const list of this.waiting.values()) for (const child of list.splice(0)) child.kill('SIGKILL')
  }
}

function keyOf(spec: WorkerSpec): string {
  return JSON.stringify([spec.entrypoint, spec.execArgv, spec.env, spec.needs, spec.reusable])
}

/** ref/unref the process and every handle it holds open in this process. */
function setRef(child: ChildProcess, ref: boolean): void {
  const handles: Array<{ ref(): unknown; unref(): unknown } | null | undefined> = [
    child,
    child.channel as { ref(): unknown; unref(): unknown } | undefined,
    child.stdout as (Readable & { ref(): unknown; unref(): unknown }) | null,
    child.stderr as (Readable & { ref(): unknown; unref(): unknown }) | null,
    child.stdin as (Writable & { ref(): unknown; unref(): unknown }) | null,
  ]
  for (const handle of handles) {
    if (handle && typeof handle.ref === 'function') ref ? handle.ref() : handle.unref()
  }
}
