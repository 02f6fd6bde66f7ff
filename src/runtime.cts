// `vitest-pool-rootless/runtime`: what a test can ask about where it runs. CommonJS, so
// Jest's require() and ES module imports (`import { sandboxed } from …`) both take it.

/** Set to "1" by the engine in every sandboxed test process (src/wire/wire.ts). */
const SANDBOXED_ENV = 'VITEST_POOL_ROOTLESS_SANDBOXED'

/**
 * True in a test file that runs in a vitest-pool-rootless sandbox (`rootless()` or the
 * Jest runner); false where the run fell back to running unsandboxed
 * (`fallback: 'unsandboxed'`), and anywhere else. For tests that need what only the
 * sandbox gives (root, another uid, port 80):
 *
 * ```ts
 * test.runIf(sandboxed)('chowns to 1000', () => { … })  // Vitest
 * ;(sandboxed ? test : test.skip)('chowns to 1000', () => { … })  // Jest
 * ```
 */
export const sandboxed: boolean = process.env[SANDBOXED_ENV] === '1'
