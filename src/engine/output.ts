import { Transform, type Writable } from 'node:stream'
import { ONCE_PER_RUN_MARK } from '../wire/wire.js'

/** Notices already shown by some process of this run. */
const said = new Set<string>()
/** The filter each piped stream goes through, for `unpipeFrom`. */
const filters = new WeakMap<NodeJS.ReadableStream, Transform>()

/**
 * Pipes a sandboxed process's output into a stream many such processes share (the
 * runner's stdout or its logger's): never ending it when one process ends, with one more
 * listener allowed per pipe (or Node warns of a leak at the tenth worker), and with a
 * notice about the sandbox that another process already printed left out.
 */
export function pipeInto(from: NodeJS.ReadableStream | null | undefined, to: Writable): void {
  if (!from) return
  to.setMaxListeners(to.getMaxListeners() + 1)
  const filter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      done(null, dropRepeatedNotices(chunk, said))
    },
  })
  filters.set(from, filter)
  from.pipe(filter).pipe(to, { end: false })
}

/** Undoes `pipeInto`. */
export function unpipeFrom(from: NodeJS.ReadableStream | null | undefined, to: Writable): void {
  if (!from) return
  const filter = filters.get(from)
  if (filter) {
    from.unpipe(filter)
    // what the filter holds still reaches `to`; its end then unpipes it (end: false)
    filter.end()
    filters.delete(from)
  }
  to.setMaxListeners(Math.max(0, to.getMaxListeners() - 1))
}

/**
 * `chunk` without the lines that carry a once-per-run notice `said` has seen; the first
 * such line is kept and remembered. A notice is one write of one line, well under the
 * size a pipe delivers whole, so it never straddles two chunks.
 */
export function dropRepeatedNotices(chunk: Buffer, said: Set<string>): Buffer {
  let at = chunk.indexOf(ONCE_PER_RUN_MARK)
  if (at === -1) return chunk
  const kept: Buffer[] = []
  let from = 0
  while (at !== -1) {
    const start = chunk.lastIndexOf(0x0a, at) + 1
    const newline = chunk.indexOf(0x0a, at)
    const end = newline === -1 ? chunk.length : newline + 1
    if (said.has(ONCE_PER_RUN_MARK)) {
      kept.push(chunk.subarray(from, start))
      from = end
    } else {
      said.add(ONCE_PER_RUN_MARK)
    }
    at = chunk.indexOf(ONCE_PER_RUN_MARK, end)
  }
  kept.push(chunk.subarray(from))
  return Buffer.concat(kept)
}
