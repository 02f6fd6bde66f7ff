import type { ChildProcess } from 'node:child_process'
import type { Readable } from 'node:stream'
import { LAUNCHER_STEPS } from '../plan/steps.js'

/** How a sandboxed process ended, and whether the sandbox or the command is to blame. */
export interface ChildExit {
  code: number | null
  signal: NodeJS.Signals | null
  /** The launcher step that failed before the command ran; unset when the command ran. */
  step?: string
}

/**
 * How long to wait, after 'exit', for the launcher's status byte. It is written before the
 * launcher exits, so it is in the pipe by then; this only covers Node reading it.
 */
const STATUS_GRACE_MS = 250

/**
 * Watches a launched process's status pipe (the launcher's `--status-fd`): a byte there
 * means a setup step failed, and which one; none means the command itself ran, so even
 * an exit status in the launcher's own 230–253 range is the command's (`process.exit(240)`).
 * Must be called right after the spawn, before anything could be written.
 */
export function watchExit(child: ChildProcess, status: Readable | null | undefined): Promise<ChildExit> {
  let byte: number | undefined
  let ended = !status
  const endWaiters: Array<() => void> = []
  if (status) {
    status.on('data', (chunk: Buffer) => (byte ??= chunk[0]))
    const end = () => {
      ended = true
      for (const wake of endWaiters.splice(0)) wake()
    }
    status.once('end', end)
    status.once('close', end)
    status.once('error', end)
  }
  return new Promise((resolve) => {
    // a launcher that could not be started at all (missing, not executable, EAGAIN)
    child.once('error', (error: NodeJS.ErrnoException) => {
      if (child.pid === undefined) resolve({ code: null, signal: null, step: `spawn (${error.code ?? error.message})` })
    })
    child.once('exit', (code, signal) => {
      const done = () => resolve({ code, signal, step: byte === undefined ? undefined : (LAUNCHER_STEPS[byte] ?? `status ${byte}`) })
      if (ended) return done()
      const timer = setTimeout(done, STATUS_GRACE_MS)
      timer.unref()
      endWaiters.push(() => {
        clearTimeout(timer)
        done()
      })
    })
  })
}
