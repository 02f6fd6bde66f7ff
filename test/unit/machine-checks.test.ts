import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { explainFailure, probeFailureFix, staticChecks, type Check } from '../../src/engine/machine-checks.js'
import { createIdMapPlan } from '../../src/plan/idmap.js'

const HEALTHY: Record<string, string> = {
  'proc/self/ns/user': '',
  'proc/self/status': 'Name:\tnode\nNoNewPrivs:\t0\nSeccomp:\t0\n',
  'proc/self/uid_map': '         0          0 4294967295\n',
  'proc/sys/user/max_user_namespaces': '63000\n',
  'etc/subuid': 'someone:100000:65536\n',
  'etc/subgid': 'someone:100000:65536\n',
}

let roots: string[] = []
afterEach(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true })
  roots = []
})

/** A fake / with the healthy files, `changes` applied (null deletes a file). */
function fakeRoot(changes: Record<string, string | null> = {}): string {
  const root = mkdtempSync(join(tmpdir(), 'vpr-fake-root-'))
  roots.push(root)
  for (const [path, content] of Object.entries({ ...HEALTHY, ...changes })) {
    if (content === null) continue
    mkdirSync(dirname(join(root, path)), { recursive: true })
    writeFileSync(join(root, path), content)
  }
  return root
}

const check = (checks: Check[], id: string) => checks.find((c) => c.id === id)!

describe('doctor checks on a fake /proc and /etc', () => {
  it('passes a healthy machine', () => {
    const checks = staticChecks({ root: fakeRoot(), uid: 1000 })
    for (const id of ['kernel-userns', 'max-user-namespaces', 'unprivileged-userns-clone', 'apparmor-userns', 'seccomp', 'no-new-privs', 'nested']) {
      expect(check(checks, id).status, id).toBe('ok')
    }
  })

  it('fails without kernel user namespaces', () => {
    const c = check(staticChecks({ root: fakeRoot({ 'proc/self/ns/user': null }), uid: 1000 }), 'kernel-userns')
    expect(c.status).toBe('fail')
    expect(c.fix).toContain('CONFIG_USER_NS')
  })

  it('fails when max_user_namespaces is 0, naming the sysctl', () => {
    const c = check(staticChecks({ root: fakeRoot({ 'proc/sys/user/max_user_namespaces': '0\n' }), uid: 1000 }), 'max-user-namespaces')
    expect(c.status).toBe('fail')
    expect(c.title).toBe('/proc/sys/user/max_user_namespaces')
    expect(c.fix).toContain('sysctl -w user.max_user_namespaces=')
  })

  it('fails on kernel.unprivileged_userns_clone=0 for a normal user, not for root', () => {
    const root = fakeRoot({ 'proc/sys/kernel/unprivileged_userns_clone': '0\n' })
    expect(check(staticChecks({ root, uid: 1000 }), 'unprivileged-userns-clone').fix).toBe('sudo sysctl -w kernel.unprivileged_userns_clone=1')
    expect(check(staticChecks({ root, uid: 0 }), 'unprivileged-userns-clone').status).toBe('ok')
  })

  it('fails on Ubuntu\'s AppArmor restriction, with the sysctl and a profile for the launcher', () => {
    const c = check(staticChecks({ root: fakeRoot({ 'proc/sys/kernel/apparmor_restrict_unprivileged_userns': '1\n' }), uid: 1000 }), 'apparmor-userns')
    expect(c.status).toBe('fail')
    expect(c.fix).toContain('sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0')
    expect(c.fix).toMatch(/profile vitest-pool-rootless \/\S+launcher flags=\(unconfined\) \{ userns, \}/)
  })

  it("warns about a seccomp filter with the Docker options, recommending the profile `seccomp` prints (as the README does), not seccomp=unconfined", () => {
    const c = check(staticChecks({ root: fakeRoot({ 'proc/self/status': 'NoNewPrivs:\t0\nSeccomp:\t2\n' }), uid: 1000 }), 'seccomp')
    expect(c.status).toBe('warn')
    expect(c.fix).toContain('npx vitest-pool-rootless seccomp > vitest-pool-rootless.seccomp.json')
    expect(c.fix).toContain('--security-opt seccomp=vitest-pool-rootless.seccomp.json')
    expect(c.fix).toContain('--security-opt systempaths=unconfined')
    expect(c.fix).not.toContain('seccomp=unconfined')
  })

  it("the live sandbox's fix points at the check above that explains it, with no second \"fix:\" inside", () => {
    const checks = staticChecks({ root: fakeRoot({ 'proc/self/status': 'NoNewPrivs:\t0\nSeccomp:\t2\n' }), uid: 1000 })
    const fix = probeFailureFix('unshare', 'vitest-pool-rootless: unshare: Operation not permitted', checks)
    expect(fix).toBe('see "seccomp" above')
    // nothing above explains it: the step's own hint
    expect(probeFailureFix('uid-map', '', [])).toContain('subids: false')
  })

  it('warns about NoNewPrivs for a normal user', () => {
    const c = check(staticChecks({ root: fakeRoot({ 'proc/self/status': 'NoNewPrivs:\t1\nSeccomp:\t0\n' }), uid: 1000 }), 'no-new-privs')
    expect(c.status).toBe('warn')
    expect(c.fix).toContain('no-new-privileges')
  })

  it('warns when already nested in a user namespace, showing the map', () => {
    const c = check(staticChecks({ root: fakeRoot({ 'proc/self/uid_map': '0 1000 1\n' }), uid: 0 }), 'nested')
    expect(c.status).toBe('warn')
    expect(c.detail).toContain('0 1000 1')
  })

  it('reports a subuid line that contains the user\'s own id as a failure naming the line', () => {
    const c = check(staticChecks({ root: fakeRoot({ 'etc/subuid': `# comment\n${process.geteuid!()}:0:4294967000\n` }), uid: process.geteuid!() }), '/etc/subuid')
    expect(c.status).toBe('fail')
    expect(c.detail).toContain('/etc/subuid:2')
  })

  it("reports the user's own malformed subuid line as a failure naming it, and ignores other users' lines", () => {
    const uid = process.geteuid!()
    const checks = staticChecks({ root: fakeRoot({ 'etc/subuid': `mallory:bad\n${uid}:x:1\n` }), uid })
    const c = check(checks, '/etc/subuid')
    expect(c.status).toBe('fail')
    expect(c.detail).toContain('/etc/subuid:2')
  })

  it('turns failing checks into the pool\'s error text', () => {
    const checks = staticChecks({ root: fakeRoot({ 'proc/sys/user/max_user_namespaces': '0\n' }), uid: 1000 })
    const text = explainFailure('unshare', 'vitest-pool-rootless: unshare: ...', checks)
    expect(text).toContain('/proc/sys/user/max_user_namespaces: is 0')
    expect(text).toContain('fix: sudo sysctl -w user.max_user_namespaces=15000')
  })

  it('falls back to a hint per step when no check explains the failure', () => {
    const checks = staticChecks({ root: fakeRoot(), uid: 1000 }).filter((c) => c.status !== 'fail')
    expect(explainFailure('uid-map', '', checks)).toContain('subids: false')
    expect(explainFailure('unshare', '', checks)).toContain('vitest-pool-rootless doctor')
  })
})

describe('id maps when already inside a user namespace', () => {
  const base = { uid: 0, gid: 0, subuid: [], subgid: [], newuidmap: null, newgidmap: null, noNewPrivs: false }
  it('maps only the ids the outer namespace has, and says so', () => {
    const plan = createIdMapPlan({ ...base, ownUidMap: [{ inside: 0, outside: 1000, count: 1 }], ownGidMap: [{ inside: 0, outside: 1000, count: 1 }] }, 'auto')
    expect(plan.uidMap).toEqual([{ inside: 0, outside: 0, count: 1 }])
    expect(plan.mode).toBe('self')
    expect(plan.warning).toContain('maps only 1 uid(s)')
  })
  it('uses a larger outer range up to 65536 ids', () => {
    const own = [{ inside: 0, outside: 1000, count: 1 }, { inside: 1, outside: 100000, count: 65536 }]
    const plan = createIdMapPlan({ ...base, ownUidMap: own, ownGidMap: own }, 'auto')
    expect(plan.uidMap).toEqual([{ inside: 0, outside: 0, count: 65536 }])
    expect(plan.warning).toBeUndefined()
  })
})
