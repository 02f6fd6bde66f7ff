import type { IdMapLine, IdMapPlan } from './idmap.js'
import { isInside } from './paths.js'
import type { ResolvedSandboxOptions } from './options.js'
import { isForward, isRange, type PortForward, type PortRange } from './host-ports.js'
import type { ResetPlan } from '../wire/wire.js'
import { egressArg, type EgressHelper } from './egress.js'

/** One private tmpfs and the paths under it that are bound back (outermost only, sorted). */
export interface MountPlan {
  tmpfs: string
  keep: string[]
}

/** Everything one sandbox does, in the order the launcher does it. */
export interface SandboxPlan {
  /**
   * Join an already-mapped user namespace passed at this fd (taking a network namespace
   * made ahead from the holder's `networksSocket`, when there is one), or create one
   * with these maps.
   */
  user: { joinFd: number; networksSocket?: string } | { idMap: IdMapPlan }
  mounts: MountPlan[]
  /** Temp dirs that lie in a tmpfs target: made anew, empty, on it (`--tmpfs-dir`). */
  tmpfsDirs?: string[]
  tmpfsSize?: string
  hostsFile?: string
  /** A private copy goes on /etc/nsswitch.conf: names resolve from the hosts file alone. */
  nsswitchFile?: string
  /** With egress: a private copy goes on /etc/resolv.conf, naming the helper's DNS forwarder. */
  resolvFile?: string
  hostname?: string
  network: 'isolated' | 'egress' | 'host'
  /** With `network: 'egress'`: the user-mode network stack that carries outbound traffic. */
  egress?: EgressHelper
  /** With egress and an `egress` list: the only ranges reached (ADDR/LEN), names resolved. */
  egressAllow?: string[]
  /** Ports of the sandbox's loopback that lead to the host's (hostPorts, the runner's own). */
  forwards: PortForward[]
  /**
   * `hostPorts` ranges (`--forward-range`): where connects go straight to the host, every
   * port of them leads to the host's same port, served now or later, with no listener
   * inside; elsewhere only `forwards` (which hold their served ports) lead out.
   */
  ranges?: PortRange[]
  newSession: boolean
  pidNamespace: boolean
  /**
   * A port of the sandbox's loopback reached from the host through the Unix socket
   * `socket` (a debugger's way to the worker's inspector; engine/published-port.ts).
   */
  publish?: { port: number; socket: string }
  /** uid 0 without the capabilities that bypass file permissions (`permissions: 'enforce'`). */
  enforcePermissions?: boolean
  /**
   * A read-only host (`writable`): every mount read-only but these trees, which keep the
   * host's own modes (`/dev` and `/proc` among them); the tmpfs targets are new mounts.
   */
  readOnly?: { writable: string[] }
  /** The launcher reports a failed setup step on this fd (see launcherArgs). */
  statusFd?: number
  /**
   * The host's channel to the forwarder, at this fd of the launcher: forwards a run adds
   * once the sandbox is started (`forwardHostPort()`), which a reused worker's next reset
   * takes. Only the forwarder keeps it, never the sandbox.
   */
  forwardHostFd?: number
}

export interface PlanInputs {
  options: ResolvedSandboxOptions
  idMap: IdMapPlan
  /** Path of the rendered hosts file (written by the caller), if any. */
  hostsFile?: string
  /** Path of the rendered nsswitch.conf (written by the caller), if any. */
  nsswitchFile?: string
  /**
   * Forwards known only when the sandbox starts: the served ports of `hostPorts` ranges,
   * its named services, `forwardHostPort()`'s. After the fixed `hostPorts`, before the
   * runner's ports.
   */
  hostForwards?: PortForward[]
  /** With egress: the helper, and the path of the rendered resolv.conf (written by the caller). */
  egress?: EgressHelper
  resolvFile?: string
  /** With egress: the `egress` list as ranges, its names resolved when the run opened. */
  egressAllow?: readonly string[]
  /** Ports the runner's own process (and its children) listen on: forwarded too, where nothing above names them. */
  runnerPorts?: number[]
  /** Paths the command needs (cwd, project, node binary…); those under a tmpfs stay visible. */
  needs?: string[]
  /**
   * With `writable` set: the absolute paths that stay writable (engine/writable.ts: the
   * entries and the runner's own); those under a tmpfs stay visible, as `needs`.
   */
  writable?: string[]
  /** Join this already-mapped user namespace (warm holder) instead of creating one. */
  usernsFd?: number
  /** With `usernsFd`: the warm holder's socket for network namespaces made ahead. */
  networksSocket?: string
  /** Detach from the controlling terminal (workers); the CLI keeps it for interactive use. */
  newSession?: boolean
  /** Have the launcher write a failed step's status as one byte to this fd (not 0-2). */
  statusFd?: number
  /** Reach this port of the sandbox's loopback from the host, through this Unix socket. */
  publish?: { port: number; socket: string }
  /** The host's channel to the forwarder for forwards added later, at this fd (not 0-2). */
  forwardHostFd?: number
}

/**
 * Decides everything one sandbox does. Pure: the same inputs give the same plan, so
 * what the sandbox will do can be read (and tested) before it runs; `launcherArgs`
 * spells it for the launcher and `createResetPlan` for a reused worker.
 */
export function createSandboxPlan(inputs: PlanInputs): SandboxPlan {
  const { options } = inputs
  // egress is the isolated network plus a route out: the same private ports, forwards and namespaces made ahead
  const own = options.network !== 'host'
  const plan: SandboxPlan = {
    user: inputs.usernsFd === undefined ? { idMap: inputs.idMap } : inputs.networksSocket && own ? { joinFd: inputs.usernsFd, networksSocket: inputs.networksSocket } : { joinFd: inputs.usernsFd },
    mounts: mountPlan(options.tmpfs, [...options.keep, ...(inputs.needs ?? []), ...(options.writable ? (inputs.writable ?? []) : [])]),
    network: options.network,
    forwards: own ? forwardsOf([...options.hostPorts.filter(isForward), ...(inputs.hostForwards ?? [])], inputs.runnerPorts ?? []) : [],
    newSession: inputs.newSession ?? false,
    pidNamespace: options.pidNamespace,
  }
  const ranges = own ? options.hostPorts.filter(isRange) : []
  if (ranges.length > 0) plan.ranges = ranges
  if (options.permissions === 'enforce') plan.enforcePermissions = true
  // device nodes and the kernel's files keep their modes: /dev/null is written to, and a
  // pid namespace's own /proc can only be mounted where the one in sight is writable
  if (options.writable) plan.readOnly = { writable: [...new Set(['/dev', '/proc', ...(inputs.writable ?? [])])] }
  if (options.tmpfsDirs?.length) plan.tmpfsDirs = options.tmpfsDirs
  if (options.tmpfsSize) plan.tmpfsSize = options.tmpfsSize
  if (inputs.hostsFile) plan.hostsFile = inputs.hostsFile
  if (inputs.nsswitchFile && own) plan.nsswitchFile = inputs.nsswitchFile
  if (options.network === 'egress') {
    if (!inputs.egress) throw new Error("network: 'egress' planned without its helper")
    plan.egress = inputs.egress
    if (inputs.resolvFile) plan.resolvFile = inputs.resolvFile
    if (inputs.egressAllow?.length) plan.egressAllow = [...inputs.egressAllow]
  }
  if (options.hostname) plan.hostname = options.hostname
  if (inputs.statusFd !== undefined) plan.statusFd = inputs.statusFd
  if (inputs.publish && options.network !== 'host') plan.publish = inputs.publish
  if (inputs.forwardHostFd !== undefined && own) plan.forwardHostFd = inputs.forwardHostFd
  return plan
}

/**
 * The plan as launcher flags, without `-- CMD`. Each `--keep` belongs to the `--tmpfs`
 * before it: the launcher binds exactly those paths back onto that tmpfs and decides
 * nothing itself. `--status-fd` comes first so even a usage error is reported on it
 * (the launcher also looks for it before parsing the rest).
 */
export function launcherArgs(plan: SandboxPlan): string[] {
  const args: string[] = []
  if (plan.statusFd !== undefined) args.push('--status-fd', String(plan.statusFd))
  if ('joinFd' in plan.user) args.push('--userns-fd', String(plan.user.joinFd), ...(plan.user.networksSocket ? ['--networks', plan.user.networksSocket] : []))
  else args.push(...idMapArgs(plan.user.idMap))
  args.push(...mountArgs(plan))
  if (plan.hostsFile) args.push('--hosts-file', plan.hostsFile)
  if (plan.nsswitchFile) args.push('--nsswitch-file', plan.nsswitchFile)
  if (plan.resolvFile) args.push('--resolv-file', plan.resolvFile)
  args.push(...forwardArgs(plan))
  for (const range of plan.ranges ?? []) args.push('--forward-range', `${range.from}-${range.to}`)
  if (plan.forwardHostFd !== undefined) args.push('--forward-host-fd', String(plan.forwardHostFd))
  if (plan.publish) args.push('--publish', `${plan.publish.port}=${plan.publish.socket}`)
  if (plan.hostname) args.push('--hostname', plan.hostname)
  if (plan.network === 'host') args.push('--host-network')
  args.push(...egressArgs(plan))
  if (plan.newSession) args.push('--new-session')
  if (plan.enforcePermissions) args.push('--enforce-permissions')
  if (plan.readOnly) args.push('--read-only', ...plan.readOnly.writable.flatMap((path) => ['--writable', path]))
  if (plan.pidNamespace) args.push('--pid-namespace')
  return args
}

/** The launcher flags that create and map a user namespace. */
export function idMapArgs(idMap: IdMapPlan): string[] {
  const args: string[] = []
  for (const line of idMap.uidMap) args.push('--uid-map', formatLine(line))
  for (const line of idMap.gidMap) args.push('--gid-map', formatLine(line))
  if (idMap.helpers) args.push('--newuidmap', idMap.helpers.newuidmap, '--newgidmap', idMap.helpers.newgidmap)
  return args
}

/**
 * One entry per tmpfs target, in the order given, with the needed paths bound back onto
 * it: those strictly under some target, outermost only (binding /tmp/a also brings
 * /tmp/a/b), sorted, each with the (innermost) target it lies under. A path equal to a
 * target is dropped: binding it back would undo the tmpfs.
 */
export function mountPlan(tmpfs: readonly string[], needs: readonly string[]): MountPlan[] {
  const under = needs.filter((p) => !tmpfs.includes(p) && tmpfs.some((t) => isInside(p, t)))
  const unique = [...new Set(under)].sort()
  const kept = unique.filter((p) => !unique.some((other) => other !== p && isInside(p, other)))
  const owner = (path: string) => tmpfs.filter((t) => isInside(path, t)).sort((a, b) => b.length - a.length)[0]
  return tmpfs.map((target) => ({ tmpfs: target, keep: kept.filter((p) => owner(p) === target) }))
}

/**
 * What a reused worker restores between test files: the addon's `--reset` with the same
 * writable layers as `plan`, its processes and its network as fresh as `plan` makes them
 * (the worker adds the hostname it started with and the mounts its tests made).
 */
export function createResetPlan(plan: SandboxPlan, hosts: string, addon: string): ResetPlan {
  const args = ['--reset', ...mountArgs(plan)]
  // only in a pid namespace of its own does the worker see just the sandbox's processes
  if (plan.pidNamespace) args.push('--kill-others')
  // a fresh network namespace, with the same ports forwarded into it (and its own egress
  // helper) -- but where a debugger is published, the one its publisher (made with the
  // sandbox) connects in
  if (plan.network !== 'host' && !plan.publish) args.push('--new-network', ...egressArgs(plan), ...forwardArgs(plan))
  return { addon, args, hosts }
}

/** `hostPorts` and the forwards of this start, then the runner's own ports: each port inside once, the first meaning kept. */
function forwardsOf(hostPorts: readonly PortForward[], runnerPorts: readonly number[]): PortForward[] {
  const seen = new Set<number>()
  return [...hostPorts, ...runnerPorts.map((port) => ({ inside: port, host: port }))].filter((f) => !seen.has(f.inside) && seen.add(f.inside))
}

/** The helper, and the allow-list its routes give way to: the same for a sandbox and its reset. */
function egressArgs(plan: SandboxPlan): string[] {
  if (!plan.egress) return []
  return ['--egress', egressArg(plan.egress), ...(plan.egressAllow ?? []).flatMap((range) => ['--egress-allow', range])]
}

function forwardArgs(plan: SandboxPlan): string[] {
  return plan.forwards.flatMap((f) => ['--forward', `${f.inside}:${f.host}`])
}

/** Each `--tmpfs` with its `--keep`s, then the size: the same for a sandbox and its reset. */
function mountArgs(plan: SandboxPlan): string[] {
  const args: string[] = []
  for (const mount of plan.mounts) {
    args.push('--tmpfs', mount.tmpfs)
    for (const path of mount.keep) args.push('--keep', path)
  }
  for (const dir of plan.tmpfsDirs ?? []) args.push('--tmpfs-dir', dir)
  if (plan.tmpfsSize) args.push('--tmpfs-size', plan.tmpfsSize)
  return args
}

function formatLine(line: IdMapLine): string {
  return `${line.inside}:${line.outside}:${line.count}`
}
