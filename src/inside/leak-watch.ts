import { readdirSync, readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { LEAKS_ENV, type LeakChecks } from '../wire/wire.js'
import { readMounts } from './sandbox-reset.js'
import { parseBoundSockets, type SocketEntry } from '../engine/listening-ports.js'

/**
 * How long what a file left gets to end by itself before it counts: a server closing,
 * a child a test killed exiting. Measured on this project's 2-core machine, loaded by two
 * Vitest runs: from `kill()` or `close()` in a test's last line to gone from /proc took
 * 20 ms at the median and 145 ms at worst (50 of each). Only a file that left something
 * waits at all.
 */
export const GRACE_MS = 250
const POLL_MS = 10

/** One line of /proc/PID/stat, the fields a leak check needs. */
export interface ProcessEntry {
  pid: number
  ppid: number
  session: number
  zombie: boolean
}

/**
 * What one test file left running when it ended, charged to that file: processes, the
 * sockets listening in its network, the mounts it made -- each as a few words for the
 * report line (`sleep 517 (pid 14)`, `a server on 127.0.0.1:3000`, `a mount on /mnt`).
 * `start()` before the file notes what was there already (the forwarder's listeners, the
 * sandbox's mounts); `left()` after it finds what is new and still there after a grace
 * period. Processes only where the worker has its pid namespace to itself, sockets only
 * where the network is the sandbox's own (the engine says which: LEAKS_ENV).
 */
export class LeakWatch {
  private sockets = new Set<string>()
  private mounts = new Set<string>()
  /** The addon's socket list (sock_diag): /proc/net/tcp costs 20 ms and more a read. */
  private readonly boundSockets?: () => string

  /** From LEAKS_ENV, which it removes; undefined when leaks are not looked for. */
  static fromEnv(keepSession: boolean, env: NodeJS.ProcessEnv = process.env): LeakWatch | undefined {
    const raw = env[LEAKS_ENV]
    delete env[LEAKS_ENV]
    return raw ? new LeakWatch(JSON.parse(raw) as LeakChecks, keepSession) : undefined
  }

  /**
   * `keepSession`: the worker serves more files, and its children in its session are
   * what it keeps between them (the reset keeps them too): not leaks.
   */
  constructor(
    private readonly checks: LeakChecks,
    private readonly keepSession: boolean,
  ) {
    if (checks.sockets && checks.addon) {
      const module = { exports: {} as { boundSockets(): string } }
      process.dlopen(module, checks.addon)
      this.boundSockets = module.exports.boundSockets
    }
  }

  /** Notes what is there before the file runs. */
  start(): void {
    this.sockets = new Set(this.readSockets().map((s) => s.inode))
    this.mounts = new Set(readMountIds())
  }

  /** What the file left and is still there after the grace period, in words; [] for nothing. */
  async left(): Promise<string[]> {
    let found = this.find()
    for (let waited = 0; found.length > 0 && waited < GRACE_MS; waited += POLL_MS) {
      await sleep(POLL_MS)
      found = this.find()
    }
    return found
  }

  private readSockets(): SocketEntry[] {
    return this.boundSockets ? parseBoundSockets(this.boundSockets()) : []
  }

  private find(): string[] {
    const processes = this.checks.processes ? leftProcesses(readProcesses(), process.pid, this.keepSession).map(describeProcess) : []
    const sockets = this.readSockets().filter((s) => !this.sockets.has(s.inode)).map(describeSocket)
    const mounts = readMounts().filter((m) => !this.mounts.has(m.id)).map((m) => `a mount on ${m.path}`)
    return [...processes, ...[...new Set(sockets)], ...mounts]
  }
}

/**
 * The processes a file left: all but init (pid 1) and the worker, and -- on a worker
 * that serves more files -- but the worker's descendants that stayed in its session (as
 * native/reset.c keeps them). Zombies hold nothing.
 */
export function leftProcesses(all: ProcessEntry[], self: number, keepSession: boolean): ProcessEntry[] {
  const kept = new Set([self])
  const session = all.find((p) => p.pid === self)?.session
  for (let changed = keepSession; changed; ) {
    changed = false
    for (const p of all) {
      if (!kept.has(p.pid) && p.session === session && kept.has(p.ppid)) {
        kept.add(p.pid)
        changed = true
      }
    }
  }
  return all.filter((p) => p.pid > 1 && !kept.has(p.pid) && !p.zombie)
}

/** `pid (comm) S ppid pgrp session …`; comm may hold anything, so the fields follow its last ')'. */
export function parseStat(text: string): ProcessEntry | undefined {
  const close = text.lastIndexOf(')')
  const fields = text.slice(close + 2).split(' ')
  const pid = Number.parseInt(text, 10)
  if (close < 0 || fields.length < 4 || !(pid > 0)) return undefined
  return { pid, ppid: Number(fields[1]), session: Number(fields[3]), zombie: fields[0] === 'Z' || fields[0] === 'X' }
}


function describeProcess(p: ProcessEntry): string {
  let command = ''
  try {
    command = readFileSync(`/proc/${p.pid}/cmdline`, 'latin1').split('\0').filter(Boolean).join(' ')
  } catch {
    // gone meanwhile
  }
  if (command.length > 80) command = `${command.slice(0, 77)}...`
  return `${command || '(unnamed)'} (pid ${p.pid})`
}

function describeSocket(s: SocketEntry): string {
  const host = s.address.includes(':') ? `[${s.address}]` : s.address
  return s.protocol === 'tcp' ? `a server on ${host}:${s.port}` : `a UDP socket on ${host}:${s.port}`
}

function readProcesses(): ProcessEntry[] {
  const found: ProcessEntry[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      const entry = parseStat(readFileSync(`/proc/${name}/stat`, 'latin1'))
      if (entry) found.push(entry)
    } catch {
      // ended while we looked
    }
  }
  return found
}

function readMountIds(): string[] {
  return readMounts().map((m) => m.id)
}
