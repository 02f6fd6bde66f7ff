import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync, statSync } from 'node:fs'
import { findExecutable, readHostFacts } from './host-facts.js'
import { canOpenTun, installedEgressHelpers, TUN_DEVICE } from './egress.js'
import type { IdentityFacts } from '../plan/idmap.js'
import { LauncherNotFoundError, locateLauncher } from './launcher-path.js'
import { addSubidsAdvice, findSubidRanges, freeSubidRange, SubidFileError } from '../plan/subid.js'

/** One row of `vitest-pool-rootless doctor`. */
export interface Check {
  id: string
  title: string
  /** `fail`: the pool can't work; `warn`: it works with less (e.g. no subids). */
  status: 'ok' | 'warn' | 'fail' | 'skip'
  detail: string
  /** What to do about a `warn` or `fail`, as a command or a setting. */
  fix?: string
}

export interface DiagnoseInputs {
  /** Prefix for /proc and /etc: tests feed a fake tree. */
  root?: string
  uid?: number
  env?: NodeJS.ProcessEnv
}

const FULL_MAP = /^\s*0\s+0\s+4294967295\s*$/

/**
 * What can be read without creating a namespace: sysctls, LSM and seccomp state, the
 * id helpers and the subid files. Each row says what it found and, when it matters,
 * what to change. The live probe (see doctor.ts) decides what these only suggest.
 */
export function staticChecks(inputs: DiagnoseInputs = {}): Check[] {
  const root = inputs.root ?? ''
  const uid = inputs.uid ?? process.geteuid!()
  const env = inputs.env ?? process.env
  const read = (path: string) => {
    try {
      return readFileSync(`${root}${path}`, 'utf8').trim()
    } catch {
      return undefined
    }
  }
  const status = read('/proc/self/status') ?? ''
  const field = (name: string) => new RegExp(`^${name}:\\s*(\\S+)`, 'm').exec(status)?.[1]
  // located once: on a platform without a shipped binary this compiles one
  let launcher: { path: string } | { error: Error }
  try {
    launcher = { path: locateLauncher(env) }
  } catch (error) {
    launcher = { error: error as Error }
  }
  const checks: Check[] = []

  checks.push(
    existsSync(`${root}/proc/self/ns/user`)
      ? { id: 'kernel-userns', title: 'kernel user namespaces', status: 'ok', detail: 'supported (/proc/self/ns/user exists)' }
      : { id: 'kernel-userns', title: 'kernel user namespaces', status: 'fail', detail: 'this kernel has no user namespaces (/proc/self/ns/user is missing)', fix: 'use a kernel built with CONFIG_USER_NS=y (every mainstream distribution kernel is)' },
  )

  const max = read('/proc/sys/user/max_user_namespaces')
  checks.push(
    max === '0'
      ? { id: 'max-user-namespaces', title: '/proc/sys/user/max_user_namespaces', status: 'fail', detail: 'is 0: user namespaces are switched off', fix: 'sudo sysctl -w user.max_user_namespaces=15000 (persist it in /etc/sysctl.d/)' }
      : { id: 'max-user-namespaces', title: '/proc/sys/user/max_user_namespaces', status: 'ok', detail: max === undefined ? 'not readable' : `is ${max}` },
  )

  const clone = read('/proc/sys/kernel/unprivileged_userns_clone')
  checks.push(
    clone === '0' && uid !== 0
      ? { id: 'unprivileged-userns-clone', title: 'kernel.unprivileged_userns_clone', status: 'fail', detail: 'is 0: only root may create user namespaces (Debian/Arch kernel patch)', fix: 'sudo sysctl -w kernel.unprivileged_userns_clone=1' }
      : { id: 'unprivileged-userns-clone', title: 'kernel.unprivileged_userns_clone', status: 'ok', detail: clone === undefined ? 'not present (mainline kernel)' : `is ${clone}` },
  )

  const apparmor = read('/proc/sys/kernel/apparmor_restrict_unprivileged_userns')
  checks.push(
    apparmor === '1' && uid !== 0
      ? {
          id: 'apparmor-userns',
          title: 'kernel.apparmor_restrict_unprivileged_userns',
          status: 'fail',
          detail: 'is 1 (Ubuntu 23.10+): unshare succeeds, but the namespace gets no capabilities, so id maps and mounts fail',
          fix: `sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or allow the launcher: ${apparmorProfile('path' in launcher ? launcher.path : '/path/to/launcher')}`,
        }
      : { id: 'apparmor-userns', title: 'kernel.apparmor_restrict_unprivileged_userns', status: 'ok', detail: apparmor === undefined ? 'not present' : `is ${apparmor}` },
  )

  const seccomp = field('Seccomp')
  checks.push(
    seccomp === '2'
      ? { id: 'seccomp', title: 'seccomp', status: 'warn', detail: 'a seccomp filter is active (as in a Docker or Podman container); the default profiles block unshare and mount', fix: 'if the live probe fails, give the container the profile `npx vitest-pool-rootless seccomp` prints: npx vitest-pool-rootless seccomp > vitest-pool-rootless.seccomp.json; docker run --security-opt seccomp=vitest-pool-rootless.seccomp.json --security-opt apparmor=unconfined --security-opt systempaths=unconfined' }
      : { id: 'seccomp', title: 'seccomp', status: 'ok', detail: seccomp === undefined ? 'unknown' : seccomp === '0' ? 'no filter' : `mode ${seccomp}` },
  )

  const noNewPrivs = field('NoNewPrivs') === '1'
  checks.push(
    noNewPrivs && uid !== 0
      ? { id: 'no-new-privs', title: 'NoNewPrivs', status: 'warn', detail: 'set: the setuid newuidmap can\'t raise privileges, so only your own id can be mapped', fix: 'start without no_new_privs (Docker: drop --security-opt no-new-privileges; systemd: NoNewPrivileges=no), or set subids: false' }
      : { id: 'no-new-privs', title: 'NoNewPrivs', status: 'ok', detail: noNewPrivs ? 'set (irrelevant as root)' : 'not set' },
  )

  checks.push(helperCheck('newuidmap', env, uid), helperCheck('newgidmap', env, uid))
  const facts = readHostFacts(env, root)
  checks.push(subidCheck('/etc/subuid', facts, uid), subidCheck('/etc/subgid', facts, uid))
  checks.push(egressCheck(env))

  const uidMap = read('/proc/self/uid_map')
  checks.push(
    uidMap === undefined || FULL_MAP.test(uidMap)
      ? { id: 'nested', title: 'already in a user namespace', status: 'ok', detail: 'no (the initial namespace)' }
      : { id: 'nested', title: 'already in a user namespace', status: 'warn', detail: `yes, with only these ids mapped: ${uidMap.replace(/\s+/g, ' ')}`, fix: 'works with the ids mapped here; for chown to other ids, run outside this namespace or map a larger range into it' },
  )

  if ('path' in launcher) {
    checks.push({ id: 'launcher', title: 'launcher binary', status: 'ok', detail: launcher.path })
  } else {
    const { error } = launcher
    checks.push({ id: 'launcher', title: 'launcher binary', status: 'fail', detail: error.message.split('\n')[0]!, fix: error instanceof LauncherNotFoundError ? error.message.split('\n').at(-1) : undefined })
  }
  return checks
}

/** `network: 'egress'`: a user-mode network stack, and the tap device it opens. A warning at most: only egress needs it. */
function egressCheck(env: NodeJS.ProcessEnv): Check {
  const title = "network: 'egress' (slirp4netns or pasta)"
  const [helper, other] = installedEgressHelpers(env)
  if (!helper) return { id: 'egress', title, status: 'warn', detail: "neither is installed: network: 'egress' can't be used", fix: 'sudo apt-get install slirp4netns (Debian, Ubuntu; or passt); sudo dnf install slirp4netns (Fedora)' }
  if (!canOpenTun()) return { id: 'egress', title, status: 'warn', detail: `${helper.path} is installed, but ${TUN_DEVICE} can't be opened by this user`, fix: `sudo chmod 0666 ${TUN_DEVICE} (the mode most distributions give it)` }
  return { id: 'egress', title, status: 'ok', detail: `${helper.kind} (${helper.path})${other ? `; ${other.kind} installed too` : ''}` }
}

function helperCheck(name: 'newuidmap' | 'newgidmap', env: NodeJS.ProcessEnv, uid: number): Check {
  const title = `${name}`
  if (uid === 0) return { id: name, title, status: 'ok', detail: 'not needed as root' }
  const path = findExecutable(name, env)
  const install = 'sudo apt-get install uidmap (Debian/Ubuntu), sudo dnf install shadow-utils (Fedora), apk add shadow-uidmap (Alpine)'
  if (!path) return { id: name, title, status: 'warn', detail: 'not installed: only your own id can be mapped', fix: install }
  const st = statSync(path)
  if (st.uid === 0 && (st.mode & 0o4000) !== 0) return { id: name, title, status: 'ok', detail: `${path} (setuid root)` }
  if (hasFileCaps(path)) return { id: name, title, status: 'ok', detail: `${path} (file capabilities)` }
  return { id: name, title, status: 'warn', detail: `${path} is neither setuid root nor has file capabilities`, fix: `sudo chmod u+s ${path}, or reinstall: ${install}` }
}

/** Fedora ships the helpers with file capabilities instead of setuid; getcap tells. */
function hasFileCaps(path: string): boolean {
  const getcap = findExecutable('getcap') ?? (existsSync('/usr/sbin/getcap') ? '/usr/sbin/getcap' : null)
  if (!getcap) return false
  try {
    return /cap_set[ug]id/.test(execFileSync(getcap, [path], { encoding: 'utf8' }))
  } catch {
    return false
  }
}

function subidCheck(file: '/etc/subuid' | '/etc/subgid', facts: IdentityFacts, uid: number): Check {
  const entries = file === '/etc/subuid' ? facts.subuid : facts.subgid
  const title = file
  // the user's own line that can't be parsed (others' lines are not read at all)
  if (facts.subidProblem?.startsWith(`${file}:`)) return { id: file, title, status: 'fail', detail: facts.subidProblem }
  try {
    const ranges = findSubidRanges(entries, { name: facts.userName, id: uid }, file)
    if (ranges.length > 0) return { id: file, title, status: 'ok', detail: ranges.map((r) => `${r.start}:${r.count}`).join(', ') }
    if (uid === 0) return { id: file, title, status: 'ok', detail: 'no range for root: ids 0-65535 are mapped onto themselves' }
    const who = facts.userName ?? String(uid)
    return { id: file, title, status: 'warn', detail: `no range for ${who}: only your own id can be mapped`, fix: addSubidsAdvice(who, freeSubidRange(facts.usedSubids ?? [])).command }
  } catch (error) {
    return { id: file, title, status: 'fail', detail: (error as SubidFileError).message.replace(/^vitest-pool-rootless: /, '') }
  }
}

/** An AppArmor profile that lets the launcher create user namespaces (Ubuntu's own pattern). */
export function apparmorProfile(launcher: string): string {
  return `put this in /etc/apparmor.d/vitest-pool-rootless and run sudo apparmor_parser -r /etc/apparmor.d/vitest-pool-rootless:  abi <abi/4.0>, include <tunables/global> profile vitest-pool-rootless ${launcher} flags=(unconfined) { userns, }`
}

/**
 * Words for a failed launcher step, for the pool's error: the static checks that fail
 * explain most machines; otherwise a hint per step.
 */
export function explainFailure(step: string, stderr: string, checks: Check[] = staticChecks()): string {
  const relevant = checksThatExplain(checks)
  if (relevant.length > 0) return relevant.map((c) => `${c.title}: ${c.detail}${c.fix ? `\n  fix: ${c.fix}` : ''}`).join('\n')
  return stepHint(step, stderr)
}

/**
 * The doctor's fix line for a live sandbox that failed: where a check printed above
 * explains it (with its own fix line), a pointer to that check -- never a second "fix:"
 * inside this one; otherwise the step's hint.
 */
export function probeFailureFix(step: string, stderr: string, checks: Check[] = staticChecks()): string {
  const explained = checksThatExplain(checks).map((c) => `"${c.title}"`)
  return explained.length > 0 ? `see ${explained.join(' and ')} above` : stepHint(step, stderr)
}

/** The static checks that explain a failed sandbox: those that fail, and a seccomp filter. */
function checksThatExplain(checks: Check[]): Check[] {
  return checks.filter((c) => c.status === 'fail' || (c.status === 'warn' && c.id === 'seccomp'))
}

/** What to do about a failed launcher step when no static check explains it. */
function stepHint(step: string, stderr: string): string {
  if (step === 'unshare') {
    if (/max_user_namespaces|No space left/.test(stderr)) return 'User namespaces are switched off: sudo sysctl -w user.max_user_namespaces=15000'
    return 'The kernel refused to create a user namespace (an LSM or seccomp policy). Run `npx vitest-pool-rootless doctor` for the details.'
  }
  if (step === 'uid-map' || step === 'gid-map') {
    return 'Writing the id map failed: check your /etc/subuid and /etc/subgid lines and that newuidmap/newgidmap are setuid root (package uidmap), or set `subids: false`.'
  }
  if (step === 'forward') {
    return "The port forwarder (for `hostPorts` and the test runner's own ports) could not start or listen inside the sandbox. Run with `runnerPorts: false` and no `hostPorts` to go without it, and `npx vitest-pool-rootless doctor` for a check of this machine."
  }
  if (step === 'egress') {
    return "The user-mode network stack of `network: 'egress'` could not start in the sandbox (its own words are above). `npx vitest-pool-rootless doctor` checks it; `network: 'isolated'` goes without it."
  }
  if (step === 'nsswitch') {
    return "The sandbox's private /etc/nsswitch.conf could not be put in place (is /etc/nsswitch.conf a regular file?). `network: 'host'` goes without it."
  }
  return 'Run `npx vitest-pool-rootless doctor` for a check of this machine.'
}
