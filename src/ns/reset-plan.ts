// Shared by the engine (host side) and the reset inside the sandbox; no native code here.

/** Environment variable that carries a reusable worker's reset plan. */
export const RESET_ENV = 'VITEST_POOL_ROOTLESS_RESET'

/** What a reused worker restores between test files (see inside/reset.ts); from `createResetPlan`. */
export interface ResetPlan {
  /** The launcher binary, kept visible inside the sandbox. */
  launcher: string
  /** `--reset` and the writable layers to rebuild, as the launcher builds them. */
  args: string[]
  /** The sandbox's /etc/hosts as the run wrote it. */
  hosts: string
}
