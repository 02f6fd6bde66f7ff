export { rootless, type RootlessPool, type RootlessPoolOptions } from './pool/index.js'
export { RootlessOptionError, SandboxError, WorkerExitError } from './ns/errors.js'
export type { SandboxOptions } from './ns/options.js'
