// Every reliance of the pool on something Vitest does not document as public API lives
// here, and test/unit/vitest-internals.test.ts checks each against the installed Vitest.
// Mirrors Vitest 4.1 and 5.x (packages/vitest/src/node/pools/workers/forksWorker.ts).
import { existsSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
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

/**
 * The major version of the Vitest this package resolves as its peer -- the one that loads
 * the config (npm and Yarn hoist it beside this package, pnpm links it in as a peer).
 * Undefined when none is found. Vitest 3 takes pools differently from 4 and 5.
 */
export function installedVitestMajor(from: string = import.meta.url): number | undefined {
  try {
    const manifest = createRequire(from).resolve('vitest/package.json')
    return Number((JSON.parse(readFileSync(manifest, 'utf8')) as { version: string }).version.split('.')[0])
  } catch {
    return undefined
  }
}
