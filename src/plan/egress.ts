/**
 * `network: 'egress'`: which user-mode network stack carries the sandbox's outbound
 * traffic, and what the sandbox's resolver is told. Pure: the engine finds the program
 * (engine/egress.ts); the launcher starts it (native/egress.c).
 */

/** A user-mode network stack the distribution ships, and where it is installed. */
export interface EgressHelper {
  kind: 'pasta' | 'slirp4netns'
  path: string
}

/**
 * The order they are taken in: slirp4netns where it is installed, else pasta. Both are
 * started ahead (the holder's namespaces get theirs before they are handed out), so what
 * decides is how fast a helper starts -- the rate at which namespaces can be made ahead --
 * and there Debian 12's slirp4netns 1.2.0 takes about a third of passt 2023-03's pasta
 * (README, "Egress"); their throughput is alike.
 */
export const EGRESS_KINDS = ['slirp4netns', 'pasta'] as const

/** The Debian/Ubuntu/Fedora package each comes in. */
export const EGRESS_PACKAGES: Readonly<Record<EgressHelper['kind'], string>> = { pasta: 'passt', slirp4netns: 'slirp4netns' }

/**
 * Where the helper answers DNS inside, forwarding to the host's resolvers (the
 * nameservers of the host's /etc/resolv.conf): pasta at the address the launcher gives
 * it with --dns-forward, slirp4netns at its built-in 10.0.2.3.
 */
const DNS: Readonly<Record<EgressHelper['kind'], string>> = { pasta: '169.254.1.1', slirp4netns: '10.0.2.3' }

/** The sandbox's /etc/resolv.conf under egress: the helper's forwarder, nothing else of the host's. */
export function renderEgressResolvConf(helper: EgressHelper): string {
  return `# written by vitest-pool-rootless: ${helper.kind} forwards these queries to the host's resolvers\nnameserver ${DNS[helper.kind]}\n`
}

/** The launcher's flag value for it. */
export function egressArg(helper: EgressHelper): string {
  return `${helper.kind}:${helper.path}`
}
