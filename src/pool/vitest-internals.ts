// Every reliance of the pool on something Vitest does not document as public API lives
// here, and test/unit/vitest-internals.test.ts checks each against the installed Vitest.
// Mirrors Vitest 4.1 and 5.x (packages/vitest/src/node/pools/workers/forksWorker.ts).
import { existsSync } from 'node:fs'
import { dirname, resolve } from 'node:path'

/** Loose view of a project config: only the fields read here. */
interface ConfigView {
  experimental?: { viteModuleRunner?: boolean }
}

/**
 * Vitest's own child-process worker entry, the one its `forks` pool forks:
 * `<distPath>/workers/forks.js`. `PoolOptions.distPath` is public; the file name is not.
 */
export function forksWorkerEntry(distPath: string): string {
  return resolve(distPath, 'workers/forks.js')
}

/** True when the entry exists where this module expects it (checked before the first start). */
export function hasForksWorkerEntry(distPath: string): boolean {
  return existsSync(forksWorkerEntry(distPath))
}

/**
 * The `node_modules` directory holding Vitest's package: `distPath` is
 * `<node_modules>/vitest/dist`. Its dependencies sit beside it when hoisted.
 */
export function vitestNodeModules(distPath: string): string {
  return dirname(dirname(distPath))
}

/**
 * `experimental.viteModuleRunner: false` (Vitest 4.1+): setup files are imported from
 * disk by Node instead of going through Vite. Not in the public config type of 4.1.
 */
export function usesNativeModuleRunner(config: unknown): boolean {
  return (config as ConfigView | undefined)?.experimental?.viteModuleRunner === false
}
