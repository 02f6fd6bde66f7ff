export { rootless, type RootlessPool, type RootlessPoolOptions, type RootlessPoolRunner } from './pool/index.js'
// Vitest 3 names pools by module: `pool: 'vitest-pool-rootless'` loads this default export
export { default } from './pool/v3.js'
export { forwardHostPort } from './forward-host-port.js'
export { RootlessOptionError, SandboxError, WorkerExitError } from './plan/errors.js'
export type { SandboxOptions } from './plan/options.js'
