import { RootlessOptionError } from './errors.js'

/** A port forwarded into the sandbox: the port inside and the host's it leads to. */
export interface PortForward {
  inside: number
  host: number
}

/**
 * Host ports from `from` to `to` (both included), each reached inside at its own number:
 * the ports a container runtime publishes on (Testcontainers, `docker run -P`), known
 * only once the run is under way. With direct connects every port of it leads out,
 * served now or later; through the relay only those served when a sandbox starts.
 */
export interface PortRange {
  from: number
  to: number
}

/**
 * A service the host reaches by name (a CI job's `services:`, a docker-compose service):
 * inside, `name` resolves to the sandbox's loopback and `port` there leads to `name:port`
 * as the host resolves it when the run starts.
 */
export interface NamedService {
  name: string
  port: number
}

/** One resolved entry of `hostPorts`. */
export type HostPort = PortForward | PortRange | NamedService

export const isForward = (entry: HostPort): entry is PortForward => 'inside' in entry
export const isRange = (entry: HostPort): entry is PortRange => 'from' in entry
export const isService = (entry: HostPort): entry is NamedService => 'name' in entry

const isPort = (port: unknown): port is number => typeof port === 'number' && Number.isInteger(port) && port >= 1 && port <= 65535

/** A host name as `hosts` takes them, with at least one letter (`5432` is no name). */
const SERVICE_NAME = /^(?=.{1,253}:)(?=[^:]*[A-Za-z_])[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*:/

const EXPECTED = "expects ports from 1 to 65535, { inside, host } with two such ports, 'FROM-TO' ranges of them, or 'NAME:PORT' services"

/**
 * Validates `hostPorts` (or `--host-port`, as `option` says): each entry a port, an
 * `{ inside, host }` pair, a `'FROM-TO'` range or a `'NAME:PORT'` service; no port
 * inside the sandbox named twice, whichever forms name it.
 */
export function validateHostPorts(value: unknown, option: string): HostPort[] {
  if (value === undefined) return []
  if (!Array.isArray(value)) throw new RootlessOptionError(option, value, 'expects an array of ports, { inside, host } ports, ranges or services')
  const entries = value.map((entry: unknown) => parseEntry(entry, option))
  // the launcher's limit of --forward-range (MAX_LIST in native/sandbox.h)
  if (entries.filter(isRange).length > 64) throw new RootlessOptionError(option, value, 'expects at most 64 ranges: join neighbouring ones')
  for (let i = 0; i < entries.length; i++) {
    for (let j = 0; j < i; j++) {
      const overlap = overlapOf(entries[j]!, entries[i]!)
      if (overlap === undefined) continue
      const [first, second] = [describeEntry(value[j]), describeEntry(value[i])]
      const why = first === second ? `${overlap} is given twice` : `${overlap} is in both ${first} and ${second}`
      throw new RootlessOptionError(option, value, `expects each port inside the sandbox once (${why})`)
    }
  }
  return entries
}

function parseEntry(entry: unknown, option: string): HostPort {
  if (isPort(entry)) return { inside: entry, host: entry }
  if (typeof entry === 'object' && entry !== null && !Array.isArray(entry)) {
    const { inside, host } = entry as Record<string, unknown>
    if (Object.keys(entry).every((key) => key === 'inside' || key === 'host') && isPort(inside) && isPort(host)) return { inside, host }
    throw new RootlessOptionError(option, entry, EXPECTED)
  }
  if (typeof entry !== 'string') throw new RootlessOptionError(option, entry, EXPECTED)
  const range = /^(\d+)-(\d+)$/.exec(entry)
  if (range) {
    const from = Number(range[1])
    const to = Number(range[2])
    if (!isPort(from) || !isPort(to)) throw new RootlessOptionError(option, entry, 'expects a range FROM-TO of ports from 1 to 65535')
    if (from > to) throw new RootlessOptionError(option, entry, `expects a range FROM-TO with FROM at most TO, as in '${to}-${from}'`)
    return { from, to }
  }
  if (SERVICE_NAME.test(entry)) {
    const port = entry.slice(entry.lastIndexOf(':') + 1)
    if (/^\d+$/.test(port) && isPort(Number(port))) return { name: entry.slice(0, entry.lastIndexOf(':')), port: Number(port) }
    throw new RootlessOptionError(option, entry, 'expects a service as NAME:PORT, with a port from 1 to 65535')
  }
  if (/^[A-Za-z0-9_.-]*[A-Za-z_][A-Za-z0-9_.-]*$/.test(entry)) throw new RootlessOptionError(option, entry, `expects a service as NAME:PORT, the port it listens on: '${entry}:5432'?`)
  throw new RootlessOptionError(option, entry, EXPECTED)
}

/** The ports inside the sandbox an entry takes. */
function insideSpan(entry: HostPort): [number, number] {
  if (isForward(entry)) return [entry.inside, entry.inside]
  if (isRange(entry)) return [entry.from, entry.to]
  return [entry.port, entry.port]
}

/** The first port inside both entries take, or undefined. */
function overlapOf(a: HostPort, b: HostPort): number | undefined {
  const [aFrom, aTo] = insideSpan(a)
  const [bFrom, bTo] = insideSpan(b)
  const from = Math.max(aFrom, bFrom)
  return from <= Math.min(aTo, bTo) ? from : undefined
}

function describeEntry(entry: unknown): string {
  return typeof entry === 'string' ? `'${entry}'` : JSON.stringify(entry)
}

/**
 * `--host-port` values: PORT, INSIDE:HOST, FROM-TO or NAME:PORT, as `hostPorts` takes
 * them (numbers for the first, an object for the second, the text for the others).
 */
export function parsePortFlags(flags: string[], option: string): Array<number | { inside: number; host: number } | `${number}-${number}` | `${string}:${number}`> {
  const inRange = (text: string | undefined) => text === undefined || (Number(text) >= 1 && Number(text) <= 65535)
  const seen = new Map<number, string>()
  return flags.map((flag) => {
    const pair = /^(\d+)(?::(\d+))?$/.exec(flag)
    // ranges and names are checked with the option's own words
    if (!pair && !/^\d*(:\d*)?$/.test(flag)) return flag as `${number}-${number}` | `${string}:${number}`
    if (!pair) throw new RootlessOptionError(option, flag, 'expects PORT, INSIDE:HOST, FROM-TO or NAME:PORT, ports from 1 to 65535')
    // in the command line's terms: nothing about `{ inside, host }`
    if (!inRange(pair[1]) || !inRange(pair[2])) throw new RootlessOptionError(option, flag, 'expects PORT or INSIDE:HOST, ports from 1 to 65535')
    const inside = Number(pair[1])
    const earlier = seen.get(inside)
    if (earlier !== undefined) throw new RootlessOptionError(option, flag, `expects each port inside the sandbox once (${inside} is given already, by ${option} ${earlier})`)
    seen.set(inside, flag)
    return pair[2] === undefined ? inside : { inside, host: Number(pair[2]) }
  })
}

/**
 * The forwards a range gives when a sandbox starts: each port of `ranges` that something
 * on the host listens on (`listening`), at its own number, where no fixed entry already
 * takes it. A port nobody serves gets nothing: a connect to it is refused inside at
 * once, as on the host.
 */
export function rangeForwards(ranges: readonly PortRange[], listening: Iterable<number>): PortForward[] {
  const ports = [...new Set(listening)].filter((port) => ranges.some((r) => port >= r.from && port <= r.to)).sort((a, b) => a - b)
  return ports.map((port) => ({ inside: port, host: port }))
}
