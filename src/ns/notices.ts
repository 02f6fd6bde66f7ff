/**
 * The text that marks a notice a sandboxed process prints about the sandbox itself (not
 * about the test): every process may say it, the runner shows it once per run
 * (engine/output.ts), so a suite of 500 files looking up one unknown name gets one
 * notice, not 500.
 */
export const ONCE_PER_RUN_MARK = "can't be resolved in the sandbox (ENOTFOUND)"
