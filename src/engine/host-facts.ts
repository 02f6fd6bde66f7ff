import { accessSync, constants, readFileSync } from 'node:fs'
import { userInfo } from 'node:os'
import { delimiter, join } from 'node:path'
import type { IdentityFacts, IdMapLine } from '../plan/idmap.js'
import { parseSubidFile, usedSubidRanges, type SubidEntry } from '../plan/subid.js'

/** Reads what the id-map decision needs from this machine. `root` prefixes /etc and /proc (tests). */
export function readHostFacts(env: NodeJS.ProcessEnv = process.env, root = ''): IdentityFacts {
  const uid = process.geteuid!()
  const gid = process.getegid!()
  let userName: string | undefined
  try {
    userName = userInfo().username
  } catch {
    // a uid without a passwd entry (common in containers): subuid matches by number only
  }
  const owner = { name: userName, id: uid }
  let subuid: SubidEntry[] = []
  let subgid: SubidEntry[] = []
  let subidProblem: string | undefined
  try {
    subuid = parseSubidFile(readOptional(`${root}/etc/subuid`), '/etc/subuid', owner)
    subgid = parseSubidFile(readOptional(`${root}/etc/subgid`), '/etc/subgid', owner)
  } catch (error) {
    // decided on only if subordinate ids are wanted: then it is the fallback's reason
    subidProblem = (error as Error).message.replace(/^vitest-pool-rootless: /, '')
  }
  return {
    uid,
    gid,
    userName,
    subuid,
    subgid,
    subidProblem,
    usedSubids: [...usedSubidRanges(readOptional(`${root}/etc/subuid`)), ...usedSubidRanges(readOptional(`${root}/etc/subgid`))],
    newuidmap: findExecutable('newuidmap', env),
    newgidmap: findExecutable('newgidmap', env),
    noNewPrivs: /^NoNewPrivs:\s*1$/m.test(readOptional(`${root}/proc/self/status`)),
    ownUidMap: parseIdMap(readOptional(`${root}/proc/self/uid_map`)),
    ownGidMap: parseIdMap(readOptional(`${root}/proc/self/gid_map`)),
  }
}

/** Parses /proc/PID/uid_map; undefined when unreadable (then nothing is assumed). */
export function parseIdMap(text: string): IdMapLine[] | undefined {
  const lines = text
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => l.trim().split(/\s+/).map(Number))
    .filter((f) => f.length === 3 && f.every(Number.isFinite))
    .map(([inside, outside, count]) => ({ inside: inside!, outside: outside!, count: count! }))
  return lines.length > 0 ? lines : undefined
}

/** First executable `name` on PATH. */
export function findExecutable(name: string, env: NodeJS.ProcessEnv = process.env): string | null {
  const dirs = [...(env.PATH ?? '').split(delimiter).filter(Boolean)]
  for (const dir of dirs) {
    const candidate = join(dir, name)
    try {
      accessSync(candidate, constants.X_OK)
      return candidate
    } catch {}
  }
  return null
}

/** A file's text, or '' if it can't be read (absent, or a /proc file another kernel lacks). */
export function readOptional(path: string): string {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return ''
  }
}
