import { existsSync, mkdirSync, readdirSync, rmdirSync } from 'node:fs'
import { homedir } from 'node:os'
import { isAbsolute, join, resolve } from 'node:path'
import { RootlessOptionError } from '../plan/errors.js'
import { isInside, realpathOrSelf } from '../plan/paths.js'

/** The launcher's limit of `--writable`s (MAX_LIST in native/sandbox.h), less /dev and /proc. */
const MAX_WRITABLE_PATHS = 62

/**
 * The writable paths of a read-only host (`writable`), for one project: the entries made
 * absolute (relative ones against `projectRoot`, `~` the home directory), then the paths
 * the runner writes from the worker (`runnerPaths`: snapshot directories, caches). Each
 * is made when missing, so a test can write where it was told it may (`created` collects
 * the directories made, for `removeIfEmpty` when the run ends), and resolved as mount(2)
 * sees it; one inside another is covered by it and dropped.
 */
export function writablePaths(entries: readonly string[], projectRoot: string, runnerPaths: readonly string[], created: Set<string>): string[] {
  const absolute = [...entries.map((entry) => (entry === '~' || entry.startsWith('~/') ? join(homedir(), entry.slice(1)) : isAbsolute(entry) ? entry : resolve(projectRoot, entry))), ...runnerPaths]
  const real = [...new Set(absolute.map((path) => realpathOrSelf(makeDir(path, created))))].sort()
  const outermost = real.filter((path) => !real.some((other) => isInside(path, other)))
  if (outermost.length > MAX_WRITABLE_PATHS) {
    throw new RootlessOptionError('writable', entries, `expects at most ${MAX_WRITABLE_PATHS} paths to keep writable with the runner's own (snapshot directories: ${outermost.length} in all here); list a directory that holds them`)
  }
  return outermost
}

/** `path`, made with its missing parents; each directory made is noted in `created`. */
function makeDir(path: string, created: Set<string>): string {
  if (existsSync(path)) return path
  let first = path
  while (!existsSync(resolve(first, '..'))) first = resolve(first, '..')
  mkdirSync(path, { recursive: true })
  for (let dir = path; ; dir = resolve(dir, '..')) {
    created.add(dir)
    if (dir === first) break
  }
  return path
}

/** Removes the directories `writablePaths` made that nothing was written to, deepest first. */
export function removeIfEmpty(created: Set<string>): void {
  for (const dir of [...created].sort((a, b) => b.length - a.length)) {
    try {
      if (readdirSync(dir).length === 0) rmdirSync(dir)
    } catch {}
  }
  created.clear()
}
