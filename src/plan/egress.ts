/**
 * `network: 'egress'`: which user-mode network stack carries the sandbox's outbound
 * traffic, and what the sandbox's resolver is told. Pure: the engine finds the program
 * (engine/egress.ts); the launcher starts it (native/egress.c).
 */
import { isIP } from 'node:net'
import { RootlessOptionError } from './errors.js'
import { HOST_NAME } from './hosts.js'

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

/** The launcher's limit of `--egress-allow` ranges (MAX_LIST in native/sandbox.h). */
export const MAX_EGRESS_RANGES = 64

const EGRESS_ENTRIES = "host names, IP addresses or CIDR ranges (e.g. ['api.example.com', '10.0.0.0/8', 'fd00::/8'])"

/** `entry` as the launcher takes a range, `ADDR/LEN` (an address alone: /32 or /128); undefined where it is none. */
export function egressRange(entry: string): string | undefined {
  const [address = '', length, ...rest] = entry.split('/')
  const family = isIP(address)
  if (family === 0 || rest.length > 0) return undefined
  const max = family === 4 ? 32 : 128
  if (length === undefined) return `${address}/${max}`
  if (!/^\d{1,3}$/.test(length) || Number(length) > max) return undefined
  return `${address}/${Number(length)}`
}

/**
 * The `egress` option: the destinations that alone are reached under the egress network.
 * Ranges come back as `ADDR/LEN`, names lower-cased (the host resolves them when the run
 * opens: engine/egress.ts). An empty list is refused: it would reach nothing but DNS,
 * which is what the isolated network is for.
 */
export function validateEgressList(value: unknown, option: string): string[] {
  if (value === undefined) return []
  if (!Array.isArray(value)) throw new RootlessOptionError(option, value, `expects an array of ${EGRESS_ENTRIES}`)
  if (value.length === 0) throw new RootlessOptionError(option, value, 'expects at least one destination; leave it out to reach every destination')
  if (value.length > MAX_EGRESS_RANGES) throw new RootlessOptionError(option, value, `expects at most ${MAX_EGRESS_RANGES} destinations`)
  return [
    ...new Set(
      value.map((entry: unknown) => {
        if (typeof entry === 'string') {
          const range = egressRange(entry)
          if (range) return range
          // "10.0.0" or "10.0.0.0/33" is a mistyped address, not a name
          if (!/^[\d.]+$/.test(entry) && HOST_NAME.test(entry)) return entry.toLowerCase().replace(/\.$/, '')
        }
        throw new RootlessOptionError(option, entry, `expects ${EGRESS_ENTRIES}: a host name, an IPv4 or IPv6 address, or ADDR/LEN with LEN at most 32 (IPv4) or 128 (IPv6)`)
      }),
    ),
  ]
}
