import { spawn } from 'node:child_process'
import { setGracefulCleanup } from 'tmp-promise'
import { SandboxError } from '../ns/errors.js'
import type { ResolvedSandboxOptions } from '../ns/options.js'
import { prepareSandbox, type PreparedSandbox } from '../ns/sandbox.js'
import { launcherStep } from '../ns/steps.js'

// the state directory (hosts file) goes when the Vitest process exits, however it exits
setGracefulCleanup()

/**
 * Per-run work shared by every worker of one `rootless()` pool: decide the id maps,
 * write the hosts file, and prove once that a sandbox can be built here. A machine
 * that can't do it fails the first worker with one clear error instead of every
 * test file crashing the same way.
 */
export class RunState {
  private prepared?: Promise<PreparedSandbox>

  constructor(readonly options: ResolvedSandboxOptions) {}

  prepare(): Promise<PreparedSandbox> {
    this.prepared ??= this.doPrepare()
    return this.prepared
  }

  private async doPrepare(): Promise<PreparedSandbox> {
    const sandbox = await prepareSandbox(this.options)
    if (sandbox.idMap.warning) process.stderr.write(`${sandbox.idMap.warning}\n`)
    await probeSandbox(sandbox)
    return sandbox
  }
}

/**
 * Builds one sandbox around `node --version`: the same plan a worker gets, and proof
 * that the node binary is reachable inside it, without paying for a V8 start.
 */
async function probeSandbox(sandbox: PreparedSandbox): Promise<void> {
  const args = sandbox.args({ newSession: true, needs: [process.execPath] })
  const child = spawn(sandbox.launcher, [...args, '--', process.execPath, '--version'], { stdio: ['ignore', 'ignore', 'pipe'], cwd: '/' })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (c, s) => resolve([c, s]))
  })
  if (code === 0) return
  const step = launcherStep(code) ?? 'probe'
  throw new SandboxError(
    `vitest-pool-rootless: can't build the test sandbox on this machine (${step} failed, exit ${code ?? signal}).\n${stderr.trim()}\n` +
      `${hintFor(step, stderr)}`,
    { step, exitCode: code, signal },
  )
}

/** What to do about a failed step, in the words a user can act on. */
export function hintFor(step: string, stderr: string): string {
  if (step === 'unshare') {
    if (/No space left|max_user_namespaces/.test(stderr)) {
      return 'User namespaces are switched off: set /proc/sys/user/max_user_namespaces above 0 (sudo sysctl -w user.max_user_namespaces=15000).'
    }
    return 'The kernel refused to create a user namespace. On Debian with kernel.unprivileged_userns_clone=0: sudo sysctl -w kernel.unprivileged_userns_clone=1. In Docker: run with --security-opt seccomp=unconfined --security-opt apparmor=unconfined. On Ubuntu 23.10+: sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or an AppArmor profile that allows userns for this launcher.'
  }
  if (step === 'uid-map' || step === 'gid-map') {
    return 'Writing the id map failed. Check /etc/subuid and /etc/subgid for your user, that newuidmap/newgidmap are setuid root (package uidmap), or set `subids: false` to map only your own id.'
  }
  if (step === 'mount-private' || step === 'tmpfs' || step === 'hosts' || step === 'keep') {
    return 'Mounting inside the sandbox was denied. In Docker: --security-opt apparmor=unconfined --security-opt systempaths=unconfined. On Ubuntu 23.10+: kernel.apparmor_restrict_unprivileged_userns=0.'
  }
  return 'This is the launcher message above; if it persists, report it with that line.'
}
