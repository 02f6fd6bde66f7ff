import type { ChildProcess, Serializable } from 'node:child_process'
import { once } from 'node:events'
import type { Writable } from 'node:stream'
import { WorkerExitError } from '../plan/errors.js'
import type { ChildExit } from './exit.js'
import { pipeInto, unpipeFrom } from './output.js'
import { exitOf } from './run.js'

/** Where a worker's output goes: the runner's own streams (or its logger's). */
export interface Output {
  stdout: Writable
  stderr: Writable
}

/** How long a process's output may lag behind its exit before it is cut off. */
const OUTPUT_GRACE_MS = 1000

/** SIGTERM first; a process that ignores it gets SIGKILL after this long. */
const SIGKILL_TIMEOUT_MS = 500

/**
 * A process `SandboxRun.launch` started, its output piped into the runner's for as long
 * as it runs. `ended` settles once all it sent has arrived: the end of its IPC channel
 * comes after every message sent on it (Node may emit 'exit' before the last of them),
 * the end of its output after everything it printed; the output is unpiped then, never
 * before. The one way the engine and every runner adapter follow and stop a worker.
 */
export class WorkerProcess {
  /** How it ended, once its messages and output are all in. */
  readonly ended: Promise<ChildExit>

  constructor(
    readonly child: ChildProcess,
    output: Output,
  ) {
    this.ended = follow(child, output)
  }

  /** It can still be sent messages (and so still answer). */
  get connected(): boolean {
    return this.child.connected
  }

  /** Sends `message` if it still listens; a process that is gone is reported by `ended`, not here. */
  send(message: unknown): void {
    if (this.child.connected) this.child.send(message as Serializable, () => {})
  }

  /**
   * Stops it: its channel closes (a loop of ours exits then), SIGTERM, and SIGKILL if it
   * is still there after SIGKILL_TIMEOUT_MS. Resolves with how it ended, output flushed.
   */
  stop(): Promise<ChildExit> {
    const { child } = this
    if (child.exitCode === null && child.signalCode === null) {
      const kill = setTimeout(() => child.kill('SIGKILL'), SIGKILL_TIMEOUT_MS)
      kill.unref()
      void exitOf(child).then(() => clearTimeout(kill))
      if (child.connected) child.disconnect()
      child.kill('SIGTERM')
    }
    return this.ended
  }
}

function follow(child: ChildProcess, { stdout, stderr }: Output): Promise<ChildExit> {
  pipeInto(child.stdout, stdout)
  pipeInto(child.stderr, stderr)
  // a send to a process that is already gone: its exit tells what happened
  child.on('error', () => {})
  const disconnected = child.connected ? once(child, 'disconnect') : Promise.resolve()
  // (the child's own 'close' waits for the IPC channel in ways a disconnect doesn't settle)
  const outputEnded = Promise.all([child.stdout, child.stderr].map((stream) => (stream && !stream.closed ? once(stream, 'close') : undefined)))
  return Promise.all([exitOf(child), disconnected]).then(async ([exit]) => {
    // without a pid namespace, a process a test left behind may hold the output open
    await Promise.race([outputEnded, new Promise((resolve) => setTimeout(resolve, OUTPUT_GRACE_MS).unref())])
    unpipeFrom(child.stdout, stdout)
    unpipeFrom(child.stderr, stderr)
    return exit
  })
}

/** A file's process ended before it answered: the error the runner reports for `files`. */
export function crashOf(exit: ChildExit, files: string[]): WorkerExitError {
  const crash = new WorkerExitError({ exitCode: exit.code, signal: exit.signal, files, step: exit.step })
  // runners print a failed file's stack: the message is all there is to say
  crash.stack = crash.message
  return crash
}
