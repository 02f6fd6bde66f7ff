import { readdirSync, readFileSync } from 'node:fs'

/** What a process of ours may use at most while idle (issue 26's bounds for junk on the control fd). */
export const MAX_FDS = 64
/** 10 % of a core over 2 s: 20 clock ticks of 10 ms (USER_HZ is 100). */
export const MAX_TICKS_IN_2S = 20

/** The pids of `root` and every process under it, by /proc's parent links. */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>()
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)])
    } catch {}
  }
  const all = [root]
  for (let i = 0; i < all.length; i++) all.push(...(children.get(all[i]!) ?? []))
  return all
}

/** How many fds `pid` holds; 0 once it is gone. */
export function fdCount(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length
  } catch {
    return 0
  }
}

/** utime + stime of `pid`, in clock ticks; 0 once it is gone. */
export function cpuTicks(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
    return Number(fields[11]) + Number(fields[12])
  } catch {
    return 0
  }
}

/**
 * Each of `pids`' fd count at the end and CPU ticks used over `ms` (a process gone
 * meanwhile counts what it had used).
 */
export async function usageOver(pids: number[], ms: number): Promise<{ pid: number; fds: number; ticks: number }[]> {
  const before = new Map(pids.map((pid) => [pid, cpuTicks(pid)]))
  await new Promise((resolve) => setTimeout(resolve, ms))
  return pids.map((pid) => ({ pid, fds: fdCount(pid), ticks: Math.max(0, cpuTicks(pid) - before.get(pid)!) }))
}
