import { dirname } from 'node:path'
import { sandboxNeeds } from '../engine/needs.js'
import { vitestNodeModules } from './vitest-internals.js'

/**
 * Paths a Vitest worker reads from disk (see `sandboxNeeds`): both projects' roots, and
 * the install holding Vitest and its dependencies.
 */
export function workerPaths(projectRoot: string, vitestRoot: string, distPath: string): string[] {
  return sandboxNeeds([projectRoot, vitestRoot], [vitestNodeModules(distPath), dirname(distPath)])
}
