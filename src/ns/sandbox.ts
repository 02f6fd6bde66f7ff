import { readFileSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { dir as tmpDir } from 'tmp-promise'
import { renderHostsFile } from './hosts.js'
import { readHostFacts } from './host-facts.js'
import { createIdMapPlan, type IdentityFacts, type IdMapPlan } from './idmap.js'
import { locateLauncher } from './launcher-path.js'
import type { ResolvedSandboxOptions } from './options.js'
import { createSandboxPlan, type PlanInputs } from './plan.js'

/** A sandbox ready to start: the launcher and its flags, plus the state to clean up. */
export interface PreparedSandbox {
  launcher: string
  idMap: IdMapPlan
  /** Directory holding this run's generated files (the hosts file). */
  stateDir: string
  hostsFile: string
  /** Launcher flags for one sandbox; append `--` and the command. */
  args(extra?: Omit<PlanInputs, 'options' | 'idMap' | 'hostsFile'>): string[]
  /** Removes the state directory. Idempotent. */
  cleanup(): Promise<void>
}

/**
 * Does the per-run work once: locate the launcher, decide the id maps, write the
 * hosts file into a private state directory. Each sandbox then only needs `args()`.
 */
export async function prepareSandbox(
  options: ResolvedSandboxOptions,
  facts: IdentityFacts = readHostFacts(),
): Promise<PreparedSandbox> {
  const launcher = locateLauncher()
  const idMap = createIdMapPlan(facts, options.subids)
  const state = await tmpDir({ prefix: 'vitest-pool-rootless-', unsafeCleanup: true })
  const hostsFile = join(state.path, 'hosts')
  const base = options.hostsFile ? readFileSync(options.hostsFile, 'utf8') : undefined
  await writeFile(hostsFile, renderHostsFile(options.hosts, { hostname: options.hostname, base }), { mode: 0o644 })
  let cleaned = false
  return {
    launcher,
    idMap,
    stateDir: state.path,
    hostsFile,
    args: (extra = {}) => createSandboxPlan({ options, idMap, hostsFile, ...extra }).args,
    async cleanup() {
      if (cleaned) return
      cleaned = true
      await state.cleanup()
    },
  }
}
