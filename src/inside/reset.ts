import { spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import type { ResetPlan } from '../ns/reset-plan.js'
import { launcherStep } from '../ns/steps.js'

/** What the worker looked like when its first file started. */
export interface FirstFileState {
  hostname: string
  cwd: string
  /**
   * The launcher binary, opened when the first file started: a test may have stacked a
   * mount over the directory it lives in (under the temp dir, say), which only the
   * reset itself removes.
   */
  launcherFd: number
}

/**
 * Gives a reused worker the sandbox a new one would get: each tmpfs replaced by an
 * empty one with the kept paths bound again, /etc/hosts and the hostname restored.
 *
 * The mounts are the launcher's work (`--reset`), run as a child: it shares the
 * worker's mount and UTS namespaces and is their root, so what it mounts is what the
 * worker sees -- no syscalls from this multithreaded process, no native addon. It
 * rebuilds the writable layers the same way the launcher built them, over the locked
 * read-only floors, whatever a test stacked on them or took away.
 */
export function resetSandbox(plan: ResetPlan, first: FirstFileState): void {
  // read before the unmount: once the old tmpfs is detached, a cwd under it has no path
  let cwd: string
  try {
    cwd = process.cwd()
  } catch {
    cwd = first.cwd
  }
  // run from the open fd: fd 3 in the child, exec'd through its own /proc/self/fd/3
  const result = spawnSync('/proc/self/fd/3', [...plan.args, '--hostname', first.hostname], {
    argv0: plan.launcher,
    cwd: '/',
    encoding: 'utf8',
    stdio: ['ignore', 'ignore', 'pipe', first.launcherFd],
  })
  if (result.status !== 0) {
    const step = launcherStep(result.status) ?? (result.signal ? `signal ${result.signal}` : `exit ${result.status}`)
    const why = `${result.stderr ?? ''}`.trim() || result.error?.message || step
    throw new Error(`vitest-pool-rootless: can't reset the sandbox between test files (${step}): ${why}. Run with isolate: true to get a fresh sandbox per file instead.`)
  }
  writeFileSync('/etc/hosts', plan.hosts)
  // the old cwd may have been on the detached tmpfs: resolve it again in the new tree,
  // or go back to where the first file started if a test left it somewhere now gone
  try {
    process.chdir(cwd)
  } catch {
    process.chdir(first.cwd)
  }
}
