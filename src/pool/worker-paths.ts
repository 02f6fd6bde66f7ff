import { existsSync, readFileSync } from 'node:fs'
import { basename, dirname, join, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { PoolOptions } from 'vitest/node'
import { realpathOrSelf } from '../ns/paths.js'
import { vitestNodeModules } from './vitest-internals.js'

/** This package's own directory (dist/pool/ is two levels down): the worker loads dist/inside from it. */
const OWN_PACKAGE = fileURLToPath(new URL('../..', import.meta.url))

/**
 * Paths a Vitest worker reads from disk: the engine keeps those that lie under a tmpfs
 * target visible inside the sandbox -- the projects, the node binary, the cwd, and every
 * place Node resolves the worker's modules from:
 *
 * - the install that holds Vitest and this package. With npm and yarn that is the
 *   `node_modules` holding them; with pnpm they are symlinks into
 *   `node_modules/.pnpm/<name>@<version>/node_modules/`, whose dependencies are symlinks
 *   into sibling `.pnpm/*` directories, so the whole `node_modules` that holds `.pnpm`;
 * - the workspace root of a monorepo (npm/yarn `workspaces`, pnpm-workspace.yaml,
 *   lerna.json): hoisted packages and sibling workspace packages a test imports live
 *   outside the project that runs.
 */
export function workerPaths(options: PoolOptions): string[] {
  const roots = [options.project.config.root, options.project.vitest.config.root]
  const paths = [
    ...roots,
    vitestNodeModules(options.distPath),
    installRoot(realpathOrSelf(dirname(options.distPath))),
    realpathOrSelf(OWN_PACKAGE),
    installRoot(realpathOrSelf(OWN_PACKAGE)),
    ...roots.map(workspaceRoot),
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
