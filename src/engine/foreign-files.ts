import { lstatSync, readdirSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import type { IdMapLine } from '../plan/idmap.js'

/** A path a test gave to an id only the sandbox maps. */
export interface ForeignOwned {
  path: string
  uid: number
  gid: number
}

/** Directories never looked into: installs and version control, large and not the tests' to chown. */
const SKIPPED = new Set(['node_modules', '.git', '.hg', '.svn'])

/** At most this many entries are looked at per project: a report must not cost a run's time. */
const MAX_ENTRIES = 200_000

/**
 * The host ids a sandbox maps besides the caller's own: what `chown 1000` inside turns
 * into outside (one of the caller's subordinate ids), which the caller can neither
 * chown back nor, for a directory, empty.
 */
export function foreignIds(map: readonly IdMapLine[], own: number): Array<[start: number, count: number]> {
  return map.filter((line) => !(line.count === 1 && line.outside === own)).map((line) => [line.outside, line.count])
}

/** How far a look outside the projects goes: cheap enough to do at the end of every run. */
export const OUTSIDE_LIMITS = { maxDepth: 3, maxEntries: 20_000 }

/** Bounds of a walk; a project's is the whole tree up to MAX_ENTRIES. */
export interface WalkLimits {
  /** Levels below each root looked at (1: the root's own entries). */
  maxDepth?: number
  /** Entries looked at in all. */
  maxEntries?: number
  /** Only paths whose status changed since then (ms; a chown changes it): this run's. */
  changedSince?: number
  /** Directories not looked into (the projects, walked on their own). */
  skip?: readonly string[]
}

/**
 * Files and directories under `roots` (a test run's projects) owned by a user or group
 * in `uids`/`gids`: left behind by tests that chowned outside the sandbox's tmpfs. The
 * top-most only: what is inside a foreign directory goes with it. Symlinks are judged
 * themselves, never followed.
 */
export function findForeignOwned(roots: readonly string[], uids: ReadonlyArray<[number, number]>, gids: ReadonlyArray<[number, number]>, limits: WalkLimits = {}): ForeignOwned[] {
  const within = (id: number, ranges: ReadonlyArray<[number, number]>) => ranges.some(([start, count]) => id >= start && id < start + count)
  const { maxDepth = Infinity, maxEntries = MAX_ENTRIES, changedSince = -Infinity } = limits
  const skip = new Set(limits.skip)
  const found: ForeignOwned[] = []
  let seen = 0
  const visit = (dir: string, depth: number) => {
    let entries
    try {
      entries = readdirSync(dir, { withFileTypes: true })
    } catch {
      return
    }
    for (const entry of entries) {
      if (++seen > maxEntries) return
      const path = join(dir, entry.name)
      if (skip.has(path)) continue
      let stat
      try {
        stat = lstatSync(path)
      } catch {
        continue
      }
      // a foreign path from before the run is not this run's to name, nor to look into
      if (within(stat.uid, uids) || within(stat.gid, gids)) {
        if (stat.ctimeMs >= changedSince) found.push({ path, uid: stat.uid, gid: stat.gid })
      } else if (entry.isDirectory() && !SKIPPED.has(entry.name) && depth < maxDepth) visit(path, depth + 1)
    }
  }
  for (const root of new Set(roots)) visit(root, 1)
  return found
}

/**
 * The host's directories outside the projects where a test's file outlives its sandbox
 * (/tmp and the temp dir are private, these are not): the user's home, /var/tmp and
 * /dev/shm. A home that isn't the user's own (none, or `/`) is left out.
 */
export function outsideRoots(home = homedir(), uid = process.geteuid?.() ?? 0): string[] {
  const directory = (path: string) => {
    try {
      const stat = lstatSync(path)
      return stat.isDirectory() ? stat : undefined
    } catch {
      return undefined
    }
  }
  return [...(home !== '/' && directory(home)?.uid === uid ? [home] : []), ...['/var/tmp', '/dev/shm'].filter((path) => directory(path))]
}

/** The one block that names what tests left and the command that gives it back. */
export function foreignOwnedReport(found: readonly ForeignOwned[], where = 'in the project'): string {
  const quote = (path: string) => (/^[\w@%+=:,./-]+$/.test(path) ? path : `'${path.replace(/'/g, `'\\''`)}'`)
  const shown = found.slice(0, 10).map((f) => `  ${f.path} (uid ${f.uid}, gid ${f.gid})`)
  if (found.length > 10) shown.push(`  … and ${found.length - 10} more`)
  const paths = found.map((f) => quote(f.path)).join(' ')
  return (
    `vitest-pool-rootless: tests left ${found.length === 1 ? '1 path' : `${found.length} paths`} ${where} owned by ids only the sandbox maps; your user can't change or remove ${found.length === 1 ? 'it' : 'them'}:\n` +
    `${shown.join('\n')}\n` +
    `Give ${found.length === 1 ? 'it' : 'them'} back to yourself (uid 0 in the sandbox is you):\n` +
    `  npx vitest-pool-rootless exec --no-tmpfs -- chown -R 0:0 ${paths}\n` +
    `or remove ${found.length === 1 ? 'it' : 'them'}:\n` +
    `  npx vitest-pool-rootless exec --no-tmpfs -- rm -rf ${paths}\n`
  )
}
