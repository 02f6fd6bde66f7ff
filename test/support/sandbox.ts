import { spawnSync, type SpawnSyncReturns } from 'node:child_process'
import { copyFileSync, linkSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { homedir, tmpdir, userInfo } from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'
import { describe, it } from 'vitest'
import { locateLauncher } from '../../src/engine/launcher-path.js'

export const ROOT = resolve(import.meta.dirname, '..', '..')
export const CLI = join(ROOT, 'dist', 'cli.js')
export const LAUNCHER = locateLauncher()

/** CI sets this: a machine without user namespaces must fail the suite, not skip it. */
export const USERNS_REQUIRED = process.env.VITEST_POOL_ROOTLESS_REQUIRE_USERNS === '1'

/** Why this machine can't create a user namespace, or undefined when it can. */
export const usernsUnavailable: string | undefined = (() => {
  const uid = process.geteuid!()
  const gid = process.getegid!()
  const probe = spawnSync(LAUNCHER, ['--uid-map', `0:${uid}:1`, '--gid-map', `0:${gid}:1`, '--tmpfs', '/tmp', '--', 'true'], { encoding: 'utf8', cwd: '/' })
  return probe.status === 0 ? undefined : `user namespaces unavailable: ${probe.stderr.trim() || probe.error?.message}`
})()

/**
 * `describe` for tests that need real namespaces: skipped with the reason where the
 * kernel can't, turned into a failing test where USERNS_REQUIRED says it must.
 */
export function describeSandbox(name: string, body: () => void): void {
  if (!usernsUnavailable) {
    describe(name, body)
  } else if (USERNS_REQUIRED) {
    describe(name, () => {
      it('needs user namespaces (VITEST_POOL_ROOTLESS_REQUIRE_USERNS=1)', () => {
        throw new Error(usernsUnavailable)
      })
    })
  } else {
    describe.skip(`${name} (skipped: ${usernsUnavailable})`, body)
  }
}

/** Runs `vitest-pool-rootless exec [flags] -- cmd...` and returns what it did. */
export function exec(flags: string[], command: string[], options: { cwd?: string; input?: string } = {}): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [CLI, 'exec', ...flags, '--', ...command], {
    encoding: 'utf8',
    cwd: options.cwd ?? ROOT,
    input: options.input,
    timeout: 30_000,
  })
}

/** The caller's ranges in a subid file, read independently of src/plan (owner by name or uid). */
export function subidRangesOf(file: string): Array<[number, number]> {
  let text = ''
  try {
    text = readFileSync(file, 'utf8')
  } catch {}
  let name: string | undefined
  try {
    name = userInfo().username
  } catch {}
  const uid = String(process.geteuid!())
  return text
    .split('\n')
    .map((l) => l.trim().split(':'))
    .filter((f) => f.length === 3 && (f[0] === name || f[0] === uid))
    .map((f) => [Number(f[1]), Number(f[2])] as [number, number])
    .sort((a, b) => a[0] - b[0])
}

export function mountTable(): string[] {
  // mount id and parent id change nothing a user sees; compare mount points and sources
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .trim()
    .split('\n')
    .map((line) => line.split(' ').slice(3, 5).join(' '))
    .sort()
}

/**
 * A home directory outside the temp dir with `node` where nvm puts it
 * (`.nvm/versions/node/vX/bin/node`, a hard link, or a copy across file systems) and a
 * file beside it that a tmpfs on the home must hide: a teammate's machine whose node
 * lives under the directory a test hides.
 */
export function homeWithNode(node: string): { home: string; node: string; secret: string } {
  // /tmp and the temp dir always get a tmpfs, and a tmpfs inside them is refused: a
  // checkout there (a CI's clone under /tmp) puts the home under the user's own instead
  const parent = [ROOT, homedir()].map((dir) => (dir === ROOT ? join(dir, '.e2e') : join(dir, '.cache', 'vitest-pool-rootless-e2e'))).find((dir) => !underTmp(dir))
  if (!parent) throw new Error(`homeWithNode: neither ${ROOT} nor ${homedir()} lies outside /tmp and the temp dir`)
  mkdirSync(parent, { recursive: true })
  const home = mkdtempSync(join(parent, 'home-'))
  const linked = join(home, '.nvm', 'versions', 'node', 'v0.0.0', 'bin', 'node')
  mkdirSync(dirname(linked), { recursive: true })
  try {
    linkSync(node, linked)
  } catch {
    copyFileSync(node, linked)
  }
  const secret = join(home, 'secret.txt')
  writeFileSync(secret, 'hidden by the tmpfs\n')
  return { home, node: linked, secret }
}

function underTmp(path: string): boolean {
  return ['/tmp', tmpdir()].some((tmp) => {
    const rel = relative(tmp, path)
    return rel === '' || (!rel.startsWith('..') && !rel.startsWith('/'))
  })
}
