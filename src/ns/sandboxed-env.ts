/**
 * The variable the engine sets to "1" in every sandboxed test process; read by
 * `vitest-pool-rootless/runtime` (src/runtime.cts, which spells it out itself: a
 * CommonJS entry loads nothing else; test/unit/runtime.test.ts keeps the two equal).
 */
export const SANDBOXED_ENV = 'VITEST_POOL_ROOTLESS_SANDBOXED'
