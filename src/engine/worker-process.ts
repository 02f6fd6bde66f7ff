import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import type { Writable } from 'node:stream'
import { WorkerExitError } from '../plan/errors.js'
import type { ChildExit } from './exit.js'
import { pipeInto, unpipeFrom } from './output.js'
import { exitOf } from './run.js'

/** How long a process's output may lag behind its exit before it is cut off. */
const OUTPUT_GRACE_MS = 1000

/**
 * Pipes a process `SandboxRun.launch` started into the runner's output, and resolves
 * with how it ended once all it sent has arrived: the end of its IPC channel comes after
 * every message sent on it (Node may emit 'exit' before the last of them), the end of
 * its output after everything it printed. Then the output is unpiped.
 */
export function followChild(child: ChildProcess, stdout: Writable, stderr: Writable): Promise<ChildExit> {
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

/** SIGTERM first; a process that ignores it gets SIGKILL after this long. */
const SIGKILL_TIMEOUT_MS = 500

/** Stops a process `SandboxRun.launch` started (SIGTERM, then SIGKILL); resolves with how it ended. */
export function stopChild(child: ChildProcess): Promise<ChildExit> {
  const exited = exitOf(child)
  if (child.exitCode === null && child.signalCode === null) {
    const kill = setTimeout(() => child.kill('SIGKILL'), SIGKILL_TIMEOUT_MS)
    kill.unref()
    child.kill('SIGTERM')
    void exited.then(() => clearTimeout(kill))
  }
  return exited
}
