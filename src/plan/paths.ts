import { realpathSync } from 'node:fs'

/** Whether `path` lies below `dir` (not `dir` itself). Both absolute and normalized. */
export function isInside(path: string, dir: string): boolean {
  const base = dir.endsWith('/') ? dir : `${dir}/`
  return path.startsWith(base) && path.length > base.length
}

/** Symlinks resolved, as mount(2) sees the path; the path itself if it can't be. */
export function realpathOrSelf(path: string): string {
  try {
    return realpathSync(path)
  } catch {
    return path
  }
}
