import { spawn, spawnSync } from 'node:child_process'
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { findExecutable } from '../../src/engine/host-facts.js'
import { LAUNCHER_STEPS } from '../../src/ns/steps.js'
import { LAUNCHER, describeSandbox } from '../support/sandbox.js'

const uid = process.geteuid!()
const gid = process.getegid!()
const SELF = ['--uid-map', `0:${uid}:1`, '--gid-map', `0:${gid}:1`]
const stepCode = (name: string) => Number(Object.entries(LAUNCHER_STEPS).find(([, n]) => n === name)![0])

function launch(args: string[], cwd?: string) {
  return spawnSync(LAUNCHER, args, { encoding: 'utf8', cwd, timeout: 20_000 })
}

/** Asserts the launcher failed at `step` with exactly one line naming it. */
function expectStepFailure(result: ReturnType<typeof launch>, step: string, text: string | RegExp) {
  expect(result.status, result.stderr).toBe(stepCode(step))
  const lines = result.stderr.trim().split('\n')
  const last = lines[lines.length - 1]!
  expect(last.startsWith(`vitest-pool-rootless: ${step}: `), last).toBe(true)
  if (typeof text === 'string') expect(last).toContain(text)
  else expect(last).toMatch(text)
}

describe('launcher: bad plans are refused before anything is created', () => {
  it('without "-- CMD"', () => {
    expectStepFailure(launch([...SELF]), 'usage', "missing '-- CMD'")
  })
  it('with an unknown flag', () => {
    expectStepFailure(launch(['--bogus', '--', 'true']), 'usage', "unknown option '--bogus'")
  })
  it('with a malformed id range', () => {
    expectStepFailure(launch(['--uid-map', '0:1', '--gid-map', '0:0:1', '--', 'true']), 'usage', "bad id range '0:1'")
    expectStepFailure(launch(['--uid-map', '0:-5:1', '--gid-map', '0:0:1', '--', 'true']), 'usage', "bad id range '0:-5:1'")
    expectStepFailure(launch(['--uid-map', '0:4294967295:2', '--gid-map', '0:0:1', '--', 'true']), 'usage', 'bad id range')
  })
  it('with only one of the two id helpers', () => {
    expectStepFailure(launch([...SELF, '--newuidmap', '/usr/bin/newuidmap', '--', 'true']), 'usage', '--newuidmap and --newgidmap go together')
  })
  it('without maps and without a namespace to join', () => {
    expectStepFailure(launch(['--', 'true']), 'usage', '--uid-map and --gid-map are required')
  })
})

describeSandbox('launcher: each failing step names itself', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vpr-launcher-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('a hosts file that does not exist', () => {
    expectStepFailure(launch([...SELF, '--hosts-file', join(dir, 'missing-hosts'), '--', 'true']), 'open-hosts', `can't open hosts file ${join(dir, 'missing-hosts')}: No such file or directory`)
  })
  it('a kept path that does not exist', () => {
    expectStepFailure(launch([...SELF, '--keep', join(dir, 'gone'), '--', 'true']), 'open-keep', 'No such file or directory')
  })
  it('a tmpfs target that does not exist', () => {
    expectStepFailure(launch([...SELF, '--tmpfs', join(dir, 'nowhere'), '--', 'true']), 'tmpfs', `can't mount a tmpfs on ${join(dir, 'nowhere')}: No such file or directory`)
  })
  it('a tmpfs size the kernel rejects', () => {
    expectStepFailure(launch([...SELF, '--tmpfs', dir, '--tmpfs-size', 'lots', '--', 'true']), 'tmpfs', 'Invalid argument')
  })
  it('a hostname longer than the kernel allows', () => {
    expectStepFailure(launch([...SELF, '--hostname', 'h'.repeat(65), '--', 'true']), 'hostname', 'Invalid argument')
  })
  it('a uid map the kernel rejects (overlapping lines)', () => {
    expectStepFailure(launch(['--uid-map', `0:${uid}:10`, '--uid-map', `5:${uid + 100}:10`, '--gid-map', `0:${gid}:1`, '--', 'true']), 'uid-map', "can't write the uid map")
  })
  it('a gid map the kernel rejects (overlapping lines)', () => {
    expectStepFailure(launch([...SELF.slice(0, 2), '--gid-map', `0:${gid}:10`, '--gid-map', `5:${gid + 100}:10`, '--', 'true']), 'gid-map', "can't write the gid map")
  })
  it('an id helper that is not there', () => {
    const result = launch([...SELF, '--newuidmap', join(dir, 'no-newuidmap'), '--newgidmap', join(dir, 'no-newgidmap'), '--', 'true'])
    expectStepFailure(result, 'uid-map', `with ${join(dir, 'no-newuidmap')}`)
    expect(result.stderr).toContain(`exec ${join(dir, 'no-newuidmap')}: No such file or directory`)
  })
  it('a user namespace fd that is not one', () => {
    expectStepFailure(launch(['--userns-fd', '97', '--', 'true']), 'setns', "can't join user namespace fd 97: Bad file descriptor")
  })
  it('a working directory hidden by the tmpfs', () => {
    const sub = join(dir, 'project')
    mkdirSync(sub, { recursive: true })
    expectStepFailure(launch([...SELF, '--tmpfs', dir, '--', 'true'], sub), 'chdir', `can't enter ${sub}`)
    // kept, the same directory is entered fine
    expect(launch([...SELF, '--tmpfs', dir, '--keep', sub, '--', 'true'], sub).status).toBe(0)
  })
  it('a command that does not exist', () => {
    expectStepFailure(launch([...SELF, '--', join(dir, 'no-such-command')]), 'exec', `can't run ${join(dir, 'no-such-command')}: No such file or directory`)
  })

  it('holds a mapped user namespace that later launchers join by fd', async () => {
    const holder = spawn(LAUNCHER, [...SELF, '--hold'], { stdio: ['pipe', 'pipe', 'pipe'] })
    const ready = await new Promise<string>((resolve) => holder.stdout.setEncoding('utf8').once('data', resolve))
    expect(ready).toBe('ready\n')
    const fd = openSync(`/proc/${holder.pid}/ns/user`, 'r')
    holder.stdin.end()
    const code = await new Promise((resolve) => holder.once('exit', resolve))
    expect(code).toBe(0)
    try {
      // the holder is gone; the fd alone keeps its namespace, and joining it maps uid 0
      const r = spawnSync(LAUNCHER, ['--userns-fd', '3', '--', 'sh', '-c', 'id -u; cat /proc/self/uid_map'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe', fd] })
      expect(r.stderr).toBe('')
      const [id, map] = r.stdout.trim().split('\n')
      expect(id).toBe('0')
      expect(map!.trim().split(/\s+/).map(Number)).toEqual([0, uid, 1])
    } finally {
      closeSync(fd)
    }
  })

  it('refuses --hold with a command', () => {
    expectStepFailure(launch([...SELF, '--hold', '--', 'true']), 'usage', '--hold takes no command')
  })

  it('mirrors the command\'s end through the pid namespace init: exit code and signal', () => {
    expect(launch([...SELF, '--pid-namespace', '--', 'sh', '-c', 'exit 42']).status).toBe(42)
    const killed = launch([...SELF, '--pid-namespace', '--', 'sh', '-c', 'kill -SEGV $$'])
    expect(killed.signal).toBe('SIGSEGV')
  })

  // Steps no real condition on this machine breaks: the syscall's error is injected.
  it.each([
    ['mount-private', 'mount:error=EPERM:when=1', "can't make / rprivate: Operation not permitted"],
    ['hosts', 'mount:error=EACCES:when=2', "can't put a private copy of"],
    ['loopback', 'ioctl:error=EPERM', "can't bring up lo: Operation not permitted"],
    ['hostname', 'sethostname:error=EPERM', "can't set hostname box: Operation not permitted"],
    ['session', 'setsid:error=EIO', "can't start a new session: Input/output error"],
    ['pdeathsig', 'prctl:error=EINVAL', "can't set PR_SET_PDEATHSIG: Invalid argument"],
    ['setid', 'setresgid:error=EPERM', "can't become gid 0 in the sandbox: Operation not permitted"],
    ['pid-namespace', 'unshare:error=EINVAL:when=2', "can't create a pid namespace: Invalid argument"],
    ['map-helper', 'clone:error=EAGAIN:when=1', "can't start the id-map helper: Resource temporarily unavailable"],
    // mounts in order: / rprivate, hosts scratch tmpfs, hosts bind, the tmpfs, the kept path
    ['keep', 'mount:error=EACCES:when=5', "can't bind"],
  ])('the %s step, with %s injected by strace', (step, inject, text) => {
    if (!findExecutable('strace')) throw new Error('strace is needed for this test: apt-get install strace')
    const hosts = join(dir, 'hosts-for-inject')
    writeFileSync(hosts, '127.0.0.1 localhost\n')
    const syscall = inject.split(':')[0]!
    // strace follows only the launcher itself, so the pid namespace (whose steps after
    // the fork run in children) is on only for its own case
    const pidns = step === 'pid-namespace' ? ['--pid-namespace'] : []
    const kept = join(dir, 'kept')
    mkdirSync(kept, { recursive: true })
    const keep = step === 'keep' ? ['--tmpfs', dir, '--keep', kept] : []
    const result = spawnSync('strace', ['-qq', '-o', '/dev/null', '-e', `trace=${syscall}`, '-e', `inject=${inject}`, LAUNCHER, ...SELF, '--hosts-file', hosts, '--hostname', 'box', '--new-session', ...pidns, ...keep, '--', 'true'], { encoding: 'utf8', cwd: '/' })
    expectStepFailure(result, step, text)
  })

  it('passes argv and environment through untouched', () => {
    const result = spawnSync(LAUNCHER, [...SELF, '--', 'sh', '-c', 'printf "%s|" "$@" "$VPR_PROBE"', 'sh', 'a b', '--tmpfs', ''], {
      encoding: 'utf8',
      env: { ...process.env, VPR_PROBE: 'kept' },
    })
    expect(result.stderr).toBe('')
    expect(result.stdout).toBe('a b|--tmpfs||kept|')
  })

  it('passes an inherited fd through (as Node\'s IPC channel is)', () => {
    const result = spawnSync(LAUNCHER, [...SELF, '--', 'sh', '-c', 'echo through >&3'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe', 'pipe'] })
    expect(result.status, result.stderr).toBe(0)
    expect(String(result.output[3])).toBe('through\n')
  })

  it('starts 200 sandboxes in a row without a single unshare failure', () => {
    let failures = 0
    for (let i = 0; i < 200; i++) if (launch([...SELF, '--tmpfs', dir, '--', 'true']).status !== 0) failures++
    expect(failures).toBe(0)
  })
})
