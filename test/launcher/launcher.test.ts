import { spawn, spawnSync } from 'node:child_process'
import { closeSync, fstatSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { findExecutable } from '../../src/engine/host-facts.js'
import { createSandboxPlan, launcherArgs } from '../../src/plan/plan.js'
import { LAUNCHER_STEPS } from '../../src/plan/steps.js'
import { LAUNCHER, ROOT, describeSandbox, subidRangesOf } from '../support/sandbox.js'

const uid = process.geteuid!()
const gid = process.getegid!()
const SELF = ['--uid-map', `0:${uid}:1`, '--gid-map', `0:${gid}:1`]
const stepCode = (name: string) => Number(Object.entries(LAUNCHER_STEPS).find(([, n]) => n === name)![0])

function launch(args: string[], cwd?: string) {
  return spawnSync(LAUNCHER, args, { encoding: 'utf8', cwd, timeout: 20_000 })
}

/** Asserts the launcher failed at `step` with exactly one line naming it (strace adds none: -qq). */
function expectStepFailure(result: { status: number | null; stderr: string }, step: string, text: string | RegExp) {
  expect(result.status, result.stderr).toBe(stepCode(step))
  const lines = result.stderr.trimEnd().split('\n')
  expect(lines, result.stderr).toHaveLength(1)
  const line = lines[0]!
  expect(line.startsWith(`vitest-pool-rootless: ${step}: `), line).toBe(true)
  if (typeof text === 'string') expect(line).toContain(text)
  else expect(line).toMatch(text)
}

/** An executable shell script at `path` standing in for newuidmap/newgidmap. */
function fakeHelper(path: string, body: string): string {
  writeFileSync(path, `#!/bin/sh\n${body}\n`, { mode: 0o755 })
  return path
}

/** Runs the launcher with fd 3 a pipe and `--status-fd 3`; `bytes` is what arrived on it. */
function launchWithStatusFd(args: string[]) {
  const r = spawnSync(LAUNCHER, ['--status-fd', '3', ...args], { stdio: ['ignore', 'pipe', 'pipe', 'pipe'], timeout: 20_000 })
  return { status: r.status, signal: r.signal, stdout: String(r.stdout), stderr: String(r.stderr), bytes: [...(r.output[3] as Buffer)] }
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
  it('with a --keep before any --tmpfs (each --keep belongs to the --tmpfs before it)', () => {
    expectStepFailure(launch([...SELF, '--keep', '/tmp/a', '--tmpfs', '/tmp', '--', 'true']), 'usage', "--keep /tmp/a comes before any --tmpfs")
  })
  it('with a status fd that is a standard stream, or not open', () => {
    expectStepFailure(launch([...SELF, '--status-fd', '1', '--', 'true']), 'usage', '--status-fd')
    expectStepFailure(launch([...SELF, '--status-fd', '97', '--', 'true']), 'usage', "--status-fd 97 is not an open fd")
  })
  it('reports a usage error on the status fd too, wherever --status-fd stands', () => {
    const before = launchWithStatusFd(['--bogus', '--', 'true'])
    expect(before.bytes).toEqual([stepCode('usage')])
    const after = spawnSync(LAUNCHER, ['--bogus', '--status-fd', '3', '--', 'true'], { stdio: ['ignore', 'pipe', 'pipe', 'pipe'] })
    expect([...(after.output[3] as Buffer)]).toEqual([stepCode('usage')])
  })
})

describeSandbox('launcher: each failing step names itself', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vpr-launcher-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('a hosts file that does not exist', () => {
    expectStepFailure(launch([...SELF, '--hosts-file', join(dir, 'missing-hosts'), '--', 'true']), 'open-hosts', `can't open hosts file ${join(dir, 'missing-hosts')}: No such file or directory`)
  })
  it('a kept path that does not exist', () => {
    expectStepFailure(launch([...SELF, '--tmpfs', dir, '--keep', join(dir, 'gone'), '--', 'true']), 'open-keep', 'No such file or directory')
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
  it('an id helper that is not there: one line, with the spawn error', () => {
    const result = launch([...SELF, '--newuidmap', join(dir, 'no-newuidmap'), '--newgidmap', join(dir, 'no-newgidmap'), '--', 'true'])
    expectStepFailure(result, 'uid-map', `can't write the uid map with ${join(dir, 'no-newuidmap')}: can't run it: No such file or directory`)
  })
  it('a uid helper that is not there and a gid helper that is not executable: the uid map gets its own errno', () => {
    // the second spawn's EACCES used to overwrite the first one's ENOENT
    const notExecutable = join(dir, 'not-executable-newgidmap')
    writeFileSync(notExecutable, '#!/bin/sh\n', { mode: 0o644 })
    const result = launch([...SELF, '--newuidmap', join(dir, 'no-newuidmap'), '--newgidmap', notExecutable, '--', 'true'])
    expectStepFailure(result, 'uid-map', 'No such file or directory')
    expect(result.stderr).not.toContain('Permission denied')
  })
  it('a gid helper that is not there, after a uid helper that worked: one line, with the spawn error', () => {
    // a stand-in newuidmap that writes the one-id map itself, as the caller may
    const newuidmap = fakeHelper(join(dir, 'ok-newuidmap'), 'echo "$2 $3 $4" > /proc/$1/uid_map')
    const result = launch([...SELF, '--newuidmap', newuidmap, '--newgidmap', join(dir, 'no-newgidmap'), '--', 'true'])
    expectStepFailure(result, 'gid-map', `can't write the gid map with ${join(dir, 'no-newgidmap')}: can't run it: No such file or directory`)
  })
  it('an id helper that refuses: one line with its exit status and its own message, no invented errno', () => {
    const newuidmap = fakeHelper(join(dir, 'refusing-newuidmap'), 'echo "refusing-newuidmap: no range for you" >&2; exit 3')
    const newgidmap = fakeHelper(join(dir, 'quiet-newgidmap'), 'exit 0')
    const result = launch([...SELF, '--newuidmap', newuidmap, '--newgidmap', newgidmap, '--', 'true'])
    expectStepFailure(result, 'uid-map', `can't write the uid map with ${newuidmap}: refusing-newuidmap exited with status 3: refusing-newuidmap: no range for you`)
    expect(result.stderr).not.toContain('Operation not permitted')
  })
  it.skipIf(!findExecutable('newuidmap') || !findExecutable('newgidmap'))('the real newuidmap refusing a range: one line carrying its own reason', () => {
    const result = launch([...SELF.slice(0, 2), '--uid-map', '1:4000000000:10', ...SELF.slice(2), '--newuidmap', findExecutable('newuidmap')!, '--newgidmap', findExecutable('newgidmap')!, '--', 'true'])
    expectStepFailure(result, 'uid-map', /newuidmap exited with status 1: newuidmap: .*not allowed/)
  })
  it('an id helper that fails silently or is killed: its status, no invented errno', () => {
    const newuidmap = fakeHelper(join(dir, 'ok-newuidmap'), 'echo "$2 $3 $4" > /proc/$1/uid_map')
    const silent = fakeHelper(join(dir, 'silent-newgidmap'), 'exit 1')
    expectStepFailure(launch([...SELF, '--newuidmap', newuidmap, '--newgidmap', silent, '--', 'true']), 'gid-map', /with \S+silent-newgidmap: silent-newgidmap exited with status 1$/)
    const killed = fakeHelper(join(dir, 'killed-newgidmap'), 'kill -KILL $$')
    expectStepFailure(launch([...SELF, '--newuidmap', newuidmap, '--newgidmap', killed, '--', 'true']), 'gid-map', /with \S+killed-newgidmap: killed-newgidmap was killed by signal 9$/)
  })
  it('a user namespace fd that is not one', () => {
    expectStepFailure(launch(['--userns-fd', '97', '--', 'true']), 'setns', "can't find the parent of user namespace fd 97: Bad file descriptor")
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
      // (the command sees the nested namespace that locks the mounts: same ids, same
      // numbers; what it creates belongs to the caller on the host, as the holder maps it)
      const made = join(dir, 'made-by-joined')
      const r = spawnSync(LAUNCHER, ['--userns-fd', '3', '--', 'sh', '-c', `id -u; cat /proc/self/uid_map; touch ${made}`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe', fd] })
      expect(r.stderr).toBe('')
      const [id, map] = r.stdout.trim().split('\n')
      expect(id).toBe('0')
      expect(map!.trim().split(/\s+/).map(Number)).toEqual([0, 0, 1])
      expect(statSync(made).uid).toBe(uid)
    } finally {
      closeSync(fd)
    }
  })

  it('warm sandboxes share the holder\'s nested user namespace, never a mount, network or UTS namespace', async () => {
    const holder = spawn(LAUNCHER, [...SELF, '--hold'], { stdio: ['pipe', 'pipe', 'pipe'] })
    await new Promise<string>((resolve) => holder.stdout.setEncoding('utf8').once('data', resolve))
    const fd = openSync(`/proc/${holder.pid}/ns/user`, 'r')
    holder.stdin.end()
    await new Promise((resolve) => holder.once('exit', resolve))
    try {
      // both alive at once: a finished sandbox's namespace inodes may be reused
      const script = 'for n in user mnt net uts; do readlink /proc/self/ns/$n; done; umount /etc/hosts 2>/dev/null; echo umount=$?; sleep 0.5'
      const run = () => {
        const child = spawn(LAUNCHER, ['--userns-fd', '3', '--hosts-file', '/etc/hosts', '--', 'sh', '-c', script], { stdio: ['ignore', 'pipe', 'pipe', fd] })
        let stdout = ''
        let stderr = ''
        child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d))
        child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d))
        return new Promise<{ stdout: string; stderr: string }>((resolve) => child.once('close', () => resolve({ stdout, stderr })))
      }
      const [a, b] = await Promise.all([run(), run()])
      expect(a.stderr + b.stderr).toBe('')
      const [userA, mntA, netA, utsA, umountA] = a.stdout.trim().split('\n')
      const [userB, mntB, netB, utsB] = b.stdout.trim().split('\n')
      // the namespace the holder left is the one sandboxes run in: its inode is the fd's
      expect(userA).toBe(`user:[${fstatSync(fd).ino}]`)
      expect(userB).toBe(userA)
      expect([mntB, netB, utsB]).not.toContain(mntA)
      expect(netB).not.toBe(netA)
      expect(utsB).not.toBe(utsA)
      // joined, not made: the mounts are still locked
      expect(umountA).not.toBe('umount=0')
    } finally {
      closeSync(fd)
    }
  })

  it('names the step when the warm nested namespace can\'t be joined, or made by the holder', async () => {
    if (!findExecutable('strace')) throw new Error('strace is needed for this test: apt-get install strace')
    const holder = spawn(LAUNCHER, [...SELF, '--hold'], { stdio: ['pipe', 'pipe', 'pipe'] })
    await new Promise<string>((resolve) => holder.stdout.setEncoding('utf8').once('data', resolve))
    const fd = openSync(`/proc/${holder.pid}/ns/user`, 'r')
    holder.stdin.end()
    await new Promise((resolve) => holder.once('exit', resolve))
    try {
      // setns in order: the mapped parent, then the nested namespace that locks the mounts
      const joined = spawnSync('strace', ['-qq', '-o', '/dev/null', '-e', 'trace=setns', '-e', 'inject=setns:error=EPERM:when=2', LAUNCHER, '--userns-fd', '3', '--', 'true'], { encoding: 'utf8', cwd: '/', stdio: ['ignore', 'pipe', 'pipe', fd] })
      expectStepFailure(joined, 'setns', "can't join the warm nested user namespace (fd 3) that locks the mounts: Operation not permitted")
    } finally {
      closeSync(fd)
    }
    // unshare in order: the mapped namespace, then the nested one
    const held = spawnSync('strace', ['-qq', '-o', '/dev/null', '-e', 'trace=unshare', '-e', 'inject=unshare:error=ENOSPC:when=2', LAUNCHER, ...SELF, '--hold'], { encoding: 'utf8', cwd: '/', input: '' })
    expectStepFailure(held, 'unshare', "can't create the nested user namespace of the warm holder (limit in /proc/sys/user/max_user_namespaces)")
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
    // the reason is the C library's words for the errno: glibc's, or musl's (the launcher's when musl-gcc built it)
    ['session', 'setsid:error=EIO', /can't start a new session: (Input\/output error|I\/O error)$/],
    ['pdeathsig', 'prctl:error=EINVAL', "can't set PR_SET_PDEATHSIG: Invalid argument"],
    ['setid', 'setresgid:error=EPERM', "can't become gid 0 in the sandbox: Operation not permitted"],
    // unshare in order: user+mount, the nested user+mount+net+uts+ipc that locks the mounts, pid
    ['pid-namespace', 'unshare:error=EINVAL:when=3', "can't create a pid namespace: Invalid argument"],
    ['unshare', 'unshare:error=ENOSPC:when=2', "can't create the nested user namespace that locks the mounts (limit in /proc/sys/user/max_user_namespaces): No space left on device"],
    ['unshare', 'unshare:error=EPERM:when=2', "can't create the nested user namespace that locks the mounts: Operation not permitted"],
    // fork(2) is clone(2) in glibc, fork(2) itself in musl
    ['map-helper', 'clone,fork:error=EAGAIN:when=1', "can't start the id-map helper: Resource temporarily unavailable"],
    ['map-helper', 'clone,fork:error=EAGAIN:when=2', "can't start the id-map helper of the nested namespace that locks the mounts: Resource temporarily unavailable"],
    ['setid', 'setresuid:error=EPERM:when=2', "can't become uid 0 in the nested namespace: Operation not permitted"],
    // mounts in order: / rprivate, hosts scratch tmpfs, hosts bind, the tmpfs, the kept path,
    // the tmpfs made read-only; after the lock: the writable tmpfs, the kept path again
    ['keep', 'mount:error=EACCES:when=5', "can't bind"],
    ['tmpfs', 'mount:error=EACCES:when=6', "can't make the tmpfs under"],
    ['tmpfs', 'mount:error=ENOMEM:when=7', "can't mount a tmpfs on"],
    ['keep', 'mount:error=EACCES:when=8', "can't bind"],
  ])('the %s step, with %s injected by strace', (step, inject, text) => {
    if (!findExecutable('strace')) throw new Error('strace is needed for this test: apt-get install strace')
    const hosts = join(dir, 'hosts-for-inject')
    writeFileSync(hosts, '127.0.0.1 localhost\n')
    const syscalls = inject.split(':')[0]!
    // strace follows only the launcher itself, so the pid namespace (whose steps after
    // the fork run in children) is on only for its own case
    const pidns = step === 'pid-namespace' ? ['--pid-namespace'] : []
    const kept = join(dir, 'kept')
    mkdirSync(kept, { recursive: true })
    const keep = step === 'keep' || step === 'tmpfs' ? ['--tmpfs', dir, '--keep', kept] : []
    const result = spawnSync('strace', ['-qq', '-o', '/dev/null', '-e', `trace=${syscalls}`, '-e', `inject=${inject}`, LAUNCHER, ...SELF, '--hosts-file', hosts, '--hostname', 'box', '--new-session', ...pidns, ...keep, '--', 'true'], { encoding: 'utf8', cwd: '/' })
    expectStepFailure(result, step, text)
  })

  it('binds each kept path under the tmpfs it is listed with, and hides the rest', () => {
    const a = join(dir, 'mounts-a')
    const b = join(dir, 'mounts-b')
    for (const d of [join(a, 'kept'), join(a, 'hidden'), join(b, 'kept')]) mkdirSync(d, { recursive: true })
    writeFileSync(join(a, 'kept', 'f'), 'a')
    writeFileSync(join(b, 'kept', 'f'), 'b')
    writeFileSync(join(b, 'file'), 'file')
    const script = `cat ${a}/kept/f ${b}/kept/f; ls -A ${a} | tr '\\n' ' '; ls -A ${b} | tr '\\n' ' '`
    const r = launch([...SELF, '--tmpfs', a, '--keep', join(a, 'kept'), '--tmpfs', b, '--keep', join(b, 'kept'), '--', 'sh', '-c', script], '/')
    expect(r.stderr).toBe('')
    expect(r.stdout).toBe('abkept kept ')
  })
  it('decides nothing about paths: a --keep listed with the wrong --tmpfs is bound there, then hidden', () => {
    const a = join(dir, 'wrong-a')
    const b = join(dir, 'wrong-b')
    mkdirSync(join(b, 'kept'), { recursive: true })
    mkdirSync(a, { recursive: true })
    const r = launch([...SELF, '--tmpfs', a, '--keep', join(b, 'kept'), '--tmpfs', b, '--', 'sh', '-c', `ls -A ${b} | wc -l`], '/')
    expect(r.stderr).toBe('')
    expect(r.stdout.trim()).toBe('0')
  })

  it('builds the sandbox a SandboxPlan describes from launcherArgs alone', () => {
    const a = join(dir, 'plan-a')
    const b = join(dir, 'plan-b')
    for (const d of [join(a, 'proj'), join(b, 'cache'), join(b, 'junk')]) mkdirSync(d, { recursive: true })
    writeFileSync(join(a, 'proj', 'f'), 'proj')
    const plan = createSandboxPlan({
      options: { hosts: new Map(), hostsFile: undefined, hostsBase: undefined, hostname: undefined, tmpfs: [a, b], tmpfsSize: undefined, keep: [join(b, 'cache')], subids: false, network: 'isolated', egress: [], hostPorts: [], pidNamespace: false, permissions: 'bypass', dropEnv: [], writable: undefined, warnings: [] },
      idMap: { uidMap: [{ inside: 0, outside: uid, count: 1 }], gidMap: [{ inside: 0, outside: gid, count: 1 }], helpers: null, mode: 'self' },
      needs: [join(a, 'proj'), join(a, 'proj', 'sub'), '/usr/bin'],
      statusFd: 3,
    })
    expect(plan.mounts.map((m) => m.keep)).toEqual([[join(a, 'proj')], [join(b, 'cache')]])
    const r = spawnSync(LAUNCHER, [...launcherArgs(plan), '--', 'sh', '-c', `cat ${a}/proj/f; ls -A ${a} ${b} | tr '\\n' ' '`], { cwd: '/', stdio: ['ignore', 'pipe', 'pipe', 'pipe'] })
    expect(String(r.stderr)).toBe('')
    expect(String(r.stdout)).toBe(`proj${a}: proj  ${b}: cache `)
    expect(r.status).toBe(0)
    expect([...(r.output[3] as Buffer)]).toEqual([])
  })

  describe.each([[[] as string[]], [['--pid-namespace']]])('the status fd %j', (pidns) => {
    it('carries the failed step\'s status as one byte', () => {
      const r = launchWithStatusFd([...SELF, ...pidns, '--hostname', 'h'.repeat(65), '--', 'true'])
      expect(r.status).toBe(stepCode('hostname'))
      expect(r.bytes).toEqual([stepCode('hostname')])
    })
    it('carries a step that fails after the pid namespace fork (exec) as one byte', () => {
      const r = launchWithStatusFd([...SELF, ...pidns, '--', join(dir, 'no-such-command')])
      expect(r.status).toBe(stepCode('exec'))
      expect(r.bytes).toEqual([stepCode('exec')])
    })
    it('stays empty when the command ran, even if it exits with a step\'s status, and is not inherited by it', () => {
      const r = launchWithStatusFd([...SELF, ...pidns, '--', 'sh', '-c', 'test -e /proc/$$/fd/3 && echo inherited; exit 240'])
      expect(r.stderr).toBe('')
      expect(r.stdout).toBe('')
      expect(r.status).toBe(240)
      expect(r.bytes).toEqual([])
    })
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

/**
 * The sandbox's own mounts are locked (the launcher's last user namespace is nested in
 * the sandbox's, so the kernel locks every mount it inherits): a test can add mounts,
 * but not take ours away and look at what the host has underneath.
 */
describeSandbox('launcher: a test can\'t undo its sandbox', () => {
  const base = mkdtempSync(join(tmpdir(), 'vpr-locks-'))
  afterAll(() => rmSync(base, { recursive: true, force: true }))
  const PROBE = join(ROOT, 'test', 'fixtures', 'sandbox-locks', 'probe.cjs')
  const KOFFI = join(ROOT, 'node_modules', 'koffi')
  const HOSTS = join(base, 'hosts')
  writeFileSync(HOSTS, '127.0.0.1 localhost\n::1 localhost\n10.1.2.3 api.example.test\n')

  // every id the launcher can map here: root writes maps directly, a user needs subids
  const newuidmap = findExecutable('newuidmap')
  const newgidmap = findExecutable('newgidmap')
  const [subuid] = subidRangesOf('/etc/subuid')
  const [subgid] = subidRangesOf('/etc/subgid')
  const FULL: string[] | undefined =
    uid === 0
      ? ['--uid-map', '0:0:1', '--uid-map', '1:100000:65536', '--gid-map', '0:0:1', '--gid-map', '1:100000:65536']
      : subuid && subgid && subuid[1] >= 54321 && subgid[1] >= 54321 && newuidmap && newgidmap
        ? ['--uid-map', `0:${uid}:1`, '--uid-map', `1:${subuid[0]}:${subuid[1]}`, '--gid-map', `0:${gid}:1`, '--gid-map', `1:${subgid[0]}:${subgid[1]}`, '--newuidmap', newuidmap, '--newgidmap', newgidmap]
        : undefined
  const MAPS = FULL ?? SELF

  /** A host directory with a file only the host has, to be hidden by the sandbox's tmpfs. */
  function hostDir(name: string): { dir: string; kept: string } {
    const dir = join(base, name)
    const kept = join(dir, 'kept')
    mkdirSync(kept, { recursive: true })
    writeFileSync(join(dir, 'host-only'), 'host')
    writeFileSync(join(kept, 'f'), 'kept')
    return { dir, kept }
  }

  /** Runs the probe in a sandbox built from `args`; its results, one per op. */
  function probe(args: string[], ops: string[], options: { stdio?: Array<'pipe' | 'ignore' | number> } = {}): string[] {
    const r = spawnSync(LAUNCHER, [...args, '--', process.execPath, PROBE, KOFFI, ...ops], { encoding: 'utf8', cwd: '/', timeout: 20_000, stdio: options.stdio ?? ['ignore', 'pipe', 'pipe'] })
    expect(r.stderr, r.stderr).toBe('')
    expect(r.status, r.stdout).toBe(0)
    return JSON.parse(r.stdout) as string[]
  }

  /** Ops that peel every mount they can off the tmpfs target and /etc/hosts, then look. */
  const undo = (dir: string, kept: string) => [
    `umount=/etc/hosts`, `lazy=/etc/hosts`, `read=/etc/hosts`,
    `umount=${dir}`, `lazy=${dir}`, `lazy=${dir}`, `lazy=${dir}`, `umount=${dir}`,
    `lazy=${kept}`, `lazy=${kept}`,
    `ls=${dir}`, `read=${kept}/f`, `write=${dir}/escaped`, `lazy=/`,
  ]
  /** What `undo` must find: the writable layer goes (busy for a plain umount, then detached), nothing else. */
  const undone = [
    'EINVAL', 'EINVAL', '127.0.0.1 localhost\n::1 localhost\n10.1.2.3 api.example.test\n',
    'EBUSY', 'ok', 'EINVAL', 'EINVAL', 'EINVAL',
    'EINVAL', 'EINVAL',
    'kept', 'kept', 'EROFS', 'EINVAL',
  ]

  it('refuses to unmount /etc/hosts, the temp dir\'s floor and its kept paths; the host\'s directory never shows', () => {
    const { dir, kept } = hostDir('fresh')
    const results = probe([...MAPS, '--tmpfs', dir, '--keep', kept, '--hosts-file', HOSTS], undo(dir, kept))
    expect(results).toEqual(undone)
    expect(readdirSync(dir).sort()).toEqual(['host-only', 'kept'])
  })

  it('does the same in a pid namespace', () => {
    const { dir, kept } = hostDir('pidns')
    expect(probe([...MAPS, '--pid-namespace', '--tmpfs', dir, '--keep', kept, '--hosts-file', HOSTS], undo(dir, kept))).toEqual(undone)
    expect(readdirSync(dir).sort()).toEqual(['host-only', 'kept'])
  })

  it('does the same on the warm path (--userns-fd)', async () => {
    const holder = spawn(LAUNCHER, [...MAPS, '--hold'], { stdio: ['pipe', 'pipe', 'pipe'] })
    const ready = await new Promise<string>((resolve) => holder.stdout.setEncoding('utf8').once('data', resolve))
    expect(ready).toBe('ready\n')
    const fd = openSync(`/proc/${holder.pid}/ns/user`, 'r')
    holder.stdin.end()
    await new Promise((resolve) => holder.once('exit', resolve))
    try {
      const { dir, kept } = hostDir('warm')
      expect(probe(['--userns-fd', '3', '--tmpfs', dir, '--keep', kept, '--hosts-file', HOSTS], undo(dir, kept), { stdio: ['ignore', 'pipe', 'pipe', fd] })).toEqual(undone)
      expect(readdirSync(dir).sort()).toEqual(['host-only', 'kept'])
      if (FULL) {
        const [, , inner] = probe(['--userns-fd', '3', '--tmpfs', dir, '--keep', kept], ['write=' + join(dir, 'f'), 'chown=' + join(dir, 'f') + ':54321:54321', 'uid'], { stdio: ['ignore', 'pipe', 'pipe', fd] })
        expect(inner).toBe('0')
      }
    } finally {
      closeSync(fd)
    }
  })

  it('refuses --reset: that runs in the worker\'s own process (the addon)', () => {
    expectStepFailure(launch(['--reset', '--tmpfs', base]), 'usage', '--reset is for the worker\'s in-process reset')
  })

  it('keeps what tests may do: uid 0, their own mounts, writing the temp dir and /etc/hosts, sethostname, port 80 on 127.0.0.1 and ::1', () => {
    const { dir, kept } = hostDir('allowed')
    const own = join(dir, 'own')
    const results = probe([...MAPS, '--tmpfs', dir, '--keep', kept, '--hosts-file', HOSTS, '--hostname', 'box'], [
      'uid',
      `write=${dir}/file`, 'write=/etc/hosts', 'read=/etc/hosts',
      `mkdir=${own}`, `tmpfs=${own}`, `write=${own}/in-own`, `umount=${own}`, `ls=${own}`,
      `tmpfs=${kept}`, `ls=${kept}`, `umount=${kept}`, `ls=${kept}`,
      `mkdir=${own}/bound`, `bind=${kept}>${own}/bound`, `read=${own}/bound/f`,
      'hostname', 'sethostname=renamed', 'hostname',
      'listen=127.0.0.1:80', 'listen=::1:80', 'listen=127.0.0.1:443',
    ])
    expect(results).toEqual([
      '0',
      'ok', 'ok', 'probe',
      'ok', 'ok', 'ok', 'ok', '',
      'ok', '', 'ok', 'f',
      'ok', 'ok', 'kept',
      'box', 'ok', 'renamed',
      'ok', 'ok', 'ok',
    ])
  })

  it.skipIf(!FULL)('keeps chown to 1000 and 54321 (the subordinate ids are mapped in the nested namespace too)', () => {
    const { dir, kept } = hostDir('chown')
    const f = join(dir, 'owned')
    const results = probe([...MAPS, '--tmpfs', dir, '--keep', kept], [`write=${f}`, `chown=${f}:1000:1000`, `chown=${f}:54321:54321`, `chown=${f}:0:0`])
    expect(results).toEqual(['ok', '1000:1000', '54321:54321', '0:0'])
  })

  it('maps the same ids under the same numbers in the nested namespace', () => {
    const r = spawnSync(LAUNCHER, [...MAPS, '--', 'sh', '-c', 'cat /proc/self/uid_map /proc/self/gid_map'], { encoding: 'utf8' })
    expect(r.stderr).toBe('')
    const lines = r.stdout.trim().split('\n').map((l) => l.trim().split(/\s+/).map(Number))
    const identity = FULL ? [[0, 0, 1], [1, 1, uid === 0 ? 65536 : subuid![1]]] : [[0, 0, 1]]
    const identityG = FULL ? [[0, 0, 1], [1, 1, uid === 0 ? 65536 : subgid![1]]] : [[0, 0, 1]]
    expect(lines).toEqual([...identity, ...identityG])
  })

  it('gives each sandbox its own port 3000 (network namespaces stay separate)', async () => {
    const hold = `const s=require('net').createServer().listen(3000,'127.0.0.1',()=>{process.stdout.write('up\\n');setTimeout(()=>s.close(),1500)})`
    const children = [0, 1, 2].map(() => spawn(LAUNCHER, [...SELF, '--', process.execPath, '-e', hold], { stdio: ['ignore', 'pipe', 'pipe'] }))
    const outputs = await Promise.all(children.map((c) => new Promise<string>((resolve) => {
      let out = ''
      c.stdout.setEncoding('utf8').on('data', (d: string) => (out += d))
      c.stderr.setEncoding('utf8').on('data', (d: string) => (out += d))
      c.once('close', (code) => resolve(`${code} ${out}`))
    })))
    expect(outputs).toEqual(['0 up\n', '0 up\n', '0 up\n'])
  })

})
