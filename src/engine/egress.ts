import { accessSync, constants } from 'node:fs'
import { RootlessOptionError, SandboxError } from '../plan/errors.js'
import { EGRESS_KINDS, EGRESS_PACKAGES, MAX_EGRESS_RANGES, egressRange, type EgressHelper } from '../plan/egress.js'
import { findExecutable } from './host-facts.js'
import { lookUpInChild, type LookUp } from './services.js'

/** Where distributions install them, looked in after PATH (sbin may be off a user's PATH). */
const SYSTEM_DIRS = ['/usr/bin', '/usr/sbin', '/bin', '/sbin', '/usr/local/bin']

/** Picks the helper where both are installed: `pasta` or `slirp4netns`. */
export const EGRESS_HELPER_ENV = 'VITEST_POOL_ROOTLESS_EGRESS_HELPER'

/** The tap device every user-mode stack opens in the sandbox's network. */
export const TUN_DEVICE = '/dev/net/tun'

/** The installed helpers, in the order `network: 'egress'` takes them. */
export function installedEgressHelpers(env: NodeJS.ProcessEnv = process.env, systemDirs: readonly string[] = SYSTEM_DIRS): EgressHelper[] {
  const path = [env.PATH ?? '', ...systemDirs].join(':')
  return EGRESS_KINDS.flatMap((kind) => {
    const found = findExecutable(kind, { ...env, PATH: path })
    return found ? [{ kind, path: found }] : []
  })
}

/** Whether this user can open the tap device (mode 0666 on most distributions). */
export function canOpenTun(device = TUN_DEVICE): boolean {
  try {
    accessSync(device, constants.R_OK | constants.W_OK)
    return true
  } catch {
    return false
  }
}

/**
 * The helper for `network: 'egress'`: slirp4netns if installed, else pasta. Throws one
 * error naming the packages to install when neither is, or the device when the tap
 * device can't be opened. Never a reason to run unsandboxed: the options asked for it.
 */
export function findEgressHelper(env: NodeJS.ProcessEnv = process.env, device = TUN_DEVICE, systemDirs: readonly string[] = SYSTEM_DIRS): EgressHelper {
  const installed = installedEgressHelpers(env, systemDirs)
  const chosen = env[EGRESS_HELPER_ENV]
  if (chosen !== undefined && chosen !== '' && !installed.some((helper) => helper.kind === chosen)) {
    const known = (EGRESS_KINDS as readonly string[]).includes(chosen)
    throw new SandboxError(
      `vitest-pool-rootless: ${EGRESS_HELPER_ENV}=${chosen} ${known ? `names a helper that isn't installed: install \`${EGRESS_PACKAGES[chosen as EgressHelper['kind']]}\`` : `expects ${EGRESS_KINDS.join(' or ')}`}, or unset it to take ${installed[0]?.kind ?? 'whichever is installed'}.`,
      { step: 'egress', exitCode: null, fault: 'options' },
    )
  }
  const [helper] = chosen ? installed.filter((helper) => helper.kind === chosen) : installed
  if (!helper) {
    const packages = EGRESS_KINDS.map((kind) => `\`${EGRESS_PACKAGES[kind]}\` (${kind})`).join(' or ')
    throw new SandboxError(
      `vitest-pool-rootless: network: 'egress' needs a user-mode network stack, and neither slirp4netns nor pasta is installed. Install ${packages}: \`sudo apt-get install slirp4netns\` (Debian, Ubuntu; or passt), \`sudo dnf install slirp4netns\` (Fedora); or use network: 'isolated'.`,
      { step: 'egress', exitCode: null, fault: 'options' },
    )
  }
  if (!canOpenTun(device)) {
    throw new SandboxError(
      `vitest-pool-rootless: network: 'egress' needs ${device}, which this user can't open (${helper.kind} makes the sandbox's network device with it). Most distributions make it mode 0666: \`sudo chmod 0666 ${device}\`; or use network: 'isolated'.`,
      { step: 'egress', exitCode: null, fault: 'options' },
    )
  }
  return helper
}

/**
 * The `egress` list as the launcher takes it: its ranges as they are, each name as every
 * address the host resolves it to now, when the run opens (a name that moves later keeps
 * its old addresses for this run). A name the host can't resolve is one error naming the
 * option (`egress` or `--egress`).
 */
export function resolveEgressAllow(entries: readonly string[], option: string, lookUp: LookUp = lookUpInChild): string[] {
  const names = entries.filter((entry) => egressRange(entry) === undefined)
  const answers = names.length > 0 ? lookUp(names) : []
  const ranges = entries.flatMap((entry) => {
    const range = egressRange(entry)
    if (range) return [range]
    const answer = answers[names.indexOf(entry)]!
    if ('error' in answer) {
      throw new RootlessOptionError(option, entry, `names a destination, but this machine can't resolve "${entry}" (${answer.error}): give a name the host resolves, or its address or CIDR range`)
    }
    return (answer.addresses ?? [answer.address]).map((address) => egressRange(address)!)
  })
  const unique = [...new Set(ranges)]
  if (unique.length > MAX_EGRESS_RANGES) {
    throw new RootlessOptionError(option, [...entries], `resolves to ${unique.length} addresses and ranges, more than the ${MAX_EGRESS_RANGES} a sandbox takes: name fewer destinations, or a CIDR range that covers them`)
  }
  return unique
}
