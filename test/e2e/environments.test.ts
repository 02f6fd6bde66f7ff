import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, expect, it } from 'vitest'
import { findExecutable } from '../../src/engine/host-facts.js'
import { CLI, describeSandbox, LAUNCHER } from '../support/sandbox.js'

const uid = process.geteuid!()
const isRoot = uid === 0
const node = process.execPath

/** Runs `sh -c script` with the CLI at $CLI and node at $NODE; returns status and output. */
function sh(script: string, env: Record<string, string> = {}) {
  return spawnSync('/bin/sh', ['-c', script], { encoding: 'utf8', cwd: '/', env: { ...process.env, CLI, NODE: node, LAUNCHER, ...env }, timeout: 30_000 })
}

const uidMapLines = (text: string) => text.trim().split('\n').map((l) => l.trim().split(/\s+/).map(Number))

describeSandbox('environments the pool meets, under real conditions', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vpr-env-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('NoNewPrivs (setpriv --no-new-privs): falls back to the caller alone and says why', () => {
    const r = sh('setpriv --no-new-privs "$NODE" "$CLI" exec -- /bin/cat /proc/self/uid_map')
    expect(r.status, r.stderr).toBe(0)
    if (isRoot) {
      // root writes its maps itself: NoNewPrivs changes nothing
      expect(r.stderr).toBe('')
    } else {
      expect(r.stderr).toContain('NoNewPrivs')
      // one id mapped (seen through the nested namespace that locks the mounts: 0 0 1)
      expect(uidMapLines(r.stdout)).toEqual([[0, 0, 1]])
    }
    const doctor = sh('setpriv --no-new-privs "$NODE" "$CLI" doctor --json')
    const row = (JSON.parse(doctor.stdout) as { checks: Array<{ id: string; status: string }> }).checks.find((c) => c.id === 'no-new-privs')
    expect(row?.status).toBe(isRoot ? 'ok' : 'warn')
  })

  it('a PATH without newuidmap: falls back and names the uidmap package', () => {
    // only node on PATH: no newuidmap, no newgidmap
    const bin = join(dir, 'bin')
    spawnSync('mkdir', ['-p', bin])
    symlinkSync(node, join(bin, 'node'))
    const r = sh('"$NODE" "$CLI" exec -- /bin/cat /proc/self/uid_map', { PATH: bin })
    expect(r.status, r.stderr).toBe(0)
    if (isRoot) {
      expect(r.stderr).toBe('')
    } else {
      expect(r.stderr).toContain('newuidmap/newgidmap are not installed')
      expect(r.stderr).toContain('apt-get install uidmap')
      // one id mapped (seen through the nested namespace that locks the mounts: 0 0 1)
      expect(uidMapLines(r.stdout)).toEqual([[0, 0, 1]])
    }
  })

  it('nested in `unshare -r` (one id mapped): maps what it has and says so', () => {
    const r = sh('unshare -r "$NODE" "$CLI" exec -- /bin/sh -c "id -u; cat /proc/self/uid_map"')
    expect(r.status, r.stderr).toBe(0)
    const [id, ...map] = r.stdout.trim().split('\n')
    expect(id).toBe('0')
    expect(uidMapLines(map.join('\n'))).toEqual([[0, 0, 1]])
    expect(r.stderr).toContain('already runs in a user namespace that maps only 1 uid(s)')
  })

  it('max_user_namespaces=0 (set inside a user namespace of this test): a clear error naming the sysctl', () => {
    const r = sh('unshare -r sh -c \'echo 0 > /proc/sys/user/max_user_namespaces && "$NODE" "$CLI" exec -- /bin/true\'')
    expect(r.status).toBe(234)
    // (before it: the warning that only one id is mapped in this nested namespace)
    expect(r.stderr.trim().split('\n').at(-1)).toBe("vitest-pool-rootless: unshare: can't create a user namespace (limit in /proc/sys/user/max_user_namespaces): No space left on device")
    const doctor = sh('unshare -r sh -c \'echo 0 > /proc/sys/user/max_user_namespaces && "$NODE" "$CLI" doctor\'')
    expect(doctor.status).toBe(1)
    expect(doctor.stdout).toMatch(/FAIL\s+\/proc\/sys\/user\/max_user_namespaces\s+is 0: user namespaces are switched off/)
    expect(doctor.stdout).toContain('fix: sudo sysctl -w user.max_user_namespaces=15000')
  })

  const strace = findExecutable('strace')
  it.each([
    ['EPERM', "vitest-pool-rootless: unshare: can't create user/mount namespaces: Operation not permitted"],
    ['EACCES', "vitest-pool-rootless: unshare: can't create user/mount namespaces: Permission denied"],
    ['ENOSPC', "vitest-pool-rootless: unshare: can't create a user namespace (limit in /proc/sys/user/max_user_namespaces): No space left on device"],
  ])('unshare failing with %s (injected with strace) gives one clear line', (errno, message) => {
    if (!strace) throw new Error('strace is needed for this test: apt-get install strace')
    const r = sh(`strace -f -qq -o /dev/null -e trace=unshare -e inject=unshare:error=${errno} "$LAUNCHER" --uid-map 0:${uid}:1 --gid-map 0:${process.getegid!()}:1 -- /bin/true`)
    expect(r.status).toBe(234)
    expect(r.stderr.trim()).toBe(message)
  })

  it('doctor --json reports every check and a passing live sandbox here', () => {
    const r = sh('"$NODE" "$CLI" doctor --json')
    expect(r.status, r.stdout).toBe(0)
    const report = JSON.parse(r.stdout) as { ok: boolean; checks: Array<{ id: string; status: string; detail: string }> }
    expect(report.ok).toBe(true)
    const ids = report.checks.map((c) => c.id)
    for (const id of ['kernel-userns', 'max-user-namespaces', 'unprivileged-userns-clone', 'apparmor-userns', 'seccomp', 'no-new-privs', 'newuidmap', 'newgidmap', '/etc/subuid', '/etc/subgid', 'nested', 'launcher', 'probe-uid', 'probe-chown', 'probe-port80', 'probe-hosts', 'probe-forward', 'probe-dns', 'probe-apparmor', 'probe-read-only']) {
      expect(ids, id).toContain(id)
    }
    for (const id of ['probe-port80', 'probe-forward', 'probe-dns', 'probe-read-only']) expect(report.checks.find((c) => c.id === id)?.status, id).toBe('ok')
    // this kernel (5.14+) takes connects to forwarded ports straight to the host
    expect(report.checks.find((c) => c.id === 'probe-forward')?.detail).toContain('connected straight to the host')
  })

  // Only root can switch to such a user; .ci/run creates one and runs this as root.
  const user = process.env.VITEST_POOL_ROOTLESS_NOSUBID_USER
  it.skipIf(!user || !isRoot)('a user without a /etc/subuid entry (VITEST_POOL_ROOTLESS_NOSUBID_USER): falls back with the line to add', () => {
    const r = spawnSync('runuser', ['-u', user!, '--', node, CLI, 'exec', '--', '/bin/cat', '/proc/self/uid_map'], { encoding: 'utf8', cwd: '/' })
    expect(r.status, r.stderr).toBe(0)
    expect(r.stderr).toContain('/etc/subuid and /etc/subgid have no range for')
    // the proposed range is free: no line of either file overlaps it
    const proposed = /--add-subuids (\d+)-(\d+) --add-subgids \1-\2 /.exec(r.stderr)
    expect(proposed, r.stderr).not.toBeNull()
    const [start, end] = [Number(proposed![1]), Number(proposed![2])]
    for (const file of ['/etc/subuid', '/etc/subgid']) {
      for (const line of readFileSync(file, 'utf8').split('\n').filter((l) => /^[^#].*:\d+:\d+$/.test(l))) {
        const [, s, c] = line.split(':').map(Number) as [number, number, number]
        expect(s + c <= start || s > end, `${file}: ${line} overlaps ${start}-${end}`).toBe(true)
      }
    }
    expect(uidMapLines(r.stdout)).toHaveLength(1)
  })
})

