import { openSync } from 'node:fs'
import { hostname } from 'node:os'
import { RESET_ENV, type ResetPlan } from '../ns/reset-plan.js'
import { resetSandbox, type FirstFileState } from './reset.js'

// Module state survives between files: a reused worker keeps this module loaded.
let plan: ResetPlan | undefined
let first: FirstFileState | undefined

/**
 * Runs inside the worker before each test file (the pool prepends a setup file that
 * calls it). The first file finds the fresh sandbox the launcher built; every later
 * file on the same worker gets it rebuilt in place.
 */
export function resetBeforeFile(): void {
  if (!plan || !first) {
    const raw = process.env[RESET_ENV]
    if (!raw) throw new Error(`vitest-pool-rootless: ${RESET_ENV} is not set in this worker; the sandbox can't be reset between files`)
    plan = JSON.parse(raw) as ResetPlan
    // the tests see the environment Vitest meant them to see
    delete process.env[RESET_ENV]
    first = { hostname: hostname(), cwd: process.cwd(), launcherFd: openSync(plan.launcher, 'r') }
    return
  }
  resetSandbox(plan, first)
}
