import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { apparmorProfile, SECCOMP_DENIED, seccompProfile } from '../../src/doctor/recipes.js'
import { findExecutable } from '../../src/engine/host-facts.js'
import { CLI, LAUNCHER, describeSandbox } from '../support/sandbox.js'

// The CI recipes' profiles. No Docker engine and no AppArmor 4 run on this machine: the
// seccomp profile is checked against every system call a real sandbox makes (strace),
// the AppArmor profile with apparmor_parser where a version that knows `userns` exists.

describe('vitest-pool-rootless seccomp', () => {
  it('prints a profile container runtimes take: allow by default, deny a fixed list with EPERM', () => {
    const r = spawnSync(process.execPath, [CLI, 'seccomp'], { encoding: 'utf8' })
    expect(r.status).toBe(0)
    const profile = JSON.parse(r.stdout) as { defaultAction: string; syscalls: Array<{ names: string[]; action: string; errnoRet: number }> }
    expect(profile.defaultAction).toBe('SCMP_ACT_ALLOW')
    expect(profile.syscalls).toEqual([{ names: [...SECCOMP_DENIED], action: 'SCMP_ACT_ERRNO', errnoRet: 1 }])
    expect(r.stdout).toBe(seccompProfile())
  })
})

describeSandbox('the seccomp profile against a real sandbox', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vpr-seccomp-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('denies no system call the launcher, its init and a worker make', () => {
    if (!findExecutable('strace')) throw new Error('strace is needed for this test: apt-get install strace')
    const out = join(dir, 'strace.txt')
    const uid = process.geteuid!()
    const gid = process.getegid!()
    // a sandbox as a worker gets it (pid namespace, hosts, hostname), running node
    writeFileSync(join(dir, 'hosts'), '127.0.0.1 localhost\n')
    const r = spawnSync('strace', ['-f', '-qq', '-o', out, LAUNCHER, '--uid-map', `0:${uid}:1`, '--gid-map', `0:${gid}:1`, '--tmpfs', dir, '--hosts-file', join(dir, 'hosts'), '--hostname', 'box', '--new-session', '--pid-namespace', '--', process.execPath, '-e', 'require("net").createServer().listen(80, () => process.exit(0))'], { encoding: 'utf8', cwd: '/' })
    expect(r.status, r.stderr).toBe(0)
    const made = new Set(readFileSync(out, 'utf8').split('\n').map((line) => /^\d+\s+(?:<\.\.\. )?(\w+)\(/.exec(line)?.[1]).filter((name): name is string => !!name))
    for (const needed of ['unshare', 'mount', 'sethostname', 'setresuid']) expect(made, needed).toContain(needed)
    expect([...made].filter((name) => (SECCOMP_DENIED as readonly string[]).includes(name))).toEqual([])
  })
})

describe('vitest-pool-rootless apparmor', () => {
  const profile = apparmorProfile(LAUNCHER)

  it('prints a profile for this launcher that grants user namespaces and nothing else', () => {
    const r = spawnSync(process.execPath, [CLI, 'apparmor'], { encoding: 'utf8' })
    expect(r.status).toBe(0)
    expect(r.stdout).toContain(`profile vitest-pool-rootless ${LAUNCHER} flags=(unconfined) {\n  userns,\n`)
    expect(apparmorProfile('/a b/launcher')).toContain('profile vitest-pool-rootless "/a b/launcher" flags=(unconfined)')
  })

  const parser = findExecutable('apparmor_parser')
  const version = parser ? /(\d+)\.\d+/.exec(spawnSync(parser, ['--version'], { encoding: 'utf8' }).stdout)?.[1] : undefined
  const why = !parser ? 'apparmor_parser is not installed' : Number(version) < 4 ? `apparmor_parser ${version}.x predates the userns rule (AppArmor 4)` : undefined
  it.skipIf(why !== undefined)(`parses with apparmor_parser${why ? ` (skipped: ${why})` : ''}`, () => {
    const file = join(mkdtempSync(join(tmpdir(), 'vpr-aa-')), 'vitest-pool-rootless')
    writeFileSync(file, profile)
    const r = spawnSync(parser!, ['--skip-kernel-load', '--skip-cache', file], { encoding: 'utf8' })
    expect(r.status, r.stderr).toBe(0)
  })
})
