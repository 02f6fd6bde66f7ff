import { dirname } from 'node:path'
import type { PoolOptions } from 'vitest/node'
import { sandboxNeeds } from '../engine/needs.js'
import { vitestNodeModules } from './vitest-internals.js'

/**
 * Paths a Vitest worker reads from disk (see `sandboxNeeds`): both projects' roots, and
 * the install holding Vitest and its dependencies.
 */
export function workerPaths(options: PoolOptions): string[] {
  const roots = [options.project.config.root, options.project.vitest.config.root]
  return sandboxNeeds(roots, [vitestNodeModules(options.distPath), dirname(options.distPath)])
}
