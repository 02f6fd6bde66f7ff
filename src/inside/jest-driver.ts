// The Jest runner's half inside the sandbox: runs each test file with jest-runner's own
// worker (build/testWorker.js, what Jest's default runner runs in its child processes),
// so environments, transforms, snapshots, coverage and test events all behave as Jest's.
import { createRequire } from 'node:module'
import type { InsideDriver } from './worker-loop.js'

/** `setup`'s data (src/jest/driver.ts). */
export interface JestSetup {
  /** jest-runner's worker module (build/testWorker.js), as the host resolved it. */
  testWorker: string
  /** Its `setup()` argument: each project's config and serialized module map. */
  setupData: unknown
  /** Modules to load ahead of the first test file (environments, transformers). */
  preload: string[]
}

interface TestWorkerModule {
  setup(data: unknown): void | Promise<void>
  worker(data: unknown): Promise<unknown>
}

const require = createRequire(import.meta.url)
let testWorker: TestWorkerModule | undefined

export const driver: InsideDriver = {
  async setup(data) {
    const { testWorker: path, setupData, preload } = data as JestSetup
    testWorker = require(path) as TestWorkerModule
    await testWorker.setup(setupData)
    // Jest would load these for the first file anyway; a new worker does it while it waits
    for (const module of preload) {
      try {
        require(module)
      } catch {}
    }
  },
  // the job is `worker()`'s argument: `{ config, globalConfig, path, context }`
  run(job, { slot }) {
    process.env.JEST_WORKER_ID = String(slot)
    return testWorker!.worker(job)
  },
}
