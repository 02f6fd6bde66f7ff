/** One `name:start:count` line of /etc/subuid or /etc/subgid. */
export interface SubidEntry {
  /** User name or numeric uid, as written in the file. */
  owner: string
  start: number
  count: number
  /** 1-based line number, for messages. */
  line: number
}

/** A contiguous range of ids. */
export interface IdRange {
  start: number
  count: number
}

const MAX_ID = 4294967295 // 2^32 - 1, the kernel's invalid id; ranges end below it

/** Thrown for a subid file the kernel helpers would refuse; names the file and line. */
export class SubidFileError extends Error {
  override readonly name = 'SubidFileError'
  readonly file: string
  readonly line: number
  constructor(file: string, line: number, message: string) {
    super(`vitest-pool-rootless: ${file}:${line}: ${message}`)
    this.file = file
    this.line = line
  }
}

/**
 * Parses the text of /etc/subuid or /etc/subgid (subuid(5)): `owner:start:count` per
 * line, `#` comments and blank lines ignored. Malformed lines throw, naming the line,
 * because newuidmap would silently skip them and the user would never learn why.
 * With `only`, lines of other owners are skipped unread.
 */
export function parseSubidFile(text: string, file = '/etc/subuid', only?: { name?: string; id: number }): SubidEntry[] {
  const entries: SubidEntry[] = []
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) return
    const parts = line.split(':')
    // another user's broken line is not this user's problem
    if (only && parts[0] !== String(only.id) && parts[0] !== only.name) return
    const [owner, start, count] = parts
    if (parts.length !== 3 || !owner || !isDecimal(start) || !isDecimal(count)) {
      throw new SubidFileError(file, index + 1, `expected "name:start:count", got ${JSON.stringify(line)}`)
    }
    const entry = { owner, start: Number(start), count: Number(count), line: index + 1 }
    if (entry.count === 0 || entry.start + entry.count > MAX_ID) {
      throw new SubidFileError(file, index + 1, `range ${entry.start}:${entry.count} is empty or ends past ${MAX_ID}`)
    }
    entries.push(entry)
  })
  return entries
}

/**
 * The ranges that belong to a user, matched by name or numeric id as newuidmap does,
 * sorted and with exact duplicates removed. A range that contains the user's own id
 * is an error (newuidmap refuses it), as are ranges that overlap each other.
 */
export function findSubidRanges(entries: SubidEntry[], user: { name?: string; id: number }, file = '/etc/subuid'): IdRange[] {
  const mine = entries.filter((e) => e.owner === String(user.id) || (user.name !== undefined && e.owner === user.name))
  const seen = new Set<string>()
  const unique = mine.filter((e) => {
    const key = `${e.start}:${e.count}`
    if (seen.has(key)) return false
    seen.add(key)
    return true
  })
  unique.sort((a, b) => a.start - b.start)
  for (const [i, e] of unique.entries()) {
    if (user.id >= e.start && user.id < e.start + e.count) {
      throw new SubidFileError(file, e.line, `range ${e.start}:${e.count} contains ${user.name ?? 'the user'}'s own id ${user.id}; newuidmap refuses it. Move the range past it (e.g. ${e.owner}:100000:65536)`)
    }
    const prev = unique[i - 1]
    if (prev && e.start < prev.start + prev.count) {
      throw new SubidFileError(file, e.line, `range ${e.start}:${e.count} overlaps ${prev.start}:${prev.count} (line ${prev.line}); remove one of them`)
    }
  }
  return unique.map(({ start, count }) => ({ start, count }))
}

function isDecimal(value: string | undefined): value is string {
  return value !== undefined && /^\d{1,10}$/.test(value)
}

/**
 * Every `owner:start:count` range in a subid file's text, whoever owns it; lines that
 * don't parse are skipped (this only steers the choice of a free range).
 */
export function usedSubidRanges(text: string): IdRange[] {
  const used: IdRange[] = []
  for (const raw of text.split('\n')) {
    const match = /^\s*[^:#\s][^:]*:(\d+):(\d+)\s*$/.exec(raw)
    if (match) used.push({ start: Number(match[1]), count: Number(match[2]) })
  }
  return used
}

/**
 * The first block of `count` ids from 100000 up, on a multiple of 65536 as useradd
 * picks them, that overlaps no range in `used`: what to propose to a user with none.
 */
export function freeSubidRange(used: readonly IdRange[], count = 65536): IdRange {
  for (let start = 100000; start + count <= MAX_ID; start += 65536) {
    if (used.every((r) => r.start + r.count <= start || r.start >= start + count)) return { start, count }
  }
  return { start: 100000, count }
}

/** The command and the subid line that give `who` the range `free` in both files. */
export function addSubidsAdvice(who: string, free: IdRange): { command: string; line: string } {
  const last = free.start + free.count - 1
  return {
    command: `sudo usermod --add-subuids ${free.start}-${last} --add-subgids ${free.start}-${last} ${who}`,
    line: `${who}:${free.start}:${free.count}`,
  }
}
