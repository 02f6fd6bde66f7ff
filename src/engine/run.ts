import { fork, type ChildProcess, type Serializable } from 'node:child_process'
import type { Readable, Writable } from 'node:stream'
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import { FORWARDED_PORTS_ENV, LEAKS_ENV, NETWORK_ENV, RESET_ENV, SANDBOXED_ENV, type LeakChecks } from '../wire/wire.js'
import { scrubEnv } from '../plan/env.js'
import { SandboxError } from '../plan/errors.js'
import type { ResolvedSandboxOptions } from '../plan/options.js'
import { realpathOrSelf } from '../plan/paths.js'
import { createResetPlan } from '../plan/plan.js'
import { watchExit, type ChildExit } from './exit.js'
import { hostListeningPorts, listeningNow, ownListeningPorts } from './listening-ports.js'
import { onHostPortRegistered, registeredForwards } from './forwarded-at-run-time.js'
import { isForward, isRange, isService, rangeForwards, type PortForward } from '../plan/host-ports.js'
import { resolveServices, ServiceRelays, type LookUp } from './services.js'
import { ideDebuggerPaths } from './ide-debugger.js'
import { PublishedPort, type PublishAddress } from './published-port.js'
import { findForeignOwned, foreignIds, foreignOwnedReport, OUTSIDE_LIMITS, outsideRoots } from './foreign-files.js'
import { holdUserNamespace, type HeldUserNamespace } from './holder.js'
import { PACKAGE_ROOT } from './launcher-path.js'
import { prepareSandbox, type PreparedSandbox } from './sandbox.js'
import { resolveEgressAllow } from './egress.js'
import { probeFailure, probeSandbox, ProbeVerdicts } from './probe.js'
import { SparePool } from './spares.js'
import { removeIfEmpty, writablePaths } from './writable.js'

/**
 * A launched child's extra fds, after stdin/out/err and the IPC channel: the launcher's
 * status pipe (a byte there = a setup step failed), then the warm user namespace.
 */
const STATUS_FD_INDEX = 4
/** The launcher's limit of `--forward`s (MAX_LIST in native/sandbox.h). */
const MAX_FORWARDS = 64
const USERNS_FD_INDEX = 5
/** A reused worker's: the host's channel to its forwarder (ports registered later). */
const FORWARD_HOST_FD_INDEX = 6

/**
 * What every sandboxed process starts with, before the runner's entry: src/inside/entry.ts
 * as built (also when this module runs from the TypeScript sources, as in this repo's own
 * tests). It imports from dist/wire, so the whole dist directory is kept visible.
 */
const DIST = join(PACKAGE_ROOT, 'dist')
const SANDBOX_ENTRY = join(DIST, 'inside', 'entry.js')

/** What one sandboxed process runs; equal specs can share spares. */
export interface LaunchSpec {
  /** A Node entry point, forked with an IPC channel (after inside/entry.ts). */
  entrypoint: string
  execArgv: string[]
  env: Partial<NodeJS.ProcessEnv>
  /** Paths the process reads that must stay visible under a tmpfs. */
  needs: string[]
  /** With `writable` set: the paths that stay writable (`SandboxRun.writablePaths`). */
  writable?: string[]
  /** The process is reused across test files: it gets the plan to reset its sandbox. */
  reusable: boolean
  /** How messages cross the IPC channel (as in `child_process.fork`). @default 'advanced' */
  serialization?: 'json' | 'advanced'
  /**
   * A first message for the process, sent as soon as it starts -- before it is handed
   * out, so a spare does its setup while it waits. `key` stands for the message when
   * spares are matched to specs (a message can be large): equal keys, equal messages.
   */
  greeting?: { key: string; message: unknown }
  /**
   * The runner's own listening ports (and its children's), forwarded into the sandbox:
   * `SandboxRun.launch` sets it when `runnerPorts` is on. Adapters leave it out.
   */
  runnerPorts?: number[]
  /**
   * Forwards decided when the sandbox starts: named services, `forwardHostPort()`'s,
   * the served ports of `hostPorts` ranges. `SandboxRun.launch` sets it.
   */
  hostForwards?: PortForward[]
  /**
   * A port of the process's own loopback reached from the host at the run's published
   * address (`SandboxRun.publish`): where its inspector listens. Such a process gets no
   * spares (a debugger must find the one that runs the next file).
   */
  publish?: number
}

/** Run-wide settings beyond the sandbox itself. */
export interface RunSettings {
  /**
   * Every sandbox of the run joins one user namespace, mapped once, that a holder
   * process makes and keeps (engine/holder.ts), instead of mapping ids itself.
   */
  heldUserNamespace: boolean
  /** Forward the ports this process listens on when a sandbox starts (`runnerPorts`). */
  runnerPorts: boolean
}

/** The settings every adapter uses: `runnerPorts` as configured, the rest from the env. */
export function runSettings(runnerPorts: boolean): RunSettings {
  // an escape hatch for debugging and for the benchmark's side-by-side runs
  return { heldUserNamespace: process.env.VITEST_POOL_ROOTLESS_WARM_USERNS !== '0', runnerPorts }
}

/** What a run does to the machine; tests inject fakes (see test/unit/run.test.ts). */
export interface RunDeps {
  /** `egressAllow`: the `egress` list as ranges, its names resolved. */
  prepare(options: ResolvedSandboxOptions, egressAllow: readonly string[]): PreparedSandbox
  /** Builds one sandbox and throws a SandboxError if it can't. */
  probe(sandbox: PreparedSandbox): void
  /** Probes that passed on this machine since it booted (engine/probe.ts); without it every open() probes. */
  verdicts?: Pick<ProbeVerdicts, 'key' | 'passed' | 'remember' | 'forget'>
  holdUserNamespace(sandbox: PreparedSandbox): Promise<HeldUserNamespace>
  /**
   * Starts one sandboxed process. With `forwardHost`, its forwarder takes forwards added
   * later from the host, written as `INSIDE:HOST` lines to the child's stdio[6].
   */
  fork(sandbox: PreparedSandbox, userns: HeldUserNamespace | undefined, spec: LaunchSpec, env: NodeJS.ProcessEnv, publish?: { port: number; socket: string }, forwardHost?: boolean): ChildProcess
  /** Resolves `hostPorts` service names and `egress` names on the host (default: `dns.lookup`, in a child). */
  lookUp?: LookUp
}

/** Statuses a run goes through; `closed` runs reopen on the next launch. */
interface OpenRun {
  kind: 'open'
  sandbox: PreparedSandbox
  /** Set once the warm user namespace exists (started by `open()`); forks made before that map ids themselves. */
  userns?: HeldUserNamespace
  holding?: Promise<void>
  /** The key of the remembered verdict this run skipped its probe on, until a sandbox fails. */
  unverified?: string
  /** How the sandboxes reach `hostPorts`' named services. */
  services: ServiceRelays
  /** Stops passing `forwardHostPort()`'s registrations to running workers. */
  stopListening: () => void
}
type RunPhase = OpenRun | { kind: 'closed' }

const exits = new WeakMap<ChildProcess, Promise<ChildExit>>()

/** Notes how a process `RunDeps.fork` started ends, for `exitOf` (fakes in tests too). */
export function trackExit(child: ChildProcess, exit: Promise<ChildExit>): void {
  exits.set(child, exit)
}

/**
 * How a process started by `SandboxRun.launch` ended: its exit code or signal, and the
 * launcher step that failed if the sandbox could not be built around it.
 */
export function exitOf(child: ChildProcess): Promise<ChildExit> {
  const exit = exits.get(child)
  if (!exit) throw new Error('vitest-pool-rootless: exitOf() is for processes started by SandboxRun.launch')
  return exit
}

/**
 * The per-run state of one sandbox configuration, shared by every process a runner
 * starts in it: the launcher and id maps, the hosts file in a private state directory,
 * the warm user namespace, and booted spares. Runner-agnostic: a Vitest or Jest adapter
 * hands it an entry point and gets a sandboxed child back.
 *
 * Lifecycle: `open()` proves once, synchronously, that a sandbox can be built here (so a
 * machine that can't fails with one clear error while the config loads, before any
 * worker exists); `close()` releases the namespace fd, the spares and the state dir. A
 * closed run reopens on its next launch.
 */
export class SandboxRun {
  private phase: RunPhase = { kind: 'closed' }
  private readonly spares = new SparePool((spec) => this.forkNow(spec))
  /** The projects whose files tests may have chowned: looked through when the run closes. */
  private readonly projects = new Set<string>()
  /** When the run opened: a path outside the projects changed since is this run's. */
  private openedAt = 0
  private saidRangeLimit = false
  /** Where the host reaches the workers' debugger, once a runner asked (`publish`). */
  private published?: PublishedPort
  private publishedSockets = 0
  /** The running reused workers' channels to their forwarders (see `forkNow`). */
  private readonly forwarderChannels = new Set<Writable>()
  /** Directories `writablePaths` made: removed when the run closes if nothing was written there. */
  private readonly madeWritable = new Set<string>()

  constructor(
    readonly options: ResolvedSandboxOptions,
    readonly settings: RunSettings,
    private readonly deps: RunDeps = launcherDeps,
  ) {}

  /**
   * Prepares the run and builds one real sandbox around `node --version`: the plan a
   * worker gets, and proof that the node binary is reachable inside it. Throws a
   * `SandboxError` with the doctor's words for this machine when it can't. Idempotent.
   */
  open(): void {
    if (this.phase.kind === 'open') return
    // a name the host can't resolve stops the run here, before anything is built
    const services = new ServiceRelays(resolveServices(this.options.hostPorts.filter(isService), 'hostPorts', this.deps.lookUp))
    this.openedAt = Date.now()
    const egressAllow = resolveEgressAllow(this.options.egress, 'egress', this.deps.lookUp)
    const sandbox = this.deps.prepare(this.options, egressAllow)
    const { verdicts } = this.deps
    const key = verdicts?.key(this.options, sandbox.launcher)
    // this machine built this sandbox since it booted, with these settings: no probe
    // (each sandbox is checked as it starts: see watchUnverified)
    const unverified = key && verdicts!.passed(key) ? key : undefined
    if (!unverified) {
      try {
        this.deps.probe(sandbox)
      } catch (error) {
        sandbox.cleanup()
        throw error
      }
      if (key) verdicts!.remember(key)
    }
    // said only once the sandbox is known to work: a failed probe's message says it all
    if (sandbox.idMap.warning) process.stderr.write(`${sandbox.idMap.warning}\n`)
    // a port registered once workers run reaches each reused one from its next reset
    const stopListening = onHostPortRegistered((forward) => {
      for (const channel of this.forwarderChannels) channel.write(`${forward.inside}:${forward.host}\n`)
    })
    const phase: OpenRun = { kind: 'open', sandbox, services, unverified, stopListening }
    this.phase = phase
    // made now, while the runner goes on starting up (Vitest's plugins, globbing, its
    // first worker's options): the first launch finds it ready instead of waiting for a
    // launcher to map ids. The holder never holds the run open and ends with this process.
    if (this.settings.heldUserNamespace) this.startHolding(phase)
  }

  private startHolding(phase: OpenRun): Promise<void> {
    return (phase.holding ??= this.holdUserNamespace(phase.sandbox).then((userns) => void (phase.userns = userns)))
  }

  /** The run's private state directory (hosts file, generated files). */
  get stateDir(): string {
    return this.openPhase().sandbox.stateDir
  }

  /**
   * A started, sandboxed process for `spec`: a booted spare if one waits, else a new
   * one. Either way, `spares` more are kept booted for the next files.
   */
  async launch(spec: LaunchSpec, spares: number): Promise<ChildProcess> {
    const phase = this.openPhase()
    if (spec.publish !== undefined) {
      if (!this.published) throw new Error('vitest-pool-rootless: LaunchSpec.publish needs SandboxRun.publish() first')
      await this.published.listen()
      // a spare would take the debugger's connections from the worker that runs the file
      spares = 0
    }
    if (this.settings.heldUserNamespace) await this.startHolding(phase)
    // a globalSetup server started since the spares booted makes them no match: they
    // would not reach it
    if (this.options.network !== 'host') spec = { ...spec, ...(await this.forwardsNow(phase, spec.reusable)) }
    const child = (spec.publish === undefined ? this.spares.take(spec) : undefined) ?? this.forkNow(spec)
    this.spares.fill(spec, spares)
    return child
  }

  /**
   * What a sandbox starting now reaches of the host beyond the fixed `hostPorts`: the
   * named services, the ports `forwardHostPort()` registered, the served ports of the
   * ranges, and (`runnerPorts`) the ports the runner and its children listen on -- not
   * the services' relays, which are reached by the services' own ports. The launcher
   * takes at most MAX_FORWARDS: a range's ports beyond that are left out, said once.
   * (They are the relay's fallback: where connects go straight to the host, the launcher
   * gets the ranges themselves and every port of them leads out, served now or later.)
   */
  private async forwardsNow(phase: OpenRun, reusable: boolean): Promise<Pick<LaunchSpec, 'hostForwards' | 'runnerPorts'>> {
    const services = await phase.services.forwards()
    const relays = new Set(phase.services.ports())
    const ranges = this.options.hostPorts.filter(isRange)
    const listening = ranges.length > 0 || this.settings.runnerPorts ? listeningNow(phase.sandbox.addon) : []
    const inRanges = ranges.length > 0 ? rangeForwards(ranges, hostListeningPorts(listening).filter((port) => !relays.has(port))) : []
    const fixed = this.options.hostPorts.filter(isForward).length
    const room = Math.max(0, MAX_FORWARDS - fixed - services.length - registeredForwards().length)
    if (inRanges.length > room && !this.saidRangeLimit) {
      this.saidRangeLimit = true
      // only a fresh sandbox per file in a pid namespace can connect straight to the host
      const relayOnly = !this.options.pidNamespace || reusable
      const where = relayOnly ? '' : ' where connects go through the relay (Linux before 5.14, a sandbox in a sandbox)'
      process.stderr.write(`vitest-pool-rootless: \`hostPorts\` ranges: ${inRanges.length} host ports in them are served, a sandbox forwards at most ${MAX_FORWARDS} ports in all${where}; ports from ${inRanges[room]?.inside} up are left out. Narrow the range.\n`)
    }
    const hostForwards = [...services, ...registeredForwards(), ...inRanges.slice(0, room)]
    // (not the debugger's port this process listens on for the sandbox: inside, the worker's own)
    const runnerPorts = this.settings.runnerPorts ? ownListeningPorts(listening).filter((port) => !relays.has(port) && port !== this.published?.address.port) : undefined
    return { hostForwards, runnerPorts }
  }

  /**
   * Notes the test projects' roots: when the run closes, files in them that tests gave
   * to a subordinate id (which the user can't touch) are named, with the command that
   * gives them back.
   */
  watchProjects(roots: Iterable<string>): void {
    for (const root of roots) this.projects.add(root)
  }

  /**
   * Makes `address` on the host lead to the port `LaunchSpec.publish` names inside each
   * worker that asks (a debugger's way in: engine/published-port.ts). Listens at the
   * first such launch; `option` names what asked, for the error when the port is taken.
   * One address per run: a second call keeps the first.
   */
  publish(address: PublishAddress, option: string): void {
    this.published ??= new PublishedPort(address, option)
  }

  /**
   * With `writable` set, what stays writable of a read-only host for the project at
   * `projectRoot`: the entries, and `runnerPaths` the runner itself writes from the
   * worker (snapshot directories, caches); missing ones are made (engine/writable.ts).
   * Undefined without `writable`.
   */
  writablePaths(projectRoot: string, runnerPaths: readonly string[] = []): string[] | undefined {
    return this.options.writable ? writablePaths(this.options.writable, projectRoot, runnerPaths, this.madeWritable) : undefined
  }

  /** Stops the spares and releases the user namespace and the state dir. Idempotent. */
  async close(): Promise<void> {
    const phase = this.phase
    if (phase.kind === 'closed') return
    this.phase = { kind: 'closed' }
    this.spares.killAll()
    phase.stopListening()
    phase.services.close()
    this.published?.close()
    this.published = undefined
    await phase.holding
    phase.userns?.close()
    phase.sandbox.cleanup()
    removeIfEmpty(this.madeWritable)
    this.reportForeignOwned(phase.sandbox)
  }

  private reportForeignOwned(sandbox: PreparedSandbox): void {
    // root can take back whatever its tests chowned; a user can't
    const uid = process.geteuid?.() ?? 0
    if (uid === 0 || this.projects.size === 0) return
    const { uidMap = [], gidMap = [] } = sandbox.idMap
    const [uids, gids] = [foreignIds(uidMap, uid), foreignIds(gidMap, process.getegid!())]
    const found = findForeignOwned([...this.projects], uids, gids)
    if (found.length > 0) process.stderr.write(foreignOwnedReport(found))
    // outside the projects, where the host keeps what tests write (the home, /var/tmp,
    // /dev/shm): a few levels deep, and only what changed during the run -- a
    // subordinate id's files from before may be another tool's (rootless Podman's storage)
    const outside = findForeignOwned(outsideRoots(), uids, gids, { ...OUTSIDE_LIMITS, changedSince: this.openedAt - 1000, skip: [...this.projects] })
    if (outside.length > 0) process.stderr.write(foreignOwnedReport(outside, 'outside the project'))
  }

  private openPhase(): OpenRun {
    this.open()
    return this.phase as OpenRun
  }

  private async holdUserNamespace(sandbox: PreparedSandbox): Promise<HeldUserNamespace | undefined> {
    try {
      return await this.deps.holdUserNamespace(sandbox)
    } catch (error) {
      // fresh namespaces work (the probe built one): say why this run is slower, once
      process.stderr.write(`${(error as Error).message}\nvitest-pool-rootless: mapping ids per worker instead (slower, same sandbox).\n`)
      return undefined
    }
  }

  /**
   * A run that skipped its probe on a remembered verdict: a sandbox that fails to build
   * now means the machine changed since. Said once, in the probe's words (the launcher's
   * own line is in the worker's output); the verdict is forgotten, so the next run
   * probes while its config loads.
   */
  private watchUnverified(phase: OpenRun, child: ChildProcess): void {
    const key = phase.unverified!
    void exits.get(child)?.then((exit) => {
      if (exit.step === undefined || phase.unverified !== key) return
      phase.unverified = undefined
      this.deps.verdicts?.forget(key)
      const { message } = probeFailure(exit.code, exit.signal, '')
      process.stderr.write(`${message}\n(A sandbox with these options was built on this machine since it booted: something changed since. The next run checks while its config loads.)\n`)
    })
  }

  private forkNow(spec: LaunchSpec): ChildProcess {
    const { sandbox, userns } = this.openPhase()
    // a path reached through a symlink is kept as written and as it resolves: either
    // may lie under a tmpfs target (a project root symlinked into /tmp, or out of it)
    spec = { ...spec, needs: [...new Set(spec.needs.flatMap((path) => [path, realpathOrSelf(path)]))] }
    // tells `vitest-pool-rootless/runtime` that it runs in a sandbox
    let env: Partial<NodeJS.ProcessEnv> = { ...scrubEnv(spec.env, this.options.dropEnv), [SANDBOXED_ENV]: '1' }
    if (this.options.network !== 'host') {
      // words for what the sandbox's own network causes: a forwarded port taken, and (isolated: no DNS) an unknown name
      const forwards = sandbox.plan({ runnerPorts: spec.runnerPorts, hostForwards: spec.hostForwards }).forwards
      env[FORWARDED_PORTS_ENV] = forwards.map((f) => f.inside).join(',')
      env[NETWORK_ENV] = this.options.network
    }
    spec = { ...spec, needs: [...spec.needs, DIST, ...ideDebuggerPaths(spec.env)] }
    let publish: { port: number; socket: string } | undefined
    let forget: (() => void) | undefined
    if (spec.publish !== undefined && this.published && this.options.network !== 'host') {
      publish = { port: spec.publish, socket: join(sandbox.stateDir, `publish-${++this.publishedSockets}.sock`) }
      forget = this.published.add(publish.socket)
    }
    const leaks = env[LEAKS_ENV]
    if (leaks) {
      // the leak watch lists sockets through the addon
      spec = { ...spec, needs: [...spec.needs, sandbox.addon] }
      env = { ...env, [LEAKS_ENV]: JSON.stringify({ ...(JSON.parse(leaks) as LeakChecks), addon: sandbox.addon }) }
    }
    if (spec.reusable) {
      // read by inside/reset.ts, before each file after the first: the same mounts the
      // launcher builds, from the same plan, by the same C code (the addon)
      spec = { ...spec, needs: [...spec.needs, sandbox.addon] }
      const plan = createResetPlan(sandbox.plan({ needs: spec.needs, writable: spec.writable, runnerPorts: spec.runnerPorts, hostForwards: spec.hostForwards, publish }), sandbox.hosts, sandbox.addon)
      env = { ...env, [RESET_ENV]: JSON.stringify(plan) }
    }
    // a worker that resets in place into a fresh network of its own can take ports the
    // run registers later (forwardHostPort() after it started); one with a debugger
    // published keeps its first network
    const forwardHost = spec.reusable && this.options.network !== 'host' && !publish
    const child = this.deps.fork(sandbox, userns, spec, env, publish, forwardHost)
    const channel = forwardHost ? ((child.stdio as unknown as Array<Writable | null | undefined> | undefined)?.[FORWARD_HOST_FD_INDEX]) : undefined
    if (channel) {
      // a worker gone: what was written to it doesn't matter any more
      channel.on('error', () => {})
      this.forwarderChannels.add(channel)
      child.once('exit', () => this.forwarderChannels.delete(channel))
    }
    const phase = this.phase as OpenRun
    if (phase.unverified) this.watchUnverified(phase, child)
    if (publish) {
      const socket = publish.socket
      child.once('exit', () => {
        forget?.()
        rmSync(socket, { force: true })
      })
    }
    return child
  }
}

/** The real thing: the launcher binary, forking Node entry points through it. */
export const launcherDeps: RunDeps = {
  prepare: (options, egressAllow) => prepareSandbox(options, undefined, egressAllow),
  probe: probeSandbox,
  verdicts: new ProbeVerdicts(),
  holdUserNamespace: (sandbox) => holdUserNamespace(sandbox.launcher, sandbox.idMap, sandbox.networksSocket, sandbox.egress),
  fork(sandbox, userns, spec, env, publish, forwardHost) {
    const args = sandbox.args({ needs: spec.needs, writable: spec.writable, runnerPorts: spec.runnerPorts, hostForwards: spec.hostForwards, publish, newSession: true, usernsFd: userns ? USERNS_FD_INDEX : undefined, networksSocket: userns?.networksSocket, statusFd: STATUS_FD_INDEX, forwardHostFd: forwardHost ? FORWARD_HOST_FD_INDEX : undefined })
    const child = fork(SANDBOX_ENTRY, [spec.entrypoint], {
      execPath: sandbox.launcher,
      // fork() runs `execPath ...execArgv SANDBOX_ENTRY entrypoint`: the launcher's plan, then node
      execArgv: [...args, '--', process.execPath, ...spec.execArgv],
      env,
      stdio: ['pipe', 'pipe', 'pipe', 'ipc', 'pipe', userns ? userns.fd : 'ignore', ...(forwardHost ? ['pipe' as const] : [])],
      serialization: spec.serialization ?? 'advanced',
    })
    trackExit(child, watchExit(child, child.stdio[STATUS_FD_INDEX] as Readable | null))
    // a process that dies before reading it is reported by its exit, not by this send
    if (spec.greeting) child.send(spec.greeting.message as Serializable, () => {})
    return child
  },
}
