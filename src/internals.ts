// Not a public entry point (the package's exports don't name it): what this repo's
// benchmark imports from the built package by path, now that dist/ is bundled
// (scripts/bundle-dist.mjs) and tsc's modules are gone from it.
export { installedEgressHelpers } from './engine/egress.js'
export { holdUserNamespace } from './engine/holder.js'
export { findExecutable, readHostFacts } from './engine/host-facts.js'
export { locateLauncher } from './engine/launcher-path.js'
export { egressArg } from './plan/egress.js'
export { createIdMapPlan } from './plan/idmap.js'
export { idMapArgs } from './plan/plan.js'
