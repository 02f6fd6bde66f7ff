import { spawnSync } from 'node:child_process'
import { connect, createServer, isIP, type AddressInfo, type Server } from 'node:net'
import { RootlessOptionError } from '../plan/errors.js'
import { isRange, isService, rangeForwards, type NamedService, type PortForward } from '../plan/host-ports.js'
import type { ResolvedSandboxOptions } from '../plan/options.js'
import { hostListeningPorts } from './listening-ports.js'

/** A named service with the address the host resolved its name to. */
export interface ResolvedService extends NamedService {
  address: string
}

/**
 * Resolves host names as the host does (nsswitch: /etc/hosts, DNS…): per name its first
 * address, and every address it has (`addresses`, where the resolver gave them), or why not.
 */
export type LookUp = (names: string[]) => Array<{ address: string; addresses?: string[] } | { error: string }>

/**
 * `dns.lookup` of each name, from a child process: a run opens synchronously (its errors
 * must stop the config load), and the resolver must be the host's own -- the one a test
 * would have used without the sandbox.
 */
export const lookUpInChild: LookUp = (names) => {
  const script = `Promise.all(process.argv.slice(1).map((n) => require('dns').promises.lookup(n, { all: true }).then((r) => ({ address: r[0].address, addresses: r.map((a) => a.address) }), (e) => ({ error: e.code || e.message })))).then((r) => process.stdout.write(JSON.stringify(r)))`
  const result = spawnSync(process.execPath, ['-e', script, ...names], { encoding: 'utf8', timeout: 30_000 })
  if (result.status !== 0) return names.map(() => ({ error: result.error?.message ?? (result.stderr.trim() || `exit ${result.status}`) }))
  return JSON.parse(result.stdout) as Array<{ address: string } | { error: string }>
}

/**
 * The host's address of each named service, resolved once when the run starts; a name
 * the host can't resolve is one error naming the option (`hostPorts` or `--host-port`).
 */
export function resolveServices(services: readonly NamedService[], option: string, lookUp: LookUp = lookUpInChild): ResolvedService[] {
  if (services.length === 0) return []
  const answers = lookUp(services.map((s) => s.name))
  return services.map((service, i) => {
    const answer = answers[i]!
    if ('error' in answer) {
      throw new RootlessOptionError(
        option,
        `${service.name}:${service.port}`,
        `names a service, but this machine can't resolve "${service.name}" (${answer.error}): give the name the host reaches the service by (a CI job's service alias, a docker-compose service the job's container is attached to), or the host port as a number`,
      )
    }
    return { ...service, address: answer.address }
  })
}

/** True for the host's 127.0.0.1 and ::1, which the forwarder reaches by itself. */
const isForwarderLoopback = (address: string) => address === '127.0.0.1' || address === '::1'

/**
 * How the sandboxes reach the named services: a service on the host's own loopback is
 * forwarded like a `hostPorts` port; one elsewhere (a CI service container, a compose
 * service) through a relay of the runner's on the host's loopback, since the forwarder
 * connects only to the host's loopback. Inside, each name resolves to 127.0.0.1 (the
 * private hosts file), so `NAME:PORT` there is `127.0.0.1:PORT`.
 */
export class ServiceRelays {
  private readonly servers: Server[] = []
  private started: Promise<PortForward[]> | undefined

  constructor(private readonly services: readonly ResolvedService[]) {}

  /** The forwards of the services, relays started on first call. */
  forwards(): Promise<PortForward[]> {
    return (this.started ??= Promise.all(this.services.map((s) => (isForwarderLoopback(s.address) ? { inside: s.port, host: s.port } : this.relay(s)))))
  }

  /** The host ports the relays listen on: the runner's, but not for tests to reach by number. */
  ports(): number[] {
    return this.servers.map((server) => (server.address() as AddressInfo | null)?.port ?? 0).filter((port) => port > 0)
  }

  close(): void {
    for (const server of this.servers.splice(0)) server.close()
  }

  private relay(service: ResolvedService): Promise<PortForward> {
    const server = createServer({ noDelay: true }, (inside) => {
      const host = connect({ host: service.address, port: service.port, family: isIP(service.address), noDelay: true })
      inside.pipe(host).pipe(inside)
      // a service that goes away resets the sandbox's connection, as it would reset a direct one
      host.on('error', () => inside.resetAndDestroy())
      inside.on('error', () => host.destroy())
    })
    this.servers.push(server)
    // a relay waits for connections, not for the run: it never keeps the runner alive
    server.unref()
    return new Promise((resolve, reject) => {
      server.once('error', reject)
      server.listen(0, '127.0.0.1', () => resolve({ inside: service.port, host: (server.address() as AddressInfo).port }))
    })
  }
}

/** `hosts` with each service's name on the sandbox's loopback, where `hosts` doesn't name it itself. */
export function withServiceNames(hosts: ReadonlyMap<string, string[]>, services: readonly NamedService[]): Map<string, string[]> {
  const merged = new Map(hosts)
  for (const { name } of services) if (!merged.has(name)) merged.set(name, ['127.0.0.1'])
  return merged
}

/**
 * The forwards of one sandbox started now by a process that starts one (the CLI's
 * `exec`): named services (their relays live until `close`) and the served ports of
 * ranges. Resolves the names first, synchronously: a bad one throws here.
 */
export function hostForwardsOnce(options: ResolvedSandboxOptions, option: string, lookUp?: LookUp): { forwards: Promise<PortForward[]>; close(): void } {
  if (options.network === 'host') return { forwards: Promise.resolve([]), close() {} }
  const relays = new ServiceRelays(resolveServices(options.hostPorts.filter(isService), option, lookUp))
  const ranges = options.hostPorts.filter(isRange)
  const forwards = relays.forwards().then((services) => [...services, ...(ranges.length > 0 ? rangeForwards(ranges, hostListeningPorts().filter((port) => !relays.ports().includes(port))) : [])])
  return { forwards, close: () => relays.close() }
}
