import { spawn, spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { locateAddon } from '../../src/engine/launcher-path.js'
import { createResetPlan, type SandboxPlan } from '../../src/plan/plan.js'
import { RESET_ENV } from '../../src/wire/wire.js'
import { LAUNCHER, ROOT, describeSandbox } from '../support/sandbox.js'

// The in-process reset (native/addon.c through src/inside/sandbox-reset.ts), run where it
// runs for real: in a Node process the launcher started in a sandbox, between two "files".

const ADDON = locateAddon()
const uid = process.geteuid!()
const gid = process.getegid!()
const SELF = ['--uid-map', `0:${uid}:1`, '--gid-map', `0:${gid}:1`]
const HOSTS = '127.0.0.1 localhost\n::1 localhost\n10.1.2.3 api.example.test\n'

describe('the reset addon', () => {
  it('refuses to run outside a sandbox, where it would mount over the host\'s own directories', () => {
    const module = { exports: {} as { reset(args: string[]): void } }
    process.dlopen(module, ADDON)
    expect(() => module.exports.reset(['--reset', '--tmpfs', tmpdir()])).toThrow(/runs only inside a sandbox/)
    expect(() => module.exports.reset(['--bogus'])).toThrow(/unknown option '--bogus'/)
  })
})

describeSandbox('a reused worker\'s sandbox, reset in place between files', () => {
  const base = mkdtempSync(join(tmpdir(), 'vpr-reset-'))
  afterAll(() => rmSync(base, { recursive: true, force: true }))

  /**
   * Runs `script` (an ES module body) as the worker, in a sandbox the launcher builds with
   * a tmpfs on `dir` (keeping `keep`), given the reset plan the engine would hand it.
   */
  function worker(flags: string[], script: string, keep: string[], dir: string, options: { pidNamespace?: boolean; resetTmpfs?: string; forwards?: SandboxPlan['forwards'] } = {}) {
    const pidNamespace = options.pidNamespace ?? true
    const forwards = options.forwards ?? []
    const plan: SandboxPlan = { user: { joinFd: 3 }, mounts: [{ tmpfs: options.resetTmpfs ?? dir, keep }], network: 'isolated', forwards, newSession: false, pidNamespace }
    flags = [...flags, ...forwards.flatMap((f) => ['--forward', `${f.inside}:${f.host}`])]
    const reset = createResetPlan(plan, HOSTS, ADDON)
    const hostsFile = join(base, 'hosts')
    writeFileSync(hostsFile, HOSTS)
    const module = join(ROOT, 'dist', 'inside', 'sandbox-reset.js')
    const body = `import { SandboxReset } from ${JSON.stringify(module)}\nimport { spawn, spawnSync } from 'node:child_process'\nimport * as fs from 'node:fs'\nimport * as net from 'node:net'\nimport * as os from 'node:os'\nconst sh = (s) => spawnSync('sh', ['-c', s], { encoding: 'utf8' })\n${script}`
    const pidns = pidNamespace ? ['--pid-namespace'] : []
    return spawnSync(LAUNCHER, [...SELF, '--tmpfs', dir, ...keep.flatMap((k) => ['--keep', k]), '--hosts-file', hostsFile, '--hostname', 'first', ...pidns, ...flags, '--', process.execPath, '--input-type=module', '-e', body], {
      encoding: 'utf8',
      cwd: '/',
      env: { ...process.env, [RESET_ENV]: JSON.stringify(reset) },
      timeout: 30_000,
    })
  }

  it('leaves nothing of the first file: temp dir, mounts, processes, sockets, hostname, /etc/hosts', () => {
    const dir = join(base, 'full')
    const kept = join(dir, 'kept')
    mkdirSync(kept, { recursive: true })
    writeFileSync(join(kept, 'f'), 'kept')
    writeFileSync(join(dir, 'host-only'), 'host')
    const script = `
      const sandbox = SandboxReset.fromEnv()
      const report = {}
      // the first file: leaves a file, a server on port 3000, a daemon, its own mounts
      // (one over /mnt, one stacked on the temp dir after taking ours away), a bind on
      // /etc/hosts, a hostname
      fs.writeFileSync('${dir}/left-over', 'x')
      const server = net.createServer().listen(3000, '127.0.0.1')
      await new Promise((r) => server.once('listening', r))
      const daemon = sh('setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $!').stdout.trim()
      // live ones: a killed process init has not reaped yet is a zombie, holding nothing
      const live = (pid) => { try { return !/^\d+ \(.*\) [ZX] /.test(fs.readFileSync('/proc/' + pid + '/stat', 'utf8')) } catch { return false } }
      const pids = () => fs.readdirSync('/proc').filter((e) => /^[0-9]+$/.test(e)).map(Number).filter(live).sort((a, b) => a - b)
      report.before = pids().includes(Number(daemon))
      sh('mount -t tmpfs none /mnt && touch /mnt/m')
      sh('umount -l ${dir} && mount -t tmpfs none ${dir} && touch ${dir}/stacked')
      sh('echo bound > ${dir}/hosts && mount --bind ${dir}/hosts /etc/hosts')
      sh('hostname renamed')
      report.env = process.env.${RESET_ENV} === undefined
      sandbox.reset()
      // the second file
      report.dir = fs.readdirSync('${dir}').sort()
      report.kept = fs.readFileSync('${kept}/f', 'utf8')
      report.mnt = fs.existsSync('/mnt/m')
      report.hosts = fs.readFileSync('/etc/hosts', 'utf8')
      report.hostname = os.hostname()
      report.after = pids()
      report.pid = process.pid
      const again = net.createServer().listen(3000, '127.0.0.1')
      report.port = await new Promise((r) => { again.once('listening', () => r('free')); again.once('error', (e) => r(e.code)) })
      again.close()
      fs.writeFileSync('${dir}/new', 'y')
      report.writable = true
      sandbox.reset()
      report.third = fs.readdirSync('${dir}').sort()
      console.log(JSON.stringify(report))
      process.exit(0)
    `
    const r = worker([], script, [kept], dir)
    expect(r.stderr).toBe('')
    expect(r.status).toBe(0)
    const report = JSON.parse(r.stdout)
    expect(report).toMatchObject({
      env: true,
      dir: ['kept'],
      kept: 'kept',
      mnt: false,
      hosts: HOSTS,
      hostname: 'first',
      port: 'free',
      writable: true,
      third: ['kept'],
    })
    // the daemon ran; afterwards only init and the worker are left
    expect(report.before).toBe(true)
    expect(report.after).toEqual([1, report.pid])
    // and the host's directory was never touched
    expect(readdirSync(dir).sort()).toEqual(['host-only', 'kept'])
  })

  it("keeps the worker's own children (its session's), stops what left the session or was orphaned", () => {
    const dir = join(base, 'children')
    mkdirSync(dir, { recursive: true })
    const r = worker([], `
      const sandbox = SandboxReset.fromEnv()
      const live = (pid) => { try { return !/^\\d+ \\(.*\\) [ZX] /.test(fs.readFileSync('/proc/' + pid + '/stat', 'utf8')) } catch { return false } }
      // a pool's child, kept between files; and its own child, still in the session
      const pooled = spawn('sh', ['-c', 'sleep 300 & wait'], { stdio: 'ignore' })
      const detached = spawn('sleep', ['301'], { detached: true, stdio: 'ignore' })
      // a shell that starts a sleep in the background and exits: the sleep is init's now
      const orphan = Number(sh('sleep 302 </dev/null >/dev/null 2>&1 & echo $!').stdout.trim())
      await new Promise((r) => setTimeout(r, 100))
      const grandchild = Number(sh('pgrep -P ' + pooled.pid).stdout.trim())
      const before = [pooled.pid, grandchild, detached.pid, orphan].map(live)
      sandbox.reset()
      console.log(JSON.stringify({ before, after: [pooled.pid, grandchild, detached.pid, orphan].map(live) }))
      pooled.kill('SIGKILL')
      process.exit(0)
    `, [], dir)
    expect(r.stderr).toBe('')
    expect(JSON.parse(r.stdout)).toEqual({ before: [true, true, true, true], after: [true, true, false, false] })
  })

  it("keeps a module's server reachable from later files, on a port each file may still listen on itself", () => {
    const dir = join(base, 'module-server')
    mkdirSync(dir, { recursive: true })
    const r = worker([], `
      const sandbox = SandboxReset.fromEnv()
      const serve = (port, name) => new Promise((r) => { const s = net.createServer((c) => c.end(name)).listen(port, '127.0.0.1', () => r(s)) })
      const read = (port, host = '127.0.0.1') => new Promise((resolve) => {
        let got = ''
        net.connect(port, host).on('data', (d) => (got += d)).on('end', () => resolve(got)).on('error', (e) => resolve(e.code))
      })
      // the first file imports a helper that serves on 4567, and leaves a server on 3000
      await serve(4567, 'module')
      ;(await serve(3000, 'left')).unref()
      const files = []
      for (let file = 2; file <= 3; file++) {
        sandbox.reset()
        const seen = { module: await read(4567), left: await read(3000), nobody: await read(4568) }
        // the port the first file left taken is this file's to listen on
        const own = await serve(3000, 'own ' + file)
        seen.own = await read(3000)
        own.close()
        files.push(seen)
      }
      console.log(JSON.stringify(files))
      process.exit(0)
    `, [], dir)
    expect(r.stderr).toBe('')
    expect(JSON.parse(r.stdout)).toEqual([
      { module: 'module', left: 'left', nobody: 'ECONNREFUSED', own: 'own 2' },
      { module: 'module', left: 'left', nobody: 'ECONNREFUSED', own: 'own 3' },
    ])
  })

  it('enters a network namespace made ahead on a thread, a new one for every file, with lo up', () => {
    const dir = join(base, 'made-ahead')
    mkdirSync(dir, { recursive: true })
    const r = worker([], `
      const sandbox = SandboxReset.fromEnv()
      // the namespace made ahead is held by an fd of this process until a reset enters it
      const held = () => fs.readdirSync('/proc/self/fd').map((fd) => { try { return fs.readlinkSync('/proc/self/fd/' + fd) } catch { return '' } }).filter((l) => l.startsWith('net:'))
      const files = [{ ns: fs.readlinkSync('/proc/self/ns/net') }]
      for (let i = 0; i < 4; i++) {
        let ahead = held()
        for (let wait = 0; ahead.length === 0 && wait < 100; wait++) { await new Promise((r) => setTimeout(r, 20)); ahead = held() }
        sandbox.reset()
        const server = net.createServer((c) => c.end('lo')).listen(3000, '127.0.0.1')
        await new Promise((r) => server.once('listening', r))
        const got = await new Promise((resolve) => { let d = ''; net.connect(3000, '127.0.0.1').on('data', (x) => (d += x)).on('end', () => resolve(d)).on('error', (e) => resolve(e.code)) })
        server.close()
        files.push({ ahead, ns: fs.readlinkSync('/proc/self/ns/net'), got })
      }
      console.log(JSON.stringify(files))
      process.exit(0)
    `, [], dir)
    expect(r.stderr).toBe('')
    const files = JSON.parse(r.stdout) as Array<{ ahead?: string[]; ns: string; got?: string }>
    // new for every file: unlike the one before (a namespace freed two files ago may give
    // its inode number to a later one, as a run under load once showed)
    for (let i = 1; i < files.length; i++) expect(files[i]!.ns).not.toBe(files[i - 1]!.ns)
    for (const file of files.slice(1)) expect(file).toEqual({ ahead: [file.ns], ns: file.ns, got: 'lo' })
  })

  it('stops no process where the worker doesn\'t own its pid namespace (pidNamespace: false)', () => {
    const dir = join(base, 'no-pidns')
    mkdirSync(dir, { recursive: true })
    const r = worker([], `
      const sandbox = SandboxReset.fromEnv()
      const sleep = Number(sh('setsid sleep 30 </dev/null >/dev/null 2>&1 & echo $!').stdout.trim())
      sandbox.reset()
      console.log(fs.existsSync('/proc/' + sleep) ? 'still running' : 'stopped')
      process.kill(sleep, 'SIGKILL')
    `, [], dir, { pidNamespace: false })
    expect(r.stderr).toBe('')
    expect(r.stdout.trim()).toBe('still running')
  })

  it('forwards the same ports into the fresh network through the relay, refusing those the host stopped serving', async () => {
    const dir = join(base, 'forwards')
    const kept = join(dir, 'kept')
    mkdirSync(kept, { recursive: true })
    // host servers in a process of their own (this one blocks in spawnSync meanwhile); the
    // second closes when the sandbox asks, through a kept directory both sides see
    const servers = spawn(process.execPath, ['-e', `
      const fs = require('fs'), net = require('net')
      const listen = () => new Promise((r) => { const s = net.createServer((c) => c.end('up ' + c.remotePort)).listen(0, '127.0.0.1', () => r(s)) })
      Promise.all([listen(), listen()]).then(([a, b]) => {
        console.log(a.address().port + ' ' + b.address().port)
        const poll = setInterval(() => {
          if (!fs.existsSync('${kept}/stop')) return
          clearInterval(poll)
          b.close(() => fs.writeFileSync('${kept}/stopped', 'yes'))
        }, 20)
      })
      setTimeout(() => process.exit(0), 25000)
    `], { stdio: ['ignore', 'pipe', 'inherit'] })
    try {
      const [stays, stops] = (await new Promise<string>((resolve) => servers.stdout!.once('data', (d) => resolve(String(d))))).trim().split(' ').map(Number)
      const r = worker([], `
        const sandbox = SandboxReset.fromEnv()
        // 'relayed': the host server saw another port than the client's own -- a reused
        // worker's one seccomp listener is its own (earlier-networks.c), not the forwarder's
        const read = (port) => new Promise((resolve) => {
          const s = net.connect(port, '127.0.0.1'); let got = '', from
          s.once('connect', () => (from = s.localPort))
          s.on('data', (d) => (got += d)).on('end', () => resolve(got === 'up ' + from ? 'direct' : /^up \\d+$/.test(got) ? 'relayed' : got)).on('error', (e) => resolve(e.code))
        })
        const first = [await read(7001), await read(7002)]
        fs.writeFileSync('${kept}/stop', '')
        while (!fs.existsSync('${kept}/stopped')) await new Promise((r) => setTimeout(r, 20))
        sandbox.reset()
        console.log(JSON.stringify({ first, second: [await read(7001), await read(7002)] }))
      `, [kept], dir, { forwards: [{ inside: 7001, host: stays! }, { inside: 7002, host: stops! }] })
      expect(r.stderr).toBe('')
      expect(JSON.parse(r.stdout)).toEqual({ first: ['relayed', 'relayed'], second: ['relayed', 'ECONNREFUSED'] })
    } finally {
      servers.kill()
    }
  })

  it('keeps the forwarder\'s control socket from the test\'s children: the addon takes it when it loads', () => {
    const dir = join(base, 'control-fd')
    mkdirSync(dir, { recursive: true })
    const r = worker([], `
      const before = process.env.VITEST_POOL_ROOTLESS_FORWARDER
      const sandbox = SandboxReset.fromEnv()
      const sockets = sh("ls -l /proc/self/fd/ | awk '$9 > 2' | grep -c socket:").stdout.trim()
      console.log(JSON.stringify({ before: before !== undefined, after: process.env.VITEST_POOL_ROOTLESS_FORWARDER ?? null, sockets }))
    `, [], dir, { forwards: [{ inside: 7001, host: 1 }] })
    expect(r.stderr).toBe('')
    expect(JSON.parse(r.stdout)).toEqual({ before: true, after: null, sockets: '0' })
    // a worker that never resets (no reset plan in its environment) never gets it
    const plain = spawnSync(LAUNCHER, [...SELF, '--forward', '7001:1', '--', 'sh', '-c', 'echo "${VITEST_POOL_ROOTLESS_FORWARDER:-none}"; ls -l /proc/self/fd/ | awk \'$9 > 2\' | grep -c socket:'], { encoding: 'utf8', cwd: '/', env: { PATH: process.env.PATH } })
    expect(plain.stdout.trim().split('\n')).toEqual(['none', '0'])
  })

  it('closes what a failed reset opened: 50 failed resets leave the worker the fds it had', () => {
    const dir = join(base, 'failing-resets')
    const kept = join(dir, 'kept')
    mkdirSync(kept, { recursive: true })
    // the kept path is opened from the floor, then the tmpfs over it fails (a size the
    // kernel refuses): the step after the opens fails, fifty times
    const r = worker([], `
      const addon = { exports: {} }
      process.dlopen(addon, ${JSON.stringify(ADDON)})
      const fds = () => fs.readdirSync('/proc/self/fd').length
      const failures = new Set()
      const before = fds()
      for (let i = 0; i < 50; i++) {
        try { addon.exports.reset(['--reset', '--tmpfs', '${dir}', '--keep', '${kept}', '--tmpfs-size', 'lots']) } catch (e) { failures.add(e.code + ': ' + e.message) }
      }
      console.log(JSON.stringify({ before, after: fds(), failures: [...failures] }))
    `, [kept], dir)
    expect(r.stderr).toBe('')
    const report = JSON.parse(r.stdout)
    expect(report.failures).toEqual([`tmpfs: vitest-pool-rootless: tmpfs: can't mount a tmpfs on ${dir}: Invalid argument`])
    expect(report.after).toBe(report.before)
  })

  it('names the step that failed', () => {
    const dir = join(base, 'fails')
    mkdirSync(dir, { recursive: true })
    // a plan naming a tmpfs target that isn't there: the reset can't find its floor
    const r = worker([], `
      const sandbox = SandboxReset.fromEnv()
      try { sandbox.reset() } catch (e) { console.log(e.message) }
    `, [], dir, { resetTmpfs: join(dir, 'not-there') })
    expect(r.stdout.trim()).toMatch(/^vitest-pool-rootless: can't reset the sandbox between test files \(tmpfs\): tmpfs: /)
  })
})
