import { execFileSync, spawnSync } from 'node:child_process'
import { accessSync, constants, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'

const PLATFORM = `${process.platform}-${process.arch}`

/** What a user's `npm install` unpacks, without npm: the tarball's `package/` folder. */
describe('the packed package', () => {
  let dir: string
  let pkg: string
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'vpr-install-'))
    execFileSync('tar', ['-xzf', inject('tarball'), '-C', dir])
    pkg = join(dir, 'package')
  })
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  const locate = (env: Record<string, string>) =>
    spawnSync(process.execPath, ['--input-type=module', '-e', `import(${JSON.stringify(join(pkg, 'dist/engine/launcher-path.js'))}).then((m) => console.log(m.locateLauncher()))`], {
      encoding: 'utf8',
      env: { ...process.env, ...env },
    })

  it('ships the built launcher and addon (x64 and arm64), their C source and the compiled JS; no os field locks anyone out', () => {
    accessSync(join(pkg, 'native', 'build', PLATFORM, 'launcher'), constants.X_OK)
    const required = process.env.VITEST_POOL_ROOTLESS_REQUIRE_ARM64 === '1'
    for (const target of ['linux-x64', ...(required ? ['linux-arm64'] : [])]) {
      accessSync(join(pkg, 'native', 'build', target, 'launcher'), constants.X_OK)
      expect(existsSync(join(pkg, 'native', 'build', target, 'rootless.node')), target).toBe(true)
    }
    const manifest = JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')) as Record<string, unknown>
    expect(manifest.os).toBeUndefined()
    expect(Object.keys((manifest.scripts ?? {}) as object).filter((name) => /^(pre|post)?(install|prepare)$/.test(name))).toEqual([])
    expect(Object.keys((manifest.dependencies ?? {}) as object)).toEqual([])
    for (const file of ['native/launcher.c', 'native/addon.c', 'native/plan.c', 'native/mounts.c', 'native/ops.c', 'native/served.c', 'native/sandbox.h', 'native/steps.h', 'scripts/build-native.mjs', 'dist/index.js', 'dist/index.d.ts', 'dist/cli.js', 'dist/jest/index.cjs', 'dist/runtime.cjs']) {
      expect(existsSync(join(pkg, file)), file).toBe(true)
    }
    expect(existsSync(join(pkg, 'test'))).toBe(false)
    // the fuzz targets and what they and the sanitizer build leave in native/build stay home
    expect(readdirSync(join(pkg, 'native', 'build')).filter((entry) => !entry.startsWith('linux-'))).toEqual([])
    expect(existsSync(join(pkg, 'native', 'fuzz'))).toBe(false)
    // no source maps pointing stack traces into src/, which is not shipped
    expect(readdirSync(join(pkg, 'dist'), { recursive: true }).filter((f) => String(f).endsWith('.map'))).toEqual([])
  })

  it('uses the shipped launcher when it is there', () => {
    const r = locate({})
    expect(r.stdout.trim()).toBe(join(pkg, 'native', 'build', PLATFORM, 'launcher'))
  })

  it('builds the launcher from the C source into the cache on first use when no binary fits', () => {
    rmSync(join(pkg, 'native', 'build'), { recursive: true, force: true })
    const cache = join(dir, 'cache')
    const r = locate({ XDG_CACHE_HOME: cache })
    expect(r.stderr).toBe('')
    const built = r.stdout.trim()
    expect(built.startsWith(join(cache, 'vitest-pool-rootless'))).toBe(true)
    // it is a working launcher: a plan without a command is refused with its usage line
    const usage = spawnSync(built, [], { encoding: 'utf8' })
    expect(usage.status).toBe(230)
    expect(usage.stderr).toContain("vitest-pool-rootless: usage: missing '-- CMD'")
    // the second run finds it in the cache instead of compiling again
    expect(locate({ XDG_CACHE_HOME: cache, CC: '/nonexistent/cc' }).stdout.trim()).toBe(built)
  })

  it('says what to install when there is no binary and no compiler', () => {
    rmSync(join(pkg, 'native', 'build'), { recursive: true, force: true })
    const r = locate({ XDG_CACHE_HOME: join(dir, 'empty-cache'), CC: '/nonexistent/cc' })
    expect(r.status).not.toBe(0)
    expect(r.stderr).toContain(`no launcher binary for ${PLATFORM} in this package`)
    expect(r.stderr).toContain('/nonexistent/cc: spawnSync /nonexistent/cc ENOENT')
    expect(r.stderr).toContain('Install a C compiler (Debian/Ubuntu: sudo apt-get install gcc)')
  })

  it('says how to rebuild when the configured launcher is missing or not executable', () => {
    const r = locate({ VITEST_POOL_ROOTLESS_LAUNCHER: join(dir, 'no-launcher') })
    expect(r.status).not.toBe(0)
    expect(r.stderr).toContain(`the launcher VITEST_POOL_ROOTLESS_LAUNCHER=${join(dir, 'no-launcher')} is missing or not executable. Rebuild it: node `)
  })
})

/** The README's way to install from a clone: the sh block after "install it from a clone". */
function readmeCloneInstall(): string[] {
  const readme = readFileSync(join(import.meta.dirname, '..', '..', 'README.md'), 'utf8')
  const section = readme.slice(readme.indexOf('install it from a\nclone'))
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1] ?? ''
  return block.split('\n').filter(Boolean)
}

describe("installing from a clone, as the README's Install section says", () => {
  let dir: string
  beforeAll(() => void (dir = mkdtempSync(join(tmpdir(), 'vpr-from-clone-'))))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('packs the clone and installs the tarball with npm i -D, and the package loads and runs its CLI', () => {
    const lines = readmeCloneInstall()
    expect(lines[1]).toMatch(/^npm install && npm run build && npm pack --ignore-scripts\b/)
    const install = lines[2]!.replace(/^cd \.\.\/your-project && /, '')
    expect(install).toBe('npm i -D ../vitest-pool-rootless/vitest-pool-rootless-<version>.tgz')
    // the global setup packed this checkout the same way (`npm pack --ignore-scripts` after the build)
    const version = (JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }).version
    const tarball = inject('tarball')
    expect(tarball.endsWith(`/vitest-pool-rootless-${version}.tgz`)).toBe(true)
    writeFileSync(join(dir, 'package.json'), '{ "name": "your-project", "private": true }\n')
    // nothing to fetch: the package has no dependencies, and its peers are optional
    const args = install.split(' ').slice(1).map((a) => (a.endsWith('.tgz') ? tarball : a))
    execFileSync('npm', [...args, '--offline', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: dir, stdio: ['ignore', 'pipe', 'inherit'] })
    const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> }
    expect(manifest.devDependencies['vitest-pool-rootless']).toMatch(/vitest-pool-rootless-.*\.tgz$/)
    const loaded = spawnSync(process.execPath, ['--input-type=module', '-e', "import('vitest-pool-rootless').then((m) => console.log(typeof m.rootless))"], { cwd: dir, encoding: 'utf8' })
    expect(loaded.stderr).toBe('')
    expect(loaded.stdout).toBe('function\n')
    const cli = spawnSync(join(dir, 'node_modules', '.bin', 'vitest-pool-rootless'), ['--version'], { cwd: dir, encoding: 'utf8' })
    expect(cli.stdout.trim()).toBe(version)
  })
})
