import { type Check, probeFailureFix, staticChecks } from '../engine/machine-checks.js'
import { validateSandboxOptions } from '../plan/options.js'
import { prepareSandbox, runSandboxed } from '../engine/sandbox.js'
import { launcherStep } from '../plan/steps.js'
import { createServer, type AddressInfo, type Server } from 'node:net'

/** Runs inside the probe sandbox: everything a test file relies on, reported as JSON. */
const PROBE_SCRIPT = `
const fs = require('node:fs'), net = require('node:net'), dns = require('node:dns'), os = require('node:os'), path = require('node:path')
const out = { uid: process.getuid() }
try { out.apparmor = fs.readFileSync('/proc/self/attr/apparmor/current', 'utf8').trim() } catch { try { out.apparmor = fs.readFileSync('/proc/self/attr/current', 'utf8').replace(/\\0/g, '').trim() } catch {} }
const file = path.join(os.tmpdir(), 'probe')
fs.writeFileSync(file, '')
try { fs.chownSync(file, 54321, 54321); out.chown = fs.statSync(file).uid === 54321 ? 'ok' : 'wrong owner' } catch (e) { out.chown = e.code }
const server = net.createServer()
server.once('error', (e) => { out.port80 = e.code; lookup() })
server.listen(80, '127.0.0.1', () => { out.port80 = 'ok'; server.close(lookup) })
function lookup() { dns.lookup('doctor.probe.test', 4, (e, a) => { out.hosts = e ? e.code : a; unknown() }) }
function unknown() { dns.lookup('no-such-name.doctor.probe.invalid', 4, (e) => { out.dns = e ? e.code : 'resolved'; forward() }) }
// the doctor's own port, forwarded in; a forwarded port the host doesn't serve
function connect(port, then) {
  const s = net.connect(Number(port), '127.0.0.1'); let got = '', local
  s.once('connect', () => (local = s.localPort))
  s.setTimeout(5000, () => { s.destroy(); then('timeout') })
  s.on('data', (d) => (got += d)).on('end', () => then(got, local)).on('error', (e) => then(e.code))
}
function forward() { connect(process.argv[1], (r, local) => { out.forward = r; out.forwardFrom = local; connect(process.argv[2], (d) => { out.down = d; console.log(JSON.stringify(out)) }) }) }
`

interface ProbeResult {
  uid?: number
  apparmor?: string
  chown?: string
  port80?: string
  hosts?: string
  dns?: string
  forward?: string
  /** the client's own port inside: the host server saw the same one when the connect went straight to it */
  forwardFrom?: number
  down?: string
}

/** A server of the doctor's own, as a globalSetup server is the runner's, and a port nothing serves. */
async function hostServers(): Promise<{ server: Server; port: number; downPort: number }> {
  const listen = (server: Server) => new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)))
  // a client that goes away first must not take the doctor down with an unhandled 'error'
  // it answers with the port the connection came from: the client's own, or the relay's
  const server = createServer((socket) => socket.on('error', () => {}).end(`${FORWARD_REPLY} ${socket.remotePort}`))
  const down = createServer()
  const [port, downPort] = [await listen(server), await listen(down)]
  await new Promise((resolve) => down.close(resolve))
  return { server, port, downPort }
}

const FORWARD_REPLY = 'from the host'

/** Builds a real sandbox with the pool's own plan and checks it from inside. */
export async function liveProbe(): Promise<Check[]> {
  const host = await hostServers()
  try {
    return await probeWith(host)
  } finally {
    host.server.close()
  }
}

async function probeWith(host: { port: number; downPort: number }): Promise<Check[]> {
  const options = validateSandboxOptions({ hosts: { 'doctor.probe.test': '127.0.0.1' }, hostPorts: [host.downPort] })
  let sandbox
  try {
    sandbox = await prepareSandbox(options)
  } catch (error) {
    return [{ id: 'probe', title: 'live sandbox', status: 'skip', detail: (error as Error).message.split('\n')[0]! }]
  }
  try {
    const args = sandbox.args({ needs: [process.execPath], newSession: true, runnerPorts: [host.port] })
    const { code, stdout, stderr } = await runSandboxed(sandbox.launcher, args, [process.execPath, '-e', PROBE_SCRIPT, String(host.port), String(host.downPort)])
    if (code !== 0) {
      const step = launcherStep(code) ?? 'probe'
      return [{ id: 'probe', title: 'live sandbox', status: 'fail', detail: `${step} failed: ${stderr.trim()}`, fix: probeFailureFix(step, stderr) }]
    }
    const r = JSON.parse(stdout) as ProbeResult
    const subids = sandbox.idMap.mode !== 'self'
    const reached = r.forward?.startsWith(FORWARD_REPLY) === true
    const path =
      r.forward === `${FORWARD_REPLY} ${r.forwardFrom}`
        ? 'connected straight to the host'
        : 'through the relay (direct connects need Linux 5.14+ with seccomp user notification, and a pid namespace)'
    return [
      { id: 'probe-uid', title: 'sandbox: uid 0', status: r.uid === 0 ? 'ok' : 'fail', detail: `uid ${r.uid}` },
      subids
        ? { id: 'probe-chown', title: 'sandbox: chown to uid 54321', status: r.chown === 'ok' ? 'ok' : 'fail', detail: r.chown ?? 'not run' }
        : { id: 'probe-chown', title: 'sandbox: chown to uid 54321', status: 'warn', detail: `${r.chown} (only your own id is mapped)`, fix: sandbox.idMap.warning?.replace(/^vitest-pool-rootless: /, '') },
      { id: 'probe-port80', title: 'sandbox: listen on port 80', status: r.port80 === 'ok' ? 'ok' : 'fail', detail: r.port80 ?? 'not run' },
      { id: 'probe-hosts', title: 'sandbox: private /etc/hosts', status: r.hosts === '127.0.0.1' ? 'ok' : 'fail', detail: `doctor.probe.test -> ${r.hosts}` },
      {
        id: 'probe-forward',
        title: 'sandbox: reach a forwarded host port',
        status: reached && r.down === 'ECONNREFUSED' ? 'ok' : 'fail',
        detail: reached ? `127.0.0.1:${host.port} answered, ${path}; a port the host doesn't serve: ${r.down}` : `127.0.0.1:${host.port}: ${r.forward ?? 'not run'}`,
        fix: "globalSetup servers and `hostPorts` won't be reachable from tests; `network: 'host'` reaches the host's ports without the forwarder",
      },
      { id: 'probe-dns', title: 'sandbox: unknown names', status: r.dns === 'ENOTFOUND' ? 'ok' : 'warn', detail: `${r.dns ?? 'not run'}${r.dns === 'ENOTFOUND' ? ' (no DNS inside: names come from `hosts`)' : ''}`, fix: 'expected ENOTFOUND: a test asserting it may see another code here' },
      { id: 'probe-apparmor', title: 'sandbox: AppArmor label', status: 'ok', detail: r.apparmor || 'none (AppArmor not active)' },
      await readOnlyProbe(),
    ]
  } finally {
    await sandbox.cleanup()
  }
}

/**
 * `writable`'s read-only host, built once: its root mount must say `ro` (read, not
 * tried by writing: a host that stayed writable would keep the file). A warning where it
 * can't be built: only that option needs it.
 */
async function readOnlyProbe(): Promise<Check> {
  const row = { id: 'probe-read-only', title: 'sandbox: read-only host (`writable`)' }
  const fix = '`writable` needs Linux 5.12 or newer (mount_setattr); without it, leave `writable` unset'
  const sandbox = await prepareSandbox(validateSandboxOptions({ writable: [] }))
  try {
    const script = `const root = require('node:fs').readFileSync('/proc/self/mountinfo', 'utf8').split('\\n').map((l) => l.split(' ')).find((f) => f[4] === '/'); console.log(root[5].split(',').includes('ro') ? 'read-only' : 'writable')`
    const { code, stdout, stderr } = await runSandboxed(sandbox.launcher, sandbox.args({ needs: [process.execPath], writable: [] }), [process.execPath, '-e', script])
    if (code !== 0) return { ...row, status: 'warn', detail: `${launcherStep(code) ?? 'probe'} failed: ${stderr.trim()}`, fix }
    const got = stdout.trim()
    return { ...row, status: got === 'read-only' ? 'ok' : 'warn', detail: `the host's files: ${got}`, fix }
  } finally {
    sandbox.cleanup()
  }
}

const MARK = { ok: 'ok  ', warn: 'WARN', fail: 'FAIL', skip: 'skip' } as const

/** `vitest-pool-rootless doctor [--json]`: exit 1 when the pool can't work here. */
export async function runDoctor(json: boolean): Promise<number> {
  const checks = [...staticChecks(), ...(await liveProbe())]
  const ok = !checks.some((c) => c.status === 'fail')
  if (json) {
    process.stdout.write(`${JSON.stringify({ ok, checks }, null, 2)}\n`)
  } else {
    const width = Math.max(...checks.map((c) => c.title.length))
    for (const c of checks) {
      process.stdout.write(`${MARK[c.status]}  ${c.title.padEnd(width)}  ${c.detail}\n`)
      if (c.fix && c.status !== 'ok') process.stdout.write(`${' '.repeat(width + 8)}fix: ${c.fix}\n`)
    }
    process.stdout.write(ok ? '\nrootless() can run on this machine.\n' : '\nrootless() can NOT run on this machine: see the FAIL rows above.\n')
  }
  return ok ? 0 : 1
}
