// Shared by the engine (host side) and the reset inside the sandbox; no native code here.

/** Environment variable that carries a reusable worker's reset plan. */
export const RESET_ENV = 'VITEST_POOL_ROOTLESS_RESET'

/** What a reused worker restores between test files (see inside/reset.ts); from `createResetPlan`. */
export interface ResetPlan {
  /** The Node-API addon that resets in process (native/addon.c), kept visible inside the sandbox. */
  addon: string
  /** `--reset` and what to rebuild: the writable layers as the launcher builds them, processes, network. */
  args: string[]
  /** The sandbox's /etc/hosts as the run wrote it. */
  hosts: string
}
