import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { dir as tmpDir } from 'tmp-promise'
import { renderHostsFile } from './hosts.js'
import { readHostFacts } from './host-facts.js'
import { createIdMapPlan, type IdentityFacts, type IdMapPlan } from './idmap.js'
import { locateLauncher } from './launcher-path.js'
import type { ResolvedSandboxOptions } from './options.js'
import { createSandboxPlan, type PlanInputs } from './plan.js'

const STATE_PREFIX = 'vitest-pool-rootless-'

/**
 * State dirs whose run was SIGKILLed (no exit handler ran) are removed by the next
 * run: the owner pid is in the name, and only dead owners' dirs of ours go.
 */
function removeStaleStateDirs(): void {
  const dir = tmpdir()
  let entries: string[] = []
  try {
    entries = readdirSync(dir)
  } catch {
    return
  }
  for (const entry of entries) {
    const pid = Number(new RegExp(`^${STATE_PREFIX}(\\d+)-`).exec(entry)?.[1])
    if (!pid || pid === process.pid || isAlive(pid)) continue
    const path = join(dir, entry)
    try {
      if (statSync(path).uid !== process.geteuid!()) continue
      rmSync(path, { recursive: true, force: true })
    } catch {}
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

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
  removeStaleStateDirs()
  const state = await tmpDir({ prefix: `${STATE_PREFIX}${process.pid}-`, unsafeCleanup: true })
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
