import { CRASHED_FILE_ENV, type CrashedFile } from '../wire/wire.js'

/**
 * The file a crashed worker was running, for the worker that took over from it to fail
 * (wire.ts `CRASHED_FILE_ENV`); taken once, so the tests never see the variable.
 */
export function takeCrashedFile(): CrashedFile | undefined {
  const raw = process.env[CRASHED_FILE_ENV]
  delete process.env[CRASHED_FILE_ENV]
  return raw ? (JSON.parse(raw) as CrashedFile) : undefined
}

/** The error the crashed file fails with: how its worker ended, and nothing of ours in a stack. */
export function crashError(crash: CrashedFile): Error {
  return Object.assign(new Error(crash.message), { stack: crash.message })
}
