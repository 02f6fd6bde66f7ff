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

it('refuses --egress-allow that is no address or range, or without --egress', () => {
  for (const bad of ['10.0.0.0/33', 'example.com', '10.0.0.0/', 'fd00::/129']) {
    const r = run([...SELF, '--egress', 'slirp4netns:/usr/bin/slirp4netns', '--egress-allow', bad])
    expect(r.status, bad).toBe(230)
    expect(r.stderr).toContain(`bad egress range '${bad}', expected ADDR or ADDR/LEN, IPv4 or IPv6`)
  }
  const alone = run([...SELF, '--egress-allow', '10.0.0.0/8'])
  expect(alone.status).toBe(230)
  expect(alone.stderr).toContain('--egress-allow goes with --egress')
})

/** What a connect(2) to each host:port gives inside, and how long it took. */
const CONNECTS = `const net = require('net'); Promise.all(process.argv.slice(1).map((to) => new Promise((resolve) => {
  const [host, port] = to.split(' '); const start = Date.now()
  net.connect({ host, port: Number(port) }).on('connect', function () { this.destroy(); resolve(to + ' connected') })
    .on('error', (e) => resolve(to + ' ' + e.code + ' ' + (Date.now() - start < 1000 ? 'at once' : 'slowly')))
}))).then((r) => console.log(r.join('\\n')))`

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

    it(`restricts ${helper.kind}'s routes to --egress-allow: the rest refused at once, the DNS forwarder kept`, () => {
      const egress = ['--egress', `${helper.kind}:${helper.path}`, '--egress-allow', '192.0.2.0/24', '--egress-allow', '10.1.2.3/16']
      const r = run([...SELF, ...egress, '--pid-namespace'], [process.execPath, '-e', `require('fs').writeSync(1, require('fs').readFileSync('/proc/net/route', 'utf8')); ${CONNECTS}`, '203.0.113.1 80', '10.0.2.2 80'])
      expect(r.status, r.stderr).toBe(0)
      const routes = r.stdout.split('\n').filter((line) => /^\S+\t[0-9A-F]{8}\t/.test(line)).map((line) => line.split('\t'))
      // Iface Destination Gateway Flags ... Mask, little-endian hex: an unreachable default (RTF_REJECT 0x0200),
      // the allowed ranges through the gateway (host bits cleared), the DNS forwarder on the link
      expect(routes.find((f) => f[1] === '00000000')?.[3]).toBe('0201')
      expect(routes.filter((f) => f[1] !== '00000000').map((f) => [f[1], f[2] !== '00000000', f[7]])).toEqual(
        expect.arrayContaining([
          ['000200C0', true, '00FFFFFF'],
          ['0000010A', true, '0000FFFF'],
          [helper.kind === 'pasta' ? '0101FEA9' : '0302000A', false, 'FFFFFFFF'],
        ]),
      )
      // nothing else: not the helper's default route, not its subnet
      expect(routes).toHaveLength(4)
      expect(r.stdout).toContain('203.0.113.1 80 EHOSTUNREACH at once')
      expect(r.stdout).toContain('10.0.2.2 80 EHOSTUNREACH at once')
    })
  }
})
