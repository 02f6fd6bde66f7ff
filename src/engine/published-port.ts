import { spawnSync } from 'node:child_process'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { RootlessOptionError } from '../plan/errors.js'

/** Where a sandboxed worker's debugger is reached from the host: the user's address. */
export interface PublishAddress {
  host: string
  port: number
}

/**
 * A port of the sandboxes' own loopback reached from the host: what a debugger needs, the
 * inspector of a worker listening on its private 127.0.0.1. The host listens where the
 * user asked (`--inspect-brk=127.0.0.1:9229`); each worker's launcher makes a Unix socket
 * in the run's state dir that a process in the sandbox's network connects to the worker's
 * port (native/publish.c). A client goes to the newest worker still running -- with
 * `--no-file-parallelism` (or Jest's `-i`) the one about to run the next file -- and a
 * client that comes between two workers waits in the listen backlog for the next.
 */
export class PublishedPort {
  private server?: Server
  private listening?: Promise<void>
  /** Workers' Unix sockets, oldest first. */
  private readonly targets: string[] = []

  constructor(
    readonly address: PublishAddress,
    /** How the option that asked for it is spelled, for the error when the port is taken. */
    private readonly option: string,
  ) {}

  /** Listens on the host (once); rejects with the one error when the address is taken. */
  listen(): Promise<void> {
    this.listening ??= new Promise((resolve, reject) => {
      const server = createServer((client) => this.route(client))
      server.once('error', (error) => reject(portTaken(this.option, this.address, error)))
      server.listen({ host: this.address.host, port: this.address.port }, () => {
        // Vitest's or Jest's own exit must not wait for a debugger that never comes
        server.unref()
        resolve()
      })
      this.server = server
    })
    return this.listening
  }

  /** A worker's socket, newest last; the returned function forgets it (the worker ended). */
  add(socket: string): () => void {
    this.targets.push(socket)
    return () => {
      const index = this.targets.indexOf(socket)
      if (index >= 0) this.targets.splice(index, 1)
    }
  }

  close(): void {
    this.server?.close()
    this.server = undefined
    this.listening = undefined
  }

  private route(client: Socket, tried = 0): void {
    const socket = this.targets[this.targets.length - 1 - tried]
    if (!socket) return void client.destroy()
    const inside = connect(socket)
    let connected = false
    inside.once('connect', () => {
      connected = true
      client.pipe(inside).pipe(client)
      const end = () => (client.destroy(), inside.destroy())
      client.once('error', end).once('close', end)
      inside.once('error', end).once('close', end)
    })
    // a worker that just ended: the one before it, if any
    inside.once('error', () => (connected ? undefined : this.route(client, tried + 1)))
  }
}

/**
 * Throws the one error for a debugger address the host can't listen on, checked while
 * the config loads, before any worker waits for a debugger there. A separate process
 * tries it: Node listens only asynchronously.
 */
export function checkPublishable(address: PublishAddress, option: string): void {
  const script = 'const s=require("net").createServer().once("error",e=>{process.stdout.write(e.code||e.message);process.exit(1)});s.listen({host:process.argv[1],port:+process.argv[2]},()=>s.close())'
  const result = spawnSync(process.execPath, ['-e', script, address.host, String(address.port)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
  if (result.status !== 0) throw portTaken(option, address, { code: result.stdout || 'unknown error' })
}

function portTaken(option: string, { host, port }: PublishAddress, error: unknown): RootlessOptionError {
  const code = (error as NodeJS.ErrnoException).code ?? String(error)
  const why = code === 'EADDRINUSE' ? `something on the host already listens on ${host}:${port}` : `the host can't listen on ${host}:${port} (${code})`
  return new RootlessOptionError(
    option,
    `${host}:${port}`,
    `expects an address the host can listen on, where the sandboxed worker's inspector is published; ${why}: stop it, or give another port (${option}=${host}:${port + 1})`,
  )
}
