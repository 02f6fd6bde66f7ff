// The probe: one sandbox built while a run opens, so a machine or options that can't build
// it stop the run with one error before any worker starts; and its verdicts, remembered.
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdirSync, readdirSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SandboxError } from '../plan/errors.js'
import { launcherStep } from '../plan/steps.js'
import { readOptional } from './host-facts.js'
import { cacheDir } from './launcher-path.js'
import { explainFailure } from './machine-checks.js'
import type { PreparedSandbox } from './sandbox.js'

/**
 * What decides whether a sandbox can be built here, beyond the options: the boot (a
 * reboot may bring another kernel or other settings), the kernel's namespace knobs
 * (including AppArmor's and Debian's), and the subordinate id ranges.
 */
const MACHINE_FILES = [
  '/proc/sys/kernel/random/boot_id',
  '/proc/sys/user/max_user_namespaces',
  '/proc/sys/user/max_mnt_namespaces',
  '/proc/sys/user/max_net_namespaces',
  '/proc/sys/user/max_pid_namespaces',
  '/proc/sys/kernel/unprivileged_userns_clone',
  '/proc/sys/kernel/apparmor_restrict_unprivileged_userns',
  '/etc/subuid',
  '/etc/subgid',
]

/** How many verdicts of one boot are kept: the configs and launchers a machine runs in a day. */
const KEPT_PER_BOOT = 32

const modified = (path: string): number => {
  try {
    return statSync(path).mtimeMs
  } catch {
    return 0
  }
}

/**
 * Probes that passed, remembered in the user's cache directory: a run whose machine,
 * launcher, node and options are those of a passed probe skips building the probe
 * sandbox while its config loads (its first sandbox that fails says the machine changed).
 * One empty file a verdict, named by the boot and a hash of the rest; a new boot's first
 * verdict removes the older boots', and a boot keeps its newest KEPT_PER_BOOT. Failures are never remembered. Where the cache can't
 * be written, nothing is remembered and every run probes.
 */
export class ProbeVerdicts {
  constructor(private readonly dir: string = join(cacheDir(process.env), 'probes')) {}

  /** The key of a probe of `options` with `launcher` here now; undefined where the boot is unknown. */
  key(options: unknown, launcher: string): string | undefined {
    const [boot, ...settings] = MACHINE_FILES.map(readOptional)
    const bootId = boot!.trim()
    if (!/^[\w-]+$/.test(bootId)) return undefined
    const identity = (path: string) => {
      try {
        const { mtimeMs, size, ino } = statSync(path)
        return [path, mtimeMs, size, ino]
      } catch {
        return [path]
      }
    }
    const hash = createHash('sha256')
      .update(JSON.stringify([settings, process.geteuid?.(), process.getegid?.(), identity(launcher), identity(process.execPath), tmpdir(), options]))
      .digest('hex')
      .slice(0, 32)
    return `${bootId}-${hash}`
  }

  passed(key: string): boolean {
    return existsSync(join(this.dir, `probe-${key}`))
  }

  remember(key: string): void {
    try {
      mkdirSync(this.dir, { recursive: true })
      const boot = key.slice(0, key.lastIndexOf('-'))
      const verdicts = readdirSync(this.dir).filter((name) => name.startsWith('probe-'))
      for (const old of verdicts) if (!old.startsWith(`probe-${boot}-`)) rmSync(join(this.dir, old), { force: true })
      // a boot's verdicts: the newest KEPT_PER_BOOT (an edited config or a rebuilt launcher makes a new one)
      const thisBoot = verdicts.filter((name) => name.startsWith(`probe-${boot}-`) && name !== `probe-${key}`)
      const oldestFirst = thisBoot.map((name) => ({ name, at: modified(join(this.dir, name)) })).sort((a, b) => a.at - b.at)
      for (const { name } of oldestFirst.slice(0, Math.max(0, oldestFirst.length - (KEPT_PER_BOOT - 1)))) rmSync(join(this.dir, name), { force: true })
      writeFileSync(join(this.dir, `probe-${key}`), '')
    } catch {
      // a read-only home: probe every run
    }
  }

  forget(key: string): void {
    rmSync(join(this.dir, `probe-${key}`), { force: true })
  }
}

/**
 * Steps that fail because of what the options ask for, not because of the machine: the
 * error names the options instead of sending the user to the doctor.
 */
const OPTION_STEPS: Readonly<Record<string, string>> = {
  'open-hosts': '`hostsFile`',
  hosts: '`hosts`/`hostsFile`',
  'open-keep': '`keep`',
  keep: '`keep`/`writable`',
  tmpfs: '`tmpfs`/`tmpfsSize`',
  hostname: '`hostname`',
  // the node binary's own directory is kept: what fails is what it loads (libc under /usr)
  exec: '`tmpfs` (it hides what node needs to start)',
  chdir: '`tmpfs`/`keep` (the working directory is hidden)',
}

/** The launcher and its arguments for a probe: one sandbox around `node --version`. */
function probeCommand(sandbox: PreparedSandbox): [string, string[]] {
  return [sandbox.launcher, [...sandbox.args({ needs: [process.execPath] }), '--', process.execPath, '--version']]
}

/** Builds one sandbox around `node --version`, synchronously; throws the doctor's words. */
export function probeSandbox(sandbox: PreparedSandbox): void {
  const [launcher, args] = probeCommand(sandbox)
  const result = spawnSync(launcher, args, { cwd: '/', encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  if (result.status === 0) return
  throw probeFailure(result.status, result.signal, `${result.stderr ?? ''}`.trim() || (result.error ? String(result.error.message) : ''))
}

/** A failed probe's error: the option to check, or the doctor's words for this machine. */
export function probeFailure(code: number | null, signal: NodeJS.Signals | null, stderr: string): SandboxError {
  const step = launcherStep(code) ?? 'probe'
  const how = code === null ? `signal ${signal}` : `exit ${code}`
  const option = OPTION_STEPS[step]
  const message = option
    ? `vitest-pool-rootless: the sandbox can't be built with these options (${step} failed, ${how}).\n${stderr}\nCheck the option ${option} of rootless().`
    : // the doctor's words for what is wrong with this machine
      `vitest-pool-rootless: can't build the test sandbox on this machine (${step} failed, ${how}).\n${stderr}\n${explainFailure(step, stderr)}`
  return new SandboxError(message, { step, exitCode: code, signal, fault: option ? 'options' : 'machine' })
}
