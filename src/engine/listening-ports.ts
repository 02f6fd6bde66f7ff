import { readdirSync, readlinkSync } from 'node:fs'
import { readOptional } from './host-facts.js'

const LISTEN = '0A'

/**
 * The TCP ports this process listens on right now: its own sockets (the inodes behind
 * /proc/self/fd) that the kernel's socket tables show in LISTEN. Sockets of other
 * processes are never in the answer, even on the same port range -- that is the point:
 * the runner's `globalSetup` servers are forwarded into sandboxes, the machine's other
 * services are not. Sorted, each port once. Empty where /proc can't be read.
 */
export function ownListeningPorts(): number[] {
  const inodes = ownSocketInodes()
  if (inodes.size === 0) return []
  const ports = new Set<number>()
  for (const table of ['/proc/self/net/tcp', '/proc/self/net/tcp6']) {
    for (const { port, inode } of listeningSockets(readOptional(table))) if (inodes.has(inode)) ports.add(port)
  }
  return [...ports].sort((a, b) => a - b)
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

function ownSocketInodes(): Set<string> {
  const inodes = new Set<string>()
  let fds: string[] = []
  try {
    fds = readdirSync('/proc/self/fd')
  } catch {
    return inodes
  }
  for (const fd of fds) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`))
      if (match) inodes.add(match[1]!)
    } catch {} // closed since the listing (the listing's own fd, for one)
  }
  return inodes
}
