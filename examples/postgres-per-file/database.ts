import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { chownSync, existsSync, mkdtempSync, readdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'

/**
 * initdb and postgres refuse to run as root, and a test file is root in its sandbox: the
 * server runs as `nobody` (65534), one of the subordinate ids the sandbox maps. Node's
 * own `spawn(cmd, args, { uid, gid })` is all it takes.
 */
const NOBODY = 65534

/** PostgreSQL's programs: PG_BIN, else Debian's and Ubuntu's place, else the PATH. */
function pgBin(name: string): string {
  if (process.env.PG_BIN) return join(process.env.PG_BIN, name)
  const debian = '/usr/lib/postgresql'
  const versions = existsSync(debian) ? readdirSync(debian).sort((a, b) => Number(b) - Number(a)) : []
  for (const version of versions) if (existsSync(join(debian, version, 'bin', name))) return join(debian, version, 'bin', name)
  if (spawnSync('sh', ['-c', `command -v ${name}`]).status === 0) return name
  throw new Error(`no ${name}: install PostgreSQL (Debian/Ubuntu: apt-get install postgresql) or set PG_BIN to its bin directory`)
}

export interface Database {
  client: pg.Client
  stop(): Promise<void>
}

/**
 * A PostgreSQL of this test file's own, on 127.0.0.1:5432 of its sandbox: its data on
 * the sandbox's private temp dir, gone with the file. Every file gets an empty one.
 */
export async function startDatabase(): Promise<Database> {
  const data = mkdtempSync(join(tmpdir(), 'pgdata-'))
  chownSync(data, NOBODY, NOBODY)
  const asNobody = { uid: NOBODY, gid: NOBODY, env: { ...process.env, HOME: data, LC_ALL: 'C' } }
  const init = spawnSync(pgBin('initdb'), ['-D', data, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8', '--no-locale'], { ...asNobody, encoding: 'utf8' })
  if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr || init.error}`)
  // loopback only, no Unix socket (its default directory belongs to the host's server)
  const server = spawn(pgBin('postgres'), ['-D', data, '-h', '127.0.0.1', '-p', '5432', '-k', '', '-c', 'fsync=off', '-c', 'full_page_writes=off'], { ...asNobody, stdio: ['ignore', 'ignore', 'pipe'] })
  let log = ''
  server.stderr!.setEncoding('utf8').on('data', (d: string) => (log += d))
  const client = await connectWhenReady(server, () => log)
  return {
    client,
    async stop() {
      await client.end()
      server.kill('SIGINT') // a fast shutdown
      await new Promise((resolve) => server.once('exit', resolve))
    },
  }
}

async function connectWhenReady(server: ChildProcess, log: () => string): Promise<pg.Client> {
  for (let attempt = 0; attempt < 200; attempt++) {
    if (server.exitCode !== null) throw new Error(`postgres exited with code ${server.exitCode}:\n${log()}`)
    const client = new pg.Client({ host: '127.0.0.1', port: 5432, user: 'postgres', database: 'postgres' })
    try {
      await client.connect()
      return client
    } catch {
      await client.end().catch(() => {})
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
  throw new Error(`postgres did not accept connections within 20 s:\n${log()}`)
}
