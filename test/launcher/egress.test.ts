import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, openSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, expect, it } from 'vitest'
import { installedEgressHelpers } from '../../src/engine/egress.js'
import { LAUNCHER, describeSandbox } from '../support/sandbox.js'

// --egress KIND:PATH on the launcher alone: the flag's checks, a helper that never gets
// ready, and each installed helper giving the sandbox a default route -- started by the
// launcher's own spawner, and by the warm holder's for the namespaces it makes ahead.

const SELF = ['--uid-map', `0:${process.geteuid!()}:1`, '--gid-map', `0:${process.getegid!()}:1`]
const dir = mkdtempSync(join(tmpdir(), 'vpr-egress-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
const run = (args: string[], command = ['true'], fds: number[] = []) => spawnSync(LAUNCHER, [...args, '--', ...command], { encoding: 'utf8', cwd: '/', stdio: ['ignore', 'pipe', 'pipe', ...fds] })

it('refuses --egress that is not KIND:/PATH, or with the host network', () => {
  const bad = run([...SELF, '--egress', 'vde:/usr/bin/vde'])
  expect(bad.status).toBe(230)
  expect(bad.stderr).toContain("bad egress 'vde:/usr/bin/vde', expected pasta:PATH or slirp4netns:PATH, PATH absolute")
  const host = run([...SELF, '--host-network', '--egress', 'slirp4netns:/usr/bin/slirp4netns'])
  expect(host.status).toBe(230)
  expect(host.stderr).toContain("--egress needs the sandbox's own network, not --host-network")
})

describeSandbox('launcher --egress', () => {
  it("fails the egress step, with the helper's words, when the helper never gets ready", () => {
    const r = run([...SELF, '--egress', 'slirp4netns:/bin/false', '--pid-namespace'])
    expect(r.status).toBe(253)
    expect(r.stderr).toMatch(/^vitest-pool-rootless: egress: can't start the user-mode network: \/bin\/false exited before it was ready/)
  })

  for (const helper of installedEgressHelpers()) {
    it(`gives the sandbox a default route through ${helper.kind}, its own and from the holder's namespaces made ahead`, async () => {
      const egress = ['--egress', `${helper.kind}:${helper.path}`]
      const own = run([...SELF, ...egress, '--pid-namespace'], ['cat', '/proc/net/route'])
      expect(own.status, own.stderr).toBe(0)
      // a default route (destination 00000000) on a device other than lo
      expect(own.stdout).toMatch(/^\w+\t00000000\t/m)
      const socket = join(dir, `networks-${helper.kind}`)
      const holder = spawn(LAUNCHER, [...SELF, '--hold', '--networks', socket, ...egress], { stdio: ['pipe', 'pipe', 'pipe'] })
      expect(await new Promise<string>((resolve) => holder.stdout.setEncoding('utf8').once('data', resolve))).toBe('ready\n')
      const fd = openSync(`/proc/${holder.pid}/ns/user`, 'r')
      try {
        const warm = run(['--userns-fd', '3', '--networks', socket, ...egress, '--pid-namespace'], ['cat', '/proc/net/route'], [fd])
        expect(warm.status, warm.stderr).toBe(0)
        expect(warm.stdout).toMatch(/^\w+\t00000000\t/m)
      } finally {
        holder.stdin.end()
      }
    })
  }
})
