import { spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { renderHostsFile, renderNsswitch } from '../plan/hosts.js'
import { isService } from '../plan/host-ports.js'
import { withServiceNames } from './services.js'
import { resolveTempDir } from '../plan/option-specs.js'
import { readHostFacts } from './host-facts.js'
import { createIdMapPlan, type IdentityFacts, type IdMapPlan } from '../plan/idmap.js'
import { locateAddon, locateLauncher } from './launcher-path.js'
import type { ResolvedSandboxOptions } from '../plan/options.js'
import { createSandboxPlan, launcherArgs, type PlanInputs, type SandboxPlan } from '../plan/plan.js'
import { renderEgressResolvConf, type EgressHelper } from '../plan/egress.js'
import { findEgressHelper } from './egress.js'

const STATE_PREFIX = 'vitest-pool-rootless-'

/** This process's state dirs not yet cleaned up: removed on exit, see `makeStateDir`. */
const liveStateDirs = new Set<string>()

/**
 * A private (0700) state directory in the temp dir, removed when the process exits --
 * however it exits short of SIGKILL, whose leftovers the next run removes
 * (`removeStaleStateDirs`). Made here, not at import: a TMPDIR that doesn't exist must
 * not break loading the package (it is reported by `resolveTempDir` when a run opens).
 */
function makeStateDir(tempDir: string): string {
  if (liveStateDirs.size === 0) process.once('exit', removeLiveStateDirs)
  const dir = mkdtempSync(join(tempDir, `${STATE_PREFIX}${process.pid}-${pidNamespace()}-`))
  liveStateDirs.add(dir)
  return dir
}

function removeStateDir(dir: string): void {
  liveStateDirs.delete(dir)
  if (liveStateDirs.size === 0) process.removeListener('exit', removeLiveStateDirs)
  rmSync(dir, { recursive: true, force: true })
}

function removeLiveStateDirs(): void {
  for (const dir of liveStateDirs) {
    try {
      rmSync(dir, { recursive: true, force: true })
    } catch {}
  }
  liveStateDirs.clear()
}

/**
 * State dirs whose run was SIGKILLed (no exit handler ran) are removed by the next
 * run: the owner's pid and pid namespace are in the name, and only dirs of ours whose
 * owner is provably dead go -- a pid says nothing across pid namespaces (containers
 * sharing /tmp), so dirs from another namespace are left alone.
 */
function removeStaleStateDirs(dir: string): void {
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
  plan(extra?: Omit<PlanInputs, 'options' | 'idMap' | 'hostsFile' | 'nsswitchFile' | 'egress' | 'resolvFile' | 'egressAllow'>): SandboxPlan
  /** Launcher flags for one sandbox (`launcherArgs(plan(extra))`); append `--` and the command. */
  args(extra?: Omit<PlanInputs, 'options' | 'idMap' | 'hostsFile' | 'nsswitchFile' | 'egress' | 'resolvFile' | 'egressAllow'>): string[]
  /** Removes the state directory. Idempotent. */
  cleanup(): void
}

/**
 * Does the per-run work once: locate the launcher, decide the id maps, write the
 * hosts file into a private state directory. Each sandbox then only needs `args()`.
 * Synchronous, so a pool can prove the sandbox works while its config loads. Throws a
 * RootlessEnvironmentError naming TMPDIR where the temp dir can't be used (the state
 * directory lives there even with `tmpfs: false`). `egressAllow`: the `egress` list as
 * ranges, its names resolved (`resolveEgressAllow`).
 */
export function prepareSandbox(options: ResolvedSandboxOptions, facts: IdentityFacts = readHostFacts(), egressAllow: readonly string[] = []): PreparedSandbox {
  // before anything is written: a missing helper is the one error of this run
  const egress = options.network === 'egress' ? findEgressHelper() : undefined
  const tempDir = resolveTempDir()
  const launcher = locateLauncher()
  const addon = locateAddon()
  const idMap = createIdMapPlan(facts, options.subids)
  removeStaleStateDirs(tempDir)
  const stateDir = makeStateDir(tempDir)
  const hostsFile = join(stateDir, 'hosts')
  // the hostsFile's accepted lines, read and checked when the options were validated
  const base = options.hostsBase
  // the sandbox's hostname, configured or inherited, resolves to loopback: with no
  // network, nothing else would answer for it
  // a named service of `hostPorts` (`'postgres:5432'`) is reached inside by its name
  const names = options.network !== 'host' ? withServiceNames(options.hosts, options.hostPorts.filter(isService)) : options.hosts
  const hosts = renderHostsFile(names, { hostname: options.hostname ?? hostname(), base })
  writeFileSync(hostsFile, hosts, { mode: 0o644 })
  const nsswitchFile = options.network !== 'host' ? writeNsswitch(stateDir, egress ? 'files dns' : 'files') : undefined
  let resolvFile: string | undefined
  if (egress) {
    resolvFile = join(stateDir, 'resolv.conf')
    writeFileSync(resolvFile, renderEgressResolvConf(egress), { mode: 0o644 })
  }
  const fixed = { options, idMap, hostsFile, nsswitchFile, egress, resolvFile, egressAllow }
  const networksSocket = join(stateDir, 'networks')
  let cleaned = false
  return {
    launcher,
    addon,
    idMap,
    stateDir: stateDir,
    ...(options.network !== 'host' && Buffer.byteLength(networksSocket) < UNIX_PATH_MAX ? { networksSocket } : {}),
    hostsFile,
    ...(egress ? { egress } : {}),
    hosts,
    plan: (extra = {}) => createSandboxPlan({ ...fixed, ...extra }),
    args: (extra = {}) => launcherArgs(createSandboxPlan({ ...fixed, ...extra })),
    cleanup() {
      if (cleaned) return
      cleaned = true
      removeStateDir(stateDir)
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
export interface CommandResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

/** Runs `command` through the launcher with `args`, from `/`, collecting its output. */
export function runSandboxed(launcher: string, args: string[], command: string[]): Promise<CommandResult> {
  const child = spawn(launcher, [...args, '--', ...command], { cwd: '/', stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d))
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  return new Promise((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }))
  })
}
