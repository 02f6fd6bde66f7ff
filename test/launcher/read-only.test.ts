import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { locateAddon } from '../../src/engine/launcher-path.js'
import { createResetPlan, type SandboxPlan } from '../../src/plan/plan.js'
import { RESET_ENV } from '../../src/wire/wire.js'
import { LAUNCHER, ROOT, describeSandbox } from '../support/sandbox.js'

// --read-only with --writable: the host's tree read-only but the listed paths, in a
// launch and across a reused worker's reset.

const uid = process.geteuid!()
const gid = process.getegid!()
const SELF = ['--uid-map', `0:${uid}:1`, '--gid-map', `0:${gid}:1`]

function launch(args: string[]) {
  return spawnSync(LAUNCHER, args, { encoding: 'utf8', cwd: '/', timeout: 20_000 })
}

describe('launcher --read-only: bad plans are refused', () => {
  it('--writable without --read-only, or not absolute', () => {
    const alone = launch([...SELF, '--writable', '/tmp', '--', 'true'])
    expect(alone.status).toBe(230)
    expect(alone.stderr).toContain('--writable goes with --read-only')
    const relative = launch([...SELF, '--read-only', '--writable', 'out', '--', 'true'])
    expect(relative.status).toBe(230)
    expect(relative.stderr).toContain('--writable out is not an absolute path')
  })
  it('in a reset, which keeps what the launch made read-only (locked) and takes no such flag', () => {
    const module = { exports: {} as { reset(args: string[]): void } }
    process.dlopen(module, locateAddon())
    expect(() => module.exports.reset(['--reset', '--read-only'])).toThrow(/--reset takes only/)
  })
})

describeSandbox('launcher --read-only --writable', () => {
  // one place under a tmpfs target (kept, as a project in /tmp is) and one outside any
  const base = mkdtempSync(join(tmpdir(), 'vpr-read-only-'))
  const outside = mkdtempSync(join(ROOT, 'test', '.read-only-'))
  afterAll(() => {
    rmSync(base, { recursive: true, force: true })
    rmSync(outside, { recursive: true, force: true })
  })
  const target = join(base, 'tmp')
  const project = join(target, 'project')
  const out = join(project, 'out')
  const outsideOut = join(outside, 'out')
  for (const dir of [out, outsideOut]) mkdirSync(dir, { recursive: true })
  const flags = [...SELF, '--tmpfs', target, '--keep', project, '--read-only', '--writable', '/dev', '--writable', '/proc', '--writable', out, '--writable', outsideOut, '--pid-namespace']

  /** `sh -c` lines, each printing `name ok` or `name fails: <error>`. */
  const tries = (checks: Record<string, string>) =>
    Object.entries(checks)
      .map(([name, command]) => `if out=$( { ${command}; } 2>&1); then echo "${name} ok"; else echo "${name} fails: $out"; fi`)
      .join('\n')

  it('writes the writable paths and the tmpfs, nothing else of the host, and no test can undo it', () => {
    const r = launch([
      ...flags,
      '--',
      'sh',
      '-c',
      tries({
        out: `echo a > ${out}/x`,
        outsideOut: `echo a > ${outsideOut}/x`,
        project: `echo a > ${project}/x`,
        outside: `echo a > ${outside}/x`,
        tmpfs: `echo a > ${target}/x`,
        devNull: 'echo a > /dev/null',
        remount: 'mount -o remount,rw /',
        remountProject: `mount -o remount,rw ${project}`,
        unmountOut: `umount ${out}`,
      }),
    ])
    expect(r.status, r.stderr).toBe(0)
    const lines = r.stdout.trim().split('\n')
    expect(lines.filter((l) => l.endsWith(' ok')).map((l) => l.split(' ')[0])).toEqual(['out', 'outsideOut', 'tmpfs', 'devNull'])
    for (const name of ['project', 'outside']) expect(lines.find((l) => l.startsWith(`${name} `))).toMatch(/fails: .*Read-only file system/)
    for (const name of ['remount', 'remountProject', 'unmountOut']) expect(lines.find((l) => l.startsWith(`${name} `))).toMatch(/fails/)
    expect(readFileSync(join(out, 'x'), 'utf8')).toBe('a\n')
    expect(readFileSync(join(outsideOut, 'x'), 'utf8')).toBe('a\n')
    expect(existsSync(join(project, 'x'))).toBe(false)
    expect(existsSync(join(outside, 'x'))).toBe(false)
  })

  it("holds across a reused worker's reset: the writable paths stay writable, the rest read-only", () => {
    const plan: SandboxPlan = { user: { joinFd: 3 }, mounts: [{ tmpfs: target, keep: [project] }], network: 'isolated', forwards: [], newSession: false, pidNamespace: true, readOnly: { writable: [out] } }
    const reset = createResetPlan(plan, '127.0.0.1 localhost\n', locateAddon())
    const module = join(ROOT, 'dist', 'inside', 'sandbox-reset.js')
    const script = `import { SandboxReset } from ${JSON.stringify(module)}
      import * as fs from 'node:fs'
      const sandbox = SandboxReset.fromEnv()
      const attempt = (path) => { try { fs.writeFileSync(path, 'b'); return 'ok' } catch (e) { return e.code } }
      const report = { first: [attempt('${out}/1'), attempt('${project}/1'), attempt('${outside}/1')] }
      sandbox.reset()
      report.second = [attempt('${out}/2'), attempt('${project}/2'), attempt('${outside}/2'), attempt('${target}/2')]
      console.log(JSON.stringify(report))`
    // the reset writes /etc/hosts again: the private copy a sandbox always has is a mount of its own, writable
    const hostsFile = join(base, 'hosts')
    writeFileSync(hostsFile, '127.0.0.1 localhost\n')
    const r = spawnSync(LAUNCHER, [...flags, '--hosts-file', hostsFile, '--', process.execPath, '--input-type=module', '-e', script], {
      encoding: 'utf8',
      cwd: '/',
      env: { ...process.env, [RESET_ENV]: JSON.stringify(reset) },
      timeout: 30_000,
    })
    expect(r.stderr).toBe('')
    expect(JSON.parse(r.stdout)).toEqual({ first: ['ok', 'EROFS', 'EROFS'], second: ['ok', 'EROFS', 'EROFS', 'ok'] })
    expect(readFileSync(join(out, '2'), 'utf8')).toBe('b')
  })
})
