import { definePoolSuite } from '../support/pool-suite.js'

// Vitest 3.2 takes `pool: rootless()` as a module path, on Node 20 (see src/pool/v3.ts)
definePoolSuite(3)
