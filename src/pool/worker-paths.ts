import { dirname } from 'node:path'
import type { PoolOptions } from 'vitest/node'
import { realpathOrSelf } from '../ns/paths.js'
import { vitestNodeModules } from './vitest-internals.js'

/**
 * Paths a Vitest worker reads from disk: the engine keeps those that lie under a tmpfs
 * target visible inside the sandbox (the project, node_modules holding Vitest, the node
 * binary, the cwd).
 */
export function workerPaths(options: PoolOptions): string[] {
  return [
    options.project.config.root,
    options.project.vitest.config.root,
    vitestNodeModules(options.distPath),
    realpathOrSelf(dirname(process.execPath)),
    realpathOrSelf(process.cwd()),
  ]
}
