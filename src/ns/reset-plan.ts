// Shared by the pool (main process) and the worker entry; no native code here.

/** Environment variable that carries a reusable worker's reset plan. */
export const RESET_ENV = 'VITEST_POOL_ROOTLESS_RESET'

/** What a reused worker restores between test files (see reset-hook.ts). */
export interface ResetPlan {
  tmpfs: string[]
  tmpfsSize?: string
  /** Paths bound back under the tmpfs targets; moved over to the fresh tmpfs. */
  keep: string[]
  /** The sandbox's /etc/hosts as the run wrote it. */
  hosts: string
}
