import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, rmSync, symlinkSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, expect, it } from 'vitest'
import { describeSandbox, ROOT } from '../support/sandbox.js'

/** Programs a fresh machine doesn't have: the example must not need them. */
const NOT_INSTALLED = /^(redis-server|redis-cli|initdb|postgres|pg_ctl|musl-gcc)$/

/**
 * A PATH of one directory with a link to every program of this PATH but those
 * NOT_INSTALLED (the first of each name wins, as in a lookup).
 */
function pathWithout(dir: string): string {
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  for (const bin of (process.env.PATH ?? '').split(':').filter(Boolean)) {
    let names: string[] = []
    try {
      names = readdirSync(bin)
    } catch {
      continue
    }
    for (const name of names) {
      if (NOT_INSTALLED.test(name) || existsSync(join(dir, name))) continue
      symlinkSync(join(bin, name), join(dir, name))
    }
  }
  return dir
}

describeSandbox('npm run example on a machine without PostgreSQL, Redis or musl-gcc', () => {
  const dir = join(ROOT, '.e2e', `examples-path-${process.pid}`)
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('passes every example: PostgreSQL comes from node_modules, the Redis file is skipped with a line naming the package', () => {
    const env: NodeJS.ProcessEnv = { ...process.env, PATH: pathWithout(dir), NO_COLOR: '1', CI: 'true' }
    delete env.PG_BIN
    const run = spawnSync(process.execPath, [join(ROOT, 'scripts', 'run-examples.mjs')], { encoding: 'utf8', env, timeout: 400_000 })
    const output = `${run.stdout}${run.stderr}`
    expect(run.status, output).toBe(0)
    expect(output).toMatch(/(\d+) of \1 examples passed/)
    expect(output).toContain('cache.test.ts skipped: no redis-server on the PATH (Debian/Ubuntu: apt-get install redis-server')
    expect(output).toContain('globalsetup-redis skipped: no redis-server on the PATH (Debian/Ubuntu: apt-get install redis-server')
    expect(output).toMatch(/postgres-per-file\s+passed/)
  }, 420_000)
})
