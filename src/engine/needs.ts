import { existsSync, readFileSync } from 'node:fs'
import { basename, dirname, join, sep } from 'node:path'
import { realpathOrSelf } from '../plan/paths.js'
import { PACKAGE_ROOT } from './launcher-path.js'

/** This package's own directory (dist/engine/ is two levels down): sandboxed entries load from it. */

/**
 * Paths any sandboxed test process reads from disk, whichever runner starts it: the
 * projects and the workspaces they belong to, the installs that hold the runner's
 * packages and this one, the node binary and the cwd. The engine keeps those that lie
 * under a tmpfs target visible inside the sandbox.
 *
 * For each package directory, the install that holds it: with npm and yarn the
 * `node_modules` it sits in; with pnpm the packages are symlinks into
 * `node_modules/.pnpm/<name>@<version>/node_modules/`, whose dependencies are symlinks
 * into sibling `.pnpm/*` directories, so the whole `node_modules` that holds `.pnpm`.
 * For each project, the workspace root of its monorepo (npm/yarn `workspaces`,
 * pnpm-workspace.yaml, lerna.json): hoisted packages, Yarn's `.pnp.cjs` and sibling
 * workspace packages a test imports live outside the project that runs.
 */
export function sandboxNeeds(projects: readonly string[], packageDirs: readonly string[]): string[] {
  const packages = [...packageDirs, PACKAGE_ROOT].map(realpathOrSelf)
  const paths = [
    ...projects,
    ...packages,
    ...packages.map(installRoot),
    ...projects.map(workspaceRoot),
    realpathOrSelf(dirname(process.execPath)),
    realpathOrSelf(process.cwd()),
  ]
  return [...new Set(paths.filter((p): p is string => p !== undefined))]
}

/**
 * The `node_modules` directory a package was installed into: the nearest ancestor named
 * `node_modules` that is not inside pnpm's virtual store (`node_modules/.pnpm/...`), so
 * for pnpm the one holding `.pnpm`. Undefined for a package outside any `node_modules`.
 */
export function installRoot(packageDir: string): string | undefined {
  const parts = packageDir.split(sep)
  const store = parts.indexOf('.pnpm')
  // the first `node_modules` above a `.pnpm` is the store's own; otherwise the nearest
  const end = store > 0 && parts[store - 1] === 'node_modules' ? store : parts.lastIndexOf('node_modules') + 1
  return end > 0 ? parts.slice(0, end).join(sep) || sep : undefined
}

/**
 * The root of the workspace (monorepo) `dir` belongs to, found the way Vite finds it for
 * `server.fs.allow`: the nearest ancestor with pnpm-workspace.yaml, lerna.json or a
 * package.json with `workspaces`. Undefined when `dir` is not in a workspace.
 */
export function workspaceRoot(dir: string): string | undefined {
  for (let current = realpathOrSelf(dir); ; current = dirname(current)) {
    if (isWorkspaceRoot(current)) return current
    if (dirname(current) === current || basename(current) === 'node_modules') return undefined
  }
}

function isWorkspaceRoot(dir: string): boolean {
  if (existsSync(join(dir, 'pnpm-workspace.yaml')) || existsSync(join(dir, 'lerna.json'))) return true
  try {
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { workspaces?: unknown }
    return pkg.workspaces !== undefined && pkg.workspaces !== null
  } catch {
    return false
  }
}
