import type { IdRange, SubidEntry } from './subid.js'
import { addSubidsAdvice, findSubidRanges, freeSubidRange } from './subid.js'

/** One line of /proc/PID/uid_map: ids inside → ids outside. */
export interface IdMapLine {
  inside: number
  outside: number
  count: number
}

/** What the id-map decision depends on; gathered by `readHostFacts`. */
export interface IdentityFacts {
  uid: number
  gid: number
  /** Login name, if the uid has a passwd entry. subuid(5) matches by name or by uid. */
  userName?: string
  subuid: SubidEntry[]
  subgid: SubidEntry[]
  /** Every range of any owner in /etc/subuid and /etc/subgid: a proposed range must avoid them. */
  usedSubids?: IdRange[]
  /** Set when the caller's own subid lines can't be used (malformed, overlapping). */
  subidProblem?: string
  /** Absolute paths of the setuid helpers, or null when not installed. */
  newuidmap: string | null
  newgidmap: string | null
  /** NoNewPrivs: setuid binaries can't raise privileges, so the helpers can't work. */
  noNewPrivs: boolean
  /**
   * This process's own /proc/self/uid_map and gid_map: `0 0 4294967295` in the initial
   * namespace, less when already inside one (a container, `unshare -r`).
   */
  ownUidMap?: IdMapLine[]
  ownGidMap?: IdMapLine[]
}

export interface IdMapPlan {
  uidMap: IdMapLine[]
  gidMap: IdMapLine[]
  /** Write the maps through newuidmap/newgidmap (unprivileged, multi-range). */
  helpers: { newuidmap: string; newgidmap: string } | null
  /** `subids`: own id + subordinate ranges; `self`: own id alone; `root`: real root. */
  mode: 'subids' | 'self' | 'root'
  /** Set when subordinate ids were wanted but can't be had: why, and what to do. */
  warning?: string
}

/** Ids real root maps when it has no /etc/subuid range: 0..65535 onto themselves. */
const ROOT_IDENTITY_COUNT = 65536

/**
 * Decides the uid/gid maps: the caller becomes 0 inside and, with `subids: 'auto'`,
 * the caller's subordinate ranges follow as 1..N, so `chown 1000` works. Without
 * them it falls back to mapping the caller alone and says why in `warning`.
 */
export function createIdMapPlan(facts: IdentityFacts, subids: 'auto' | false): IdMapPlan {
  const self = (id: number): IdMapLine[] => [{ inside: 0, outside: id, count: 1 }]
  const user = { name: facts.userName, id: facts.uid }
  let problem = facts.subidProblem
  let ranges: { uid: IdRange[]; gid: IdRange[] } = { uid: [], gid: [] }
  if (subids === 'auto' && !problem) {
    try {
      ranges = { uid: findSubidRanges(facts.subuid, user, '/etc/subuid'), gid: findSubidRanges(facts.subgid, user, '/etc/subgid') }
    } catch (error) {
      problem = (error as Error).message.replace(/^vitest-pool-rootless: /, '')
    }
  }

  if (facts.uid === 0) {
    // Real root may write any map itself. Same semantics as unprivileged: uid 0 inside
    // and other ids usable; its own subid ranges if it has them, else identity.
    if (ranges.uid.length > 0 && ranges.gid.length > 0) {
      return { uidMap: stack(0, ranges.uid), gidMap: stack(facts.gid, ranges.gid), helpers: null, mode: 'root' }
    }
    // Inside a user namespace already, only the ids mapped here can be passed on.
    const uidCount = Math.min(subids === 'auto' ? ROOT_IDENTITY_COUNT : 1, mappedFromZero(facts.ownUidMap))
    const gidCount = Math.min(subids === 'auto' ? ROOT_IDENTITY_COUNT : 1, mappedFromZero(facts.ownGidMap))
    const plan: IdMapPlan = {
      uidMap: [{ inside: 0, outside: 0, count: uidCount }],
      gidMap: [{ inside: 0, outside: 0, count: gidCount }],
      helpers: null,
      // 'self' tells callers that other ids won't work, which subids: false asked for anyway
      mode: subids === 'auto' && uidCount === 1 ? 'self' : 'root',
    }
    if (subids === 'auto' && uidCount < ROOT_IDENTITY_COUNT) {
      plan.warning = `vitest-pool-rootless: this process already runs in a user namespace that maps only ${uidCount} uid(s) from 0 (see /proc/self/uid_map), so only those are mapped into the sandbox; chown to other ids fails with EINVAL. Map a larger range into the outer namespace (e.g. unshare --map-auto, or a container with a full subuid range).`
    }
    return plan
  }
  if (subids === false) return { uidMap: self(facts.uid), gidMap: self(facts.gid), helpers: null, mode: 'self' }

  const who = facts.userName ? `${facts.userName} (uid ${facts.uid})` : `uid ${facts.uid}`
  const loginName = facts.userName ?? String(facts.uid)
  const consequence = 'Tests still run as uid 0, but only your own id is mapped, so chown to any other id fails with EINVAL.'
  let why: string | undefined
  if (problem) {
    why = `your subordinate id ranges can't be used: ${problem}. ${consequence}`
  } else if (ranges.uid.length === 0 || ranges.gid.length === 0) {
    const missing = [ranges.uid.length === 0 && '/etc/subuid', ranges.gid.length === 0 && '/etc/subgid'].filter(Boolean)
    const advice = addSubidsAdvice(loginName, freeSubidRange(facts.usedSubids ?? []))
    why = `${missing.join(' and ')} ${missing.length > 1 ? 'have' : 'has'} no range for ${who}. ${consequence} Add one: ${advice.command} (or the line "${advice.line}" in /etc/subuid and /etc/subgid).`
  } else if (!facts.newuidmap || !facts.newgidmap) {
    why = `newuidmap/newgidmap are not installed. ${consequence} Install them: sudo apt-get install uidmap (Debian/Ubuntu), sudo dnf install shadow-utils (Fedora), apk add shadow-uidmap (Alpine).`
  } else if (!ranges.uid.every((r) => isMapped(facts.ownUidMap, r)) || !ranges.gid.every((r) => isMapped(facts.ownGidMap, r))) {
    // newuidmap writes from this namespace: ids it doesn't map don't exist here (EPERM)
    why = `this process already runs in a user namespace (a rootless container, unshare --map-current-user) that doesn't map your /etc/subuid and /etc/subgid ranges (see /proc/self/uid_map), so newuidmap can't pass them on. ${consequence} Map the ranges into the outer namespace (e.g. unshare --map-auto, a container with a full subuid range), or set subids: false.`
  } else if (facts.noNewPrivs) {
    why = `this process runs with NoNewPrivs set (see "NoNewPrivs:" in /proc/self/status), so the setuid newuidmap can't map your /etc/subuid range. ${consequence} Start the run without no_new_privs (Docker: drop --security-opt no-new-privileges; systemd: NoNewPrivileges=no).`
  }
  if (why) return { uidMap: self(facts.uid), gidMap: self(facts.gid), helpers: null, mode: 'self', warning: `vitest-pool-rootless: ${why}` }

  return {
    uidMap: stack(facts.uid, ranges.uid),
    gidMap: stack(facts.gid, ranges.gid),
    helpers: { newuidmap: facts.newuidmap!, newgidmap: facts.newgidmap! },
    mode: 'subids',
  }
}

/** How many ids from 0 upwards this process's own namespace maps without a gap. */
function mappedFromZero(lines: IdMapLine[] | undefined): number {
  if (!lines) return Number.MAX_SAFE_INTEGER
  let next = 0
  for (const line of [...lines].sort((a, b) => a.inside - b.inside)) {
    if (line.inside > next) break
    next = Math.max(next, line.inside + line.count)
  }
  return next
}

/** Whether every id of `range` is mapped in this process's own namespace (no map read: yes). */
function isMapped(lines: IdMapLine[] | undefined, range: IdRange): boolean {
  if (!lines) return true
  let next = range.start
  const end = range.start + range.count
  for (const line of [...lines].sort((a, b) => a.inside - b.inside)) {
    if (line.inside <= next && next < line.inside + line.count) next = line.inside + line.count
    if (next >= end) return true
  }
  return next >= end
}

/** `0 → own`, then each subordinate range at 1, 1+count₀, … */
function stack(own: number, ranges: IdRange[]): IdMapLine[] {
  const lines: IdMapLine[] = [{ inside: 0, outside: own, count: 1 }]
  let next = 1
  for (const r of ranges) {
    lines.push({ inside: next, outside: r.start, count: r.count })
    next += r.count
  }
  return lines
}
