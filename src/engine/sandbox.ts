import { spawn } from 'node:child_process'
import { readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import { dirSync as tmpDirSync, setGracefulCleanup } from 'tmp-promise'
import { renderHostsFile, renderNsswitch } from '../plan/hosts.js'
import { readHostFacts } from './host-facts.js'
import { createIdMapPlan, type IdentityFacts, type IdMapPlan } from '../plan/idmap.js'
import { locateAddon, locateLauncher } from './launcher-path.js'
import type { ResolvedSandboxOptions } from '../plan/options.js'
import { createSandboxPlan, launcherArgs, type PlanInputs, type SandboxPlan } from '../plan/plan.js'
import { renderEgressResolvConf, type EgressHelper } from '../plan/egress.js'
import { findEgressHelper } from './egress.js'

const STATE_PREFIX = 'vitest-pool-rootless-'

// a state directory goes when the process exits, however it exits short of SIGKILL
setGracefulCleanup()

/**
 * State dirs whose run was SIGKILLed (no exit handler ran) are removed by the next
 * run: the owner's pid and pid namespace are in the name, and only dirs of ours whose
 * owner is provably dead go -- a pid says nothing across pid namespaces (containers
 * sharing /tmp), so dirs from another namespace are left alone.
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
    const match = new RegExp(`^${STATE_PREFIX}(\\d+)-(\\d+)-`).exec(entry)
    const pid = Number(match?.[1])
    if (!pid || match?.[2] !== pidNamespace() || pid === process.pid || isAlive(pid)) continue
    const path = join(dir, entry)
    try {
      if (statSync(path).uid !== process.geteuid!()) continue
      rmSync(path, { recursive: true, force: true })
    } catch {}
  }
}

/** The inode of this process's pid namespace, e.g. 4026531836. */
function pidNamespace(): string {
  try {
    return /\[(\d+)\]/.exec(readlinkSync('/proc/self/ns/pid'))?.[1] ?? '0'
  } catch {
    return '0'
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

/** sockaddr_un's sun_path: a Unix socket's path and its NUL. */
const UNIX_PATH_MAX = 108

/** A sandbox ready to start: the launcher and its flags, plus the state to clean up. */
export interface PreparedSandbox {
  launcher: string
  /** The addon a reused worker resets its sandbox with. */
  addon: string
  idMap: IdMapPlan
  /** Directory holding this run's generated files (the hosts file). */
  stateDir: string
  /**
   * Where the warm holder hands out network namespaces made ahead (a socket in the
   * private state dir); undefined with the host's network, or where the path is too
   * long for a Unix socket (each sandbox then makes its own).
   */
  networksSocket?: string
  hostsFile: string
  /** With `network: 'egress'`: the user-mode network stack the sandboxes go out through. */
  egress?: EgressHelper
  /** What was written to `hostsFile`. */
  hosts: string
  /** The plan of one sandbox: what the launcher will do, in order. */
  plan(extra?: Omit<PlanInputs, 'options' | 'idMap' | 'hostsFile' | 'nsswitchFile' | 'egress' | 'resolvFile'>): SandboxPlan
  /** Launcher flags for one sandbox (`launcherArgs(plan(extra))`); append `--` and the command. */
  args(extra?: Omit<PlanInputs, 'options' | 'idMap' | 'hostsFile' | 'nsswitchFile' | 'egress' | 'resolvFile'>): string[]
  /** Removes the state directory. Idempotent. */
  cleanup(): void
}

/**
 * Does the per-run work once: locate the launcher, decide the id maps, write the
 * hosts file into a private state directory. Each sandbox then only needs `args()`.
 * Synchronous, so a pool can prove the sandbox works while its config loads.
 */
export function prepareSandbox(options: ResolvedSandboxOptions, facts: IdentityFacts = readHostFacts()): PreparedSandbox {
  // before anything is written: a missing helper is the one error of this run
  const egress = options.network === 'egress' ? findEgressHelper() : undefined
  const launcher = locateLauncher()
  const addon = locateAddon()
  const idMap = createIdMapPlan(facts, options.subids)
  removeStaleStateDirs()
  const state = tmpDirSync({ prefix: `${STATE_PREFIX}${process.pid}-${pidNamespace()}-`, unsafeCleanup: true })
  const hostsFile = join(state.name, 'hosts')
  // the hostsFile's accepted lines, read and checked when the options were validated
  const base = options.hostsBase
  // the sandbox's hostname, configured or inherited, resolves to loopback: with no
  // network, nothing else would answer for it
  const hosts = renderHostsFile(options.hosts, { hostname: options.hostname ?? hostname(), base })
  writeFileSync(hostsFile, hosts, { mode: 0o644 })
  const nsswitchFile = options.network !== 'host' ? writeNsswitch(state.name, egress ? 'files dns' : 'files') : undefined
  let resolvFile: string | undefined
  if (egress) {
    resolvFile = join(state.name, 'resolv.conf')
    writeFileSync(resolvFile, renderEgressResolvConf(egress), { mode: 0o644 })
  }
  const fixed = { options, idMap, hostsFile, nsswitchFile, egress, resolvFile }
  const networksSocket = join(state.name, 'networks')
  let cleaned = false
  return {
    launcher,
    addon,
    idMap,
    stateDir: state.name,
    ...(options.network !== 'host' && Buffer.byteLength(networksSocket) < UNIX_PATH_MAX ? { networksSocket } : {}),
    hostsFile,
    ...(egress ? { egress } : {}),
    hosts,
    plan: (extra = {}) => createSandboxPlan({ ...fixed, ...extra }),
    args: (extra = {}) => launcherArgs(createSandboxPlan({ ...fixed, ...extra })),
    cleanup() {
      if (cleaned) return
      cleaned = true
      state.removeCallback()
    },
  }
}

/**
 * Writes the sandbox's nsswitch.conf (names from the hosts file alone) next to the
 * hosts file; undefined where the host has none (musl reads no nsswitch.conf).
 */
function writeNsswitch(stateDir: string, sources: 'files' | 'files dns'): string | undefined {
  let host: string
  try {
    host = readFileSync('/etc/nsswitch.conf', 'utf8')
  } catch {
    return undefined
  }
  const path = join(stateDir, 'nsswitch.conf')
  writeFileSync(path, renderNsswitch(host, sources), { mode: 0o644 })
  return path
}

/** How a command run in a sandbox ended, with what it printed. */
export interface SandboxedRun {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

/**
 * Runs `command` through the launcher with `args`, from `/`, collecting its output;
 * `fds` are passed on from fd 4 (after stdio and an unused IPC slot), as for workers.
 */
export function runSandboxed(launcher: string, args: string[], command: string[], fds: number[] = []): Promise<SandboxedRun> {
  const child = spawn(launcher, [...args, '--', ...command], { cwd: '/', stdio: ['ignore', 'pipe', 'pipe', 'ignore', ...fds] })
  let stdout = ''
  let stderr = ''
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d))
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  return new Promise((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }))
  })
}
