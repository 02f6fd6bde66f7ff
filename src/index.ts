export { RootlessOptionError, SandboxError } from './ns/errors.js'
export type { SandboxOptions } from './ns/options.js'
