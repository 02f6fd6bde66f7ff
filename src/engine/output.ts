import type { Writable } from 'node:stream'

/**
 * Pipes a sandboxed process's output into a stream many such processes share (the
 * runner's stdout or its logger's): never ending it when one process ends, and with one
 * more listener allowed per pipe, or Node warns of a leak at the tenth worker.
 */
export function pipeInto(from: NodeJS.ReadableStream | null | undefined, to: Writable): void {
  if (!from) return
  to.setMaxListeners(to.getMaxListeners() + 1)
  from.pipe(to, { end: false })
}

/** Undoes `pipeInto`. */
export function unpipeFrom(from: NodeJS.ReadableStream | null | undefined, to: Writable): void {
  if (!from) return
  from.unpipe(to)
  to.setMaxListeners(Math.max(0, to.getMaxListeners() - 1))
}
