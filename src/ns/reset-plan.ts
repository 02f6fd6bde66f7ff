// Shared by the pool (main process) and the worker entry; no native code here.
import type { MountPlan } from './plan.js'

/** Environment variable that carries a reusable worker's reset plan. */
export const RESET_ENV = 'VITEST_POOL_ROOTLESS_RESET'

/** What a reused worker restores between test files (see reset-hook.ts); from `createResetPlan`. */
export interface ResetPlan {
  /** Each tmpfs with the paths bound back onto it; those are moved over to the fresh tmpfs. */
  mounts: MountPlan[]
  tmpfsSize?: string
  /** The sandbox's /etc/hosts as the run wrote it. */
  hosts: string
}
