import { closeSync, fstatSync, openSync, readdirSync, readFileSync, readlinkSync } from 'node:fs'
import type { Consumer } from './consumer.js'

/**
 * What a Vitest run of ours could leave behind on the host: processes, mounts and
 * namespaces. Taken before a run and compared after it by `expectNoLeftovers`: only
 * what is new since `before` counts.
 *
 * A process is ours when its command line names the consumer's directory, when it
 * descends from this process, or when its environment carries our tag (TAG_ENV) --
 * which finds a double-forked `sleep 600` whose command line names nothing of ours and
 * whose parent is init. A net or user namespace is ours when one of its processes is,
 * or when a run's process tree was seen in it (`trackNamespaces`), which finds a
 * daemon that dropped its environment but still sits in a sandbox the run created.
 */
export interface Leftovers {
  /** Live pids of ours (see above). */
  processes: number[]
  /** `pid:starttime` of each of `processes`: the same pid, not a reused one. */
  identities: Map<number, string>
  /** Their command lines, for messages. */
  commands: Map<number, string>
  /** The host's mount table as `mountpoint fstype source`, sorted. */
  mounts: string[]
  /** `net:[inode]` of every readable /proc/PID/ns/net. */
  netNamespaces: Set<string>
  /** `user:[inode]` of every readable /proc/PID/ns/user. */
  userNamespaces: Set<string>
  /** Which live pids are in each namespace above (for messages and attribution). */
  members: Map<string, number[]>
  /** `pid:starttime` of every live process: tells a namespace from a later one that got its inode number. */
  everyone: Map<number, string>
  /** Descendants of this process. */
  descendants: Set<number>
  consumerDir: string
}

interface ProcInfo {
  ppid: number
  zombie: boolean
  /** Clock ticks after boot: with the pid, names one process even when pids are reused. */
  start: string
}

function readProcs(): Map<number, ProcInfo> {
  const procs = new Map<number, ProcInfo>()
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      // "pid (comm) S ppid ...": comm may hold spaces and parentheses
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      procs.set(Number(entry), { ppid: Number(rest[1]), zombie: rest[0] === 'Z' || rest[0] === 'X', start: rest[19] ?? '' })
    } catch {}
  }
  return procs
}

/**
 * Set in the environment of every Vitest run a test starts (`{ [TAG_ENV]: TAG }`):
 * Vitest passes its environment to workers, the launcher to node, node to whatever a
 * test spawns. It tells our processes from those of other runs on the same machine,
 * such as the suite's other files, which run at the same time.
 */
export const TAG_ENV = 'VPR_FAULTS_TAG'
export const TAG = `${process.pid}-${Math.random().toString(36).slice(2)}`

/** This process's descendants: still ours whatever their command line. */
function descendants(procs: Map<number, ProcInfo>): Set<number> {
  const found = new Set<number>()
  for (const pid of procs.keys()) {
    const seen = new Set<number>()
    for (let cur = pid; cur > 1 && !seen.has(cur); cur = procs.get(cur)?.ppid ?? 0) {
      seen.add(cur)
      if (procs.get(cur)?.ppid === process.pid) {
        found.add(pid)
        break
      }
    }
  }
  return found
}

function tagged(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(`${TAG_ENV}=${TAG}`)
  } catch {
    return false
  }
}

function mountList(): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .trim()
    .split('\n')
    .map((line) => {
      const fields = line.split(' ')
      const dash = fields.indexOf('-')
      return `${fields[4]} ${fields[dash + 1]} ${fields[dash + 2]}`
    })
    .sort()
}

/**
 * Net and user namespaces a run's process tree was seen in (this test file's runs only:
 * each test file is a process of its own), as `net:[inode]` -> an open fd of it. Filled
 * by `trackNamespaces`, emptied when `expectNoLeftovers` returns or throws.
 *
 * The fd is what makes the inode mean anything: the kernel hands a freed namespace's
 * inode number to the next namespace anyone creates (another engineer's run, say), and
 * holding the namespace open keeps its number from being reused while we count on it.
 * It does not make the namespace show up as a leftover: those are found through the
 * processes in them.
 */
const runNamespaces = new Map<string, number>()

function noteNamespaces(pids: Iterable<number>): void {
  for (const pid of pids) {
    for (const kind of ['net', 'user']) {
      let fd: number | undefined
      try {
        // open, then name it by the fd: a process between fork and unshare can't mislead
        fd = openSync(`/proc/${pid}/ns/${kind}`, 'r')
        const ns = `${kind}:[${fstatSync(fd).ino}]`
        if (!runNamespaces.has(ns)) {
          runNamespaces.set(ns, fd)
          fd = undefined
        }
      } catch {
      } finally {
        if (fd !== undefined) closeSync(fd)
      }
    }
  }
}

/** Lets go of the namespaces `trackNamespaces` holds open. */
export function releaseNamespaces(): void {
  for (const fd of runNamespaces.values()) closeSync(fd)
  runNamespaces.clear()
}

/**
 * Notes, every `everyMs` until the returned stop is called, the net and user namespaces
 * of `pid` and its descendants: the namespaces a run created, so that one still held
 * after the run counts as ours whoever holds it. Stop once the run has exited.
 */
export function trackNamespaces(pid: number, everyMs = 100): () => void {
  const look = () => {
    const procs = readProcs()
    const tree = [pid]
    for (const [p] of procs) {
      const seen = new Set<number>()
      for (let cur = procs.get(p)?.ppid ?? 0; cur > 1 && !seen.has(cur); cur = procs.get(cur)?.ppid ?? 0) {
        seen.add(cur)
        if (cur === pid) {
          tree.push(p)
          break
        }
      }
    }
    noteNamespaces(tree)
  }
  look()
  const timer = setInterval(look, everyMs)
  return () => {
    clearInterval(timer)
    look()
  }
}

/** The consumer a check is about: only its directory matters here. */
export type LeftoverScope = Pick<Consumer, 'dir'>

/** Processes, mounts and namespaces a run of `consumer` could leave behind, as of now. */
export function snapshotLeftovers(consumer: LeftoverScope): Leftovers {
  const procs = readProcs()
  const mine = descendants(procs)
  const processes: number[] = []
  const identities = new Map<number, string>()
  const commands = new Map<number, string>()
  const netNamespaces = new Set<string>()
  const userNamespaces = new Set<string>()
  const members = new Map<string, number[]>()
  const everyone = new Map<number, string>()
  for (const [pid, info] of procs) {
    // a zombie holds no namespaces and runs nothing; whoever reaps it is not our concern
    if (info.zombie || pid === process.pid) continue
    everyone.set(pid, `${pid}:${info.start}`)
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim()
      commands.set(pid, cmd)
      // The project's own launcher also serves the suite's other files, which run at the
      // same time: a command line naming it proves nothing, only ancestry or the tag do.
      // Those also find a daemon a test double-forked, whatever it runs.
      if (cmd.includes(consumer.dir) || mine.has(pid) || tagged(pid)) processes.push(pid)
    } catch {}
    if (processes.at(-1) === pid) identities.set(pid, `${pid}:${info.start}`)
    for (const [kind, set] of [['net', netNamespaces], ['user', userNamespaces]] as const) {
      try {
        const ns = readlinkSync(`/proc/${pid}/ns/${kind}`)
        set.add(ns)
        const list = members.get(ns) ?? []
        list.push(pid)
        members.set(ns, list)
      } catch {}
    }
  }
  return { consumerDir: consumer.dir, processes: processes.sort((a, b) => a - b), identities, commands, mounts: mountList(), netNamespaces, userNamespaces, members, everyone, descendants: mine }
}

/** How many of each kind `now` has beyond `before`. */
export interface LeftoverCounts {
  processes: number
  mounts: number
  netNamespaces: number
  userNamespaces: number
}

export interface LeftoverDiff {
  counts: LeftoverCounts
  text: string
}

function multisetDiff(before: string[], now: string[]): { added: string[]; removed: string[] } {
  const left = new Map<string, number>()
  for (const m of before) left.set(m, (left.get(m) ?? 0) + 1)
  const added: string[] = []
  for (const m of now) {
    const n = left.get(m) ?? 0
    if (n > 0) left.set(m, n - 1)
    else added.push(m)
  }
  const removed = [...left].flatMap(([m, n]) => Array<string>(n).fill(m))
  return { added, removed }
}

/** What `now` has that `before` did not, counted and as readable text. */
export function diffLeftovers(before: Leftovers, now: Leftovers): LeftoverDiff {
  const lines: string[] = []
  const describe = (pid: number) => `    ${pid} ${now.commands.get(pid) ?? '?'}`
  const existed = new Set(before.identities.values())
  const processes = now.processes.filter((pid) => !existed.has(now.identities.get(pid)!))
  for (const pid of processes) lines.push(`  process ${pid}: ${now.commands.get(pid) ?? '?'}`)
  const mounts = multisetDiff(before.mounts, now.mounts)
  for (const m of mounts.added) lines.push(`  mount added: ${m}`)
  for (const m of mounts.removed) lines.push(`  mount removed: ${m}`)
  // Other runs on this machine (the suite's other files, at the same time) make
  // namespaces too: a new one counts when one of its processes is ours -- our
  // descendant, in the consumer's directory, or carrying our tag in its environment --
  // or it is one a run of this file was seen in (trackNamespaces).
  const ours = (pid: number) => now.descendants.has(pid) || (now.commands.get(pid) ?? '').includes(now.consumerDir) || tagged(pid)
  // The kernel hands a freed namespace's inode number to a later one: a namespace known
  // before is still new if none of the processes in it now was alive then.
  const wasAlive = new Set(before.everyone.values())
  const isNew = (kind: 'netNamespaces' | 'userNamespaces', ns: string) =>
    !before[kind].has(ns) || (now.members.get(ns) ?? []).every((pid) => !wasAlive.has(now.everyone.get(pid)!))
  const newNs = (kind: 'netNamespaces' | 'userNamespaces') =>
    [...now[kind]].filter((ns) => isNew(kind, ns) && (runNamespaces.has(ns) || (now.members.get(ns) ?? []).some(ours)))
  const net = newNs('netNamespaces')
  const user = newNs('userNamespaces')
  for (const ns of [...net, ...user]) {
    lines.push(`  namespace ${ns}, held by:`)
    for (const pid of now.members.get(ns) ?? []) lines.push(describe(pid))
  }
  return {
    counts: { processes: processes.length, mounts: mounts.added.length + mounts.removed.length, netNamespaces: net.length, userNamespaces: user.length },
    text: lines.join('\n'),
  }
}

export interface LeftoverReport {
  /** Milliseconds from the call until nothing was left. */
  cleanAfterMs: number
  /** What was left at the first look. */
  atFirstLook: LeftoverCounts
}

const isClean = (c: LeftoverCounts) => c.processes === 0 && c.mounts === 0 && c.netNamespaces === 0 && c.userNamespaces === 0

/**
 * Polls until no process of ours that `before` did not have is alive, the mount table
 * equals `before`'s, and no net or user namespace of ours exists that `before` did not
 * have (older ones are ignored). Throws with what is left after `withinMs`. Either way
 * the namespaces tracked so far are let go: a check ends the accounting of its runs.
 */
export async function expectNoLeftovers(before: Leftovers, consumer: LeftoverScope, withinMs = 2000): Promise<LeftoverReport> {
  const start = Date.now()
  let first: LeftoverCounts | undefined
  try {
    for (;;) {
      const diff = diffLeftovers(before, snapshotLeftovers(consumer))
      first ??= diff.counts
      const elapsed = Date.now() - start
      if (isClean(diff.counts)) return { cleanAfterMs: elapsed, atFirstLook: first }
      if (elapsed >= withinMs) {
        throw new Error(`left behind ${withinMs} ms after the run (${JSON.stringify(diff.counts)}):\n${diff.text}`)
      }
      await new Promise((ok) => setTimeout(ok, 50))
    }
  } finally {
    releaseNamespaces()
  }
}

/**
 * Host pids of processes in net namespace `netns` whose innermost pid is `innerPid`:
 * what a pid printed inside a sandbox is on the host, with or without a pid namespace.
 */
export function hostPidsOf(innerPid: number, netns: string): number[] {
  const found: Array<{ pid: number; nested: boolean }> = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      if (readlinkSync(`/proc/${entry}/ns/net`) !== netns) continue
      const nspid = /^NSpid:\s+(.*)$/m.exec(readFileSync(`/proc/${entry}/status`, 'utf8'))?.[1]?.trim().split(/\s+/)
      if (nspid && Number(nspid[nspid.length - 1]) === innerPid) found.push({ pid: Number(entry), nested: nspid.length > 1 })
    } catch {}
  }
  // a sandbox's command has its outer launcher's host pid inside its pid namespace: the
  // launcher (in the same network namespace) matches too, by its host pid; the command
  // is the one in a nested pid namespace
  const nested = found.filter((f) => f.nested)
  return (nested.length > 0 ? nested : found).map((f) => f.pid)
}
