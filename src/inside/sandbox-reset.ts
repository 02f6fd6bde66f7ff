import { readFileSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { RESET_ENV, type ResetPlan } from '../wire/wire.js'

/** The addon's exports (native/addon.c). */
interface ResetAddon {
  reset(args: string[]): void
  /** Makes the next reset's network namespace on a thread of its own, while tests run. */
  prepareNetwork(): void
}

/** One line of /proc/self/mountinfo: the mount's id and where it is mounted. */
interface MountEntry {
  id: string
  path: string
}

/**
 * A reused worker's way back to a fresh sandbox before each test file after the first:
 * what the launcher built for the first file, rebuilt in place by the same C code (the
 * addon, `--reset`) -- no process an earlier file let go (detached, daemons, orphans;
 * the worker's own children in its session stay), no mount it made, an empty writable
 * tmpfs over each target's locked floor with the kept paths bound again, a fresh network
 * namespace with lo up (the worker's listeners in earlier ones stay reachable:
 * native/earlier-networks.c), the hostname and /etc/hosts as they were.
 *
 * Made when the worker's first file starts: the addon is loaded then, while nothing a
 * test did can hide it, and the mounts that exist then are the sandbox's own.
 */
export class SandboxReset {
  private readonly addon: ResetAddon
  private readonly hostname = hostname()
  private readonly cwd = process.cwd()
  private ownMounts: Set<string>

  /** From the plan the engine put in the environment (RESET_ENV), which it removes; undefined without one. */
  static fromEnv(env: NodeJS.ProcessEnv = process.env): SandboxReset | undefined {
    const raw = env[RESET_ENV]
    if (!raw) return undefined
    // the tests see the environment their runner meant them to see
    delete env[RESET_ENV]
    return new SandboxReset(JSON.parse(raw) as ResetPlan)
  }

  constructor(private readonly plan: ResetPlan) {
    const module = { exports: {} as ResetAddon }
    process.dlopen(module, plan.addon)
    this.addon = module.exports
    this.ownMounts = new Set(readMounts().map((m) => m.id))
    // each reset after this one prepares the next itself
    if (plan.args.includes('--new-network')) this.addon.prepareNetwork()
  }

  /** Rebuilds the sandbox; throws an Error naming the step that failed. */
  reset(): void {
    // read before the unmount: once the old tmpfs is detached, a cwd under it has no path
    let cwd: string
    try {
      cwd = process.cwd()
    } catch {
      cwd = this.cwd
    }
    // what tests mounted since, the newest first: mountinfo lists parents before children
    const made = readMounts().filter((m) => !this.ownMounts.has(m.id)).reverse()
    try {
      this.addon.reset([...this.plan.args, '--hostname', this.hostname, ...made.flatMap((m) => ['--unmount', m.path])])
    } catch (error) {
      const { code, message } = error as { code?: string; message?: string }
      throw new Error(`vitest-pool-rootless: can't reset the sandbox between test files (${code ?? 'reset'}): ${String(message).replace(/^vitest-pool-rootless: /, '')}`)
    }
    writeFileSync('/etc/hosts', this.plan.hosts)
    this.ownMounts = new Set(readMounts().map((m) => m.id))
    // the old cwd may have been on the detached tmpfs: resolve it again in the new tree,
    // or go back to where the first file started if a test left it somewhere now gone
    try {
      process.chdir(cwd)
    } catch {
      process.chdir(this.cwd)
    }
  }
}

/** This process's mounts, in mountinfo order; paths unescaped (`\040` is a space). */
export function readMounts(): MountEntry[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const fields = line.split(' ')
      return { id: fields[0]!, path: fields[4]!.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8))) }
    })
}
