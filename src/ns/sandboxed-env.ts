/**
 * The variable the engine sets to "1" in every sandboxed test process; read by
 * `vitest-pool-rootless/runtime` (src/runtime.cts, which spells it out itself: a
 * CommonJS entry loads nothing else; test/unit/runtime.test.ts keeps the two equal).
 */
export const SANDBOXED_ENV = 'VITEST_POOL_ROOTLESS_SANDBOXED'

/** The ports inside the sandbox that lead to the host, comma-separated (inside/network-notices.ts). */
export const FORWARDED_PORTS_ENV = 'VITEST_POOL_ROOTLESS_FORWARDED_PORTS'
