import { spawn, spawnSync } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { homedir, tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { isInside } from '../../src/plan/paths.js'
import { CLI, LAUNCHER, ROOT, describeSandbox, exec, homeWithNode, mountTable, subidRangesOf } from '../support/sandbox.js'

const uid = process.geteuid!()
const node = process.execPath

describeSandbox('vitest-pool-rootless exec', () => {
  it('runs the command as uid 0', () => {
    const r = exec([], ['id', '-u'])
    expect(r.stderr).toBe('')
    expect(r.stdout).toBe('0\n')
  })

  it('maps the caller to 0, then the whole subuid range from 1', () => {
    // Inside, the test runs in a nested namespace that locks the sandbox's mounts: its map
    // mirrors the sandbox's inside ids (0 0 1, 1 1 N, …). What they stand for on the host
    // shows in the owners of files made inside, in a directory the host sees.
    const r = exec([], ['cat', '/proc/self/uid_map', '/proc/self/gid_map'])
    const lines = r.stdout.trim().split('\n').map((l) => l.trim().split(/\s+/).map(Number))
    const uidLines = lines.slice(0, lines.length / 2)
    const ranges = subidRangesOf('/etc/subuid')
    if (uid === 0 && ranges.length === 0) {
      expect(uidLines).toEqual([[0, 0, 65536]])
      return
    }
    let next = 1
    expect(uidLines).toEqual([[0, 0, 1], ...ranges.map(([, count]) => {
      const line = [next, next, count]
      next += count
      return line
    })])
    // a CI user without ranges would make this test prove nothing
    if (process.env.CI) expect(ranges.length).toBeGreaterThan(0)
    if (ranges.length === 0) return
    const dir = mkdtempSync(join(ROOT, '.vpr-owners-'))
    try {
      const made = exec([], ['sh', '-c', `touch ${dir}/own ${dir}/sub && chown 1 ${dir}/sub`])
      expect(made.status, made.stderr).toBe(0)
      expect(statSync(join(dir, 'own')).uid).toBe(uid)
      expect(statSync(join(dir, 'sub')).uid).toBe(ranges[0]![0])
    } finally {
      // a file owned by a subordinate id: only root in the sandbox can remove it
      exec([], ['rm', '-rf', dir])
    }
  })

  it('lets root inside chown a /tmp file to 1000 and 54321', () => {
    const r = exec([], ['sh', '-c', 'f=/tmp/owned; touch $f && chown 1000:1000 $f && stat -c %u:%g $f && chown 54321:54321 $f && stat -c %u:%g $f'])
    expect(r.stderr).toBe('')
    expect(r.stdout).toBe('1000:1000\n54321:54321\n')
  })

  it('mounts a tmpfs on /mnt', () => {
    const r = exec([], ['sh', '-c', 'mount -t tmpfs none /mnt && grep " /mnt " /proc/self/mountinfo | wc -l'])
    expect(r.stderr).toBe('')
    expect(r.stdout.trim()).toBe('1')
  })

  it('listens on port 80 on 127.0.0.1 and ::1, and connects to both', () => {
    const script = `
      const net = require('node:net')
      const listen = (host) => new Promise((ok, fail) => { const s = net.createServer((c) => c.end('hi')); s.once('error', fail); s.listen(80, host, () => ok(s)) })
      const fetch = (host) => new Promise((ok, fail) => { const c = net.connect(80, host); let d = ''; c.on('data', (x) => d += x); c.on('end', () => ok(d)); c.on('error', fail) })
      ;(async () => {
        const servers = [await listen('127.0.0.1'), await listen('::1')]
        console.log(await fetch('127.0.0.1'), await fetch('::1'))
        servers.forEach((s) => s.close())
      })().catch((e) => { console.error(e.message); process.exit(1) })`
    const r = exec([], [node, '-e', script])
    expect(r.stderr).toBe('')
    expect(r.stdout).toBe('hi hi\n')
  })

  it('answers host lookups from the private hosts file, and sets the hostname', () => {
    const r = exec(['--hostname', 'sandbox-box', '--host', 'api.example.test=127.0.0.1', '--host', 'db.example.test=10.9.8.7'], [
      'sh', '-c', `hostname; getent hosts api.example.test db.example.test; ${node} -e "require('dns').lookup('sandbox-box', 4, (e, a) => console.log(e ? e.code : a))"`,
    ])
    expect(r.stderr).toBe('')
    const [hostname, api, db, self] = r.stdout.trim().split('\n').map((l) => l.trim().split(/\s+/))
    expect(hostname).toEqual(['sandbox-box'])
    expect(api).toEqual(['127.0.0.1', 'api.example.test'])
    expect(db).toEqual(['10.9.8.7', 'db.example.test'])
    expect(self).toEqual(['127.0.0.1'])
  })

  it('has only a loopback interface, and it is up', () => {
    const r = exec([], ['cat', '/proc/net/dev'])
    const interfaces = r.stdout.split('\n').slice(2).filter(Boolean).map((l) => l.split(':')[0]!.trim())
    expect(interfaces).toEqual(['lo'])
    const flags = exec([], ['cat', '/sys/class/net/lo/flags'])
    expect(Number(flags.stdout.trim()) & 1).toBe(1) // IFF_UP
  })

  it('keeps /tmp private: empty inside, and writes do not reach the host', () => {
    const marker = `vpr-marker-${process.pid}-${Date.now()}`
    const r = exec([], ['sh', '-c', `ls -A /tmp | wc -l; echo x > /tmp/${marker}; ls /tmp`], { cwd: '/' })
    expect(r.stderr).toBe('')
    expect(r.stdout).toBe(`0\n${marker}\n`)
    expect(existsSync(join(tmpdir(), marker))).toBe(false)
  })

  it('keeps the working directory visible when it lives under the tmpfs', () => {
    const project = mkdtempSync(join(tmpdir(), 'vpr-project-'))
    try {
      const r = exec([], ['sh', '-c', 'pwd; echo made > inside.txt'], { cwd: project })
      expect(r.stderr).toBe('')
      expect(r.stdout).toBe(`${project}\n`)
      expect(existsSync(join(project, 'inside.txt'))).toBe(true)
    } finally {
      rmSync(project, { recursive: true, force: true })
    }
  })

  it("keeps the node binary's directory when a --tmpfs holds it (nvm's node under $HOME), and hides the rest", () => {
    const { home, node, secret } = homeWithNode(process.execPath)
    try {
      const script = `console.log(require('fs').existsSync(${JSON.stringify(secret)}), process.execPath)`
      const r = spawnSync(node, [CLI, 'exec', '--tmpfs', home, '--', node, '-e', script], { encoding: 'utf8', cwd: ROOT, timeout: 30_000 })
      expect(r.stderr).toBe('')
      expect(r.stdout).toBe(`false ${node}\n`)
      expect(r.status).toBe(0)
    } finally {
      rmSync(home, { recursive: true, force: true })
    }
  })

  it('leaves no mount behind on the host', () => {
    const before = mountTable()
    exec(['--tmpfs', tmpdir()], ['sh', '-c', 'mount -t tmpfs none /mnt'])
    expect(mountTable()).toEqual(before)
  })

  describeHostListener()

  it('propagates exit status 0, 42, and death by signal', () => {
    expect(exec([], ['true']).status).toBe(0)
    expect(exec([], ['sh', '-c', 'exit 42']).status).toBe(42)
    const killed = exec([], ['sh', '-c', 'kill -KILL $$'])
    expect(killed.status).toBe(null)
    expect(killed.signal).toBe('SIGKILL')
  })

  it('runs the command in its own pid namespace, under an init: /proc shows only the sandbox', () => {
    const r = exec([], ['sh', '-c', 'echo $PPID; ls /proc | grep -cE "^[0-9]+$"'])
    const [parent, count] = r.stdout.trim().split('\n').map(Number)
    expect(parent).toBe(1)
    // init, sh, ls and grep: nothing of the host
    expect(count).toBeLessThanOrEqual(4)
  })

  it('gives each sandbox\'s command a pid of its own (the launcher\'s on the host), not "pid 2" for all', () => {
    const launch = () => spawnSync(LAUNCHER, ['--uid-map', `0:${process.geteuid!()}:1`, '--gid-map', `0:${process.getegid!()}:1`, '--pid-namespace', '--', 'sh', '-c', 'echo $$'], { encoding: 'utf8', cwd: '/' })
    const pids = [launch(), launch(), launch()].map((r) => Number(r.stdout.trim()))
    expect(new Set(pids).size).toBe(3)
    for (const pid of pids) expect(pid).toBeGreaterThan(2)
  })

  it('cannot signal a host process (ESRCH)', () => {
    const r = exec([], ['sh', '-c', `kill -0 ${process.pid} 2>&1; echo status=$?`])
    expect(r.stdout).toMatch(/No such process/)
    expect(r.stdout).toContain('status=1')
    // without the pid namespace the same process is visible (so the check above can fail)
    const shared = exec(['--no-pid-namespace'], ['sh', '-c', `kill -0 ${process.pid} 2>&1; echo status=$?`])
    expect(shared.stdout).not.toMatch(/No such process/)
  })

  it('takes down a daemon the command double-forked when it ends', () => {
    const marker = `${300 + (process.pid % 1000) / 1000}`
    const r = exec([], ['sh', '-c', `(sleep ${marker} &); echo started`])
    expect(r.stdout).toBe('started\n')
    const left = () => spawnSync('pgrep', ['-f', `^sleep ${marker.replace('.', '\\.')}$`], { encoding: 'utf8' }).stdout.trim()
    const deadline = Date.now() + 2000
    while (left() && Date.now() < deadline) spawnSync('sleep', ['0.1'])
    expect(left()).toBe('')
  })

  it('leaves nothing running when the CLI itself is SIGKILLed (launcher, init, command all die with it)', async () => {
    const marker = `${400 + (process.pid % 1000) / 1000}`
    const cli = spawn(node, [CLI, 'exec', '--', 'sleep', marker], { stdio: 'ignore' })
    // the command itself, not the CLI whose argv also holds it
    const running = () => spawnSync('pgrep', ['-f', `^sleep ${marker.replace('.', '\\.')}$`], { encoding: 'utf8' }).stdout.trim()
    const wait = async (until: () => boolean) => {
      const deadline = Date.now() + 2000
      while (!until() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
    }
    await wait(() => running() !== '')
    expect(running()).not.toBe('')
    cli.kill('SIGKILL')
    await wait(() => running() === '')
    expect(running()).toBe('')
  })

  it('removes state dirs a SIGKILLed run left behind, and only those', () => {
    const dead = spawnSync('true').pid!
    const ns = /\[(\d+)\]/.exec(readlinkSync('/proc/self/ns/pid'))![1]
    const stale = join(tmpdir(), `vitest-pool-rootless-${dead}-${ns}-stale`)
    const live = join(tmpdir(), `vitest-pool-rootless-${process.pid}-${ns}-live`)
    // a dead pid, but in another pid namespace: it may be alive there
    const foreign = join(tmpdir(), `vitest-pool-rootless-${dead}-1-foreign`)
    for (const d of [stale, live, foreign]) mkdirSync(d, { recursive: true })
    try {
      expect(exec([], ['true']).status).toBe(0)
      expect(existsSync(stale)).toBe(false)
      expect(existsSync(live)).toBe(true)
      expect(existsSync(foreign)).toBe(true)
    } finally {
      for (const d of [live, foreign]) rmSync(d, { recursive: true, force: true })
    }
  })

  it('drops the environment variables --drop-env names', () => {
    const r = spawnSync(node, [CLI, 'exec', '--drop-env', 'VPR_SECRET_*', '--', 'sh', '-c', 'echo "${VPR_SECRET_A:-gone} ${VPR_KEPT:-gone}"'], {
      encoding: 'utf8',
      env: { ...process.env, VPR_SECRET_A: 'secret', VPR_KEPT: 'kept' },
    })
    expect(r.stdout).toBe('gone kept\n')
  })

  it('makes the host read-only but --writable paths (relative to the working directory) and the temp dirs', () => {
    const project = mkdtempSync(join(ROOT, 'test', '.exec-writable-'))
    try {
      const script = 'for f in out/x x "$HOME/vpr-exec-writable" /tmp/x; do if (echo a > "$f") 2>/dev/null; then echo "$f ok"; else echo "$f no"; fi; done'
      const r = exec(['--writable', './out'], ['sh', '-c', script], { cwd: project })
      expect(r.stdout.replace(`${process.env.HOME}`, '~')).toBe('out/x ok\nx no\n~/vpr-exec-writable no\n/tmp/x ok\n')
      expect(readFileSync(join(project, 'out', 'x'), 'utf8')).toBe('a\n')
      expect(existsSync(join(project, 'x'))).toBe(false)
      // one message naming the option, for a path that leaves the working directory
      const out = exec(['--writable', '../elsewhere'], ['true'], { cwd: project })
      expect(out.status).not.toBe(0)
      expect(out.stderr).toBe('vitest-pool-rootless exec: option `--writable` expects paths inside the project; ../elsewhere leaves it through ".." (give an absolute path for a place outside), got "../elsewhere"\n')
    } finally {
      rmSync(project, { recursive: true, force: true })
    }
  })

  it('never reads arguments after "--" as its own options', () => {
    const r = exec([], ['echo', '--tmpfs', '--no-subids', '--', '--help', '-v'])
    expect(r.stdout).toBe('--tmpfs --no-subids -- --help -v\n')
  })

  it('exits 127 for a command that is not there, with one line saying so', () => {
    const r = exec([], ['vpr-no-such-command'])
    expect(r.status).toBe(127)
    // execvp says EACCES when some PATH directory can't be searched (a user given root's PATH)
    expect(r.stderr).toMatch(/^vitest-pool-rootless: exec: can't run vpr-no-such-command: (No such file or directory|Permission denied)\n$/)
    expect(exec([], ['./vpr-no-such-file']).status).toBe(127)
  })

  it('exits 126 for a command that is not executable (a plain file, a directory)', () => {
    const file = join(ROOT, `.vpr-not-executable-${process.pid}`)
    writeFileSync(file, 'echo hi\n')
    chmodSync(file, 0o644)
    try {
      const r = exec([], [file])
      expect(r.status).toBe(126)
      expect(r.stderr).toBe(`vitest-pool-rootless: exec: can't run ${file}: Permission denied\n`)
      expect(exec([], ['/etc/hosts']).status).toBe(126)
      expect(exec([], [ROOT]).status).toBe(126)
    } finally {
      rmSync(file, { force: true })
    }
  })

  it("keeps the command's own status 248 (the launcher's exec status) when the command ran", () => {
    expect(exec([], ['sh', '-c', 'exit 248']).status).toBe(248)
  })

  it('keeps the temp dir private when --tmpfs hides another directory', () => {
    // outside the temp dir (a checkout under /tmp can't host it: tmpfs targets can't nest)
    const hidden = mkdtempSync(join(isInside(ROOT, realpathSync(tmpdir())) ? homedir() : ROOT, '.vpr-hidden-'))
    const marker = `vpr-marker-${process.pid}-${Date.now()}`
    try {
      writeFileSync(join(hidden, 'secret'), 'x')
      const r = exec(['--tmpfs', hidden], ['sh', '-c', `ls -A ${hidden} | wc -l; echo x > /tmp/${marker}; ls -A /tmp`], { cwd: '/' })
      expect(r.stderr).toBe('')
      expect(r.stdout).toBe(`0\n${marker}\n`)
      expect(existsSync(join(tmpdir(), marker))).toBe(false)
    } finally {
      rmSync(hidden, { recursive: true, force: true })
    }
  })

  it('shares the host temp dir with --no-tmpfs, asked for by name: no warning', () => {
    const file = join(tmpdir(), `vpr-no-tmpfs-${process.pid}`)
    try {
      const r = exec(['--no-tmpfs'], ['sh', '-c', `echo shared > ${file}`])
      expect(r.status).toBe(0)
      expect(r.stderr).toBe('')
      expect(readFileSync(file, 'utf8')).toBe('shared\n')
    } finally {
      rmSync(file, { force: true })
    }
  })

  it('warns about a --keep path outside every tmpfs', () => {
    const r = exec(['--keep', '/etc'], ['true'])
    expect(r.status).toBe(0)
    expect(r.stderr).toContain('`--keep` path /etc is not under any tmpfs target')
  })

  it('resolves localhost with a --hosts-file that lacks it', () => {
    const dir = mkdtempSync(join(ROOT, '.vpr-hosts-'))
    try {
      const file = join(dir, 'hosts')
      writeFileSync(file, '10.1.2.3 only.example.test\n')
      const r = exec(['--hosts-file', file], ['getent', 'ahosts', 'localhost', 'only.example.test'])
      expect(r.stderr).toBe('')
      expect(r.stdout).toMatch(/^127\.0\.0\.1\s/m)
      expect(r.stdout).toMatch(/^::1\s/m)
      expect(r.stdout).toMatch(/^10\.1\.2\.3\s/m)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('uses a --hosts-file instead of the defaults: its own address for the hostname stands, and --host wins over it', () => {
    const dir = mkdtempSync(join(ROOT, '.vpr-hosts-'))
    try {
      const file = join(dir, 'hosts')
      writeFileSync(file, '10.20.30.40 file-box\n10.0.0.1 db.example.test other.example.test\n')
      const names = ['file-box', 'db.example.test', 'other.example.test', 'localhost']
      const script = `Promise.all(${JSON.stringify(names)}.map((n) => require('dns').promises.lookup(n, { all: true }))).then((r) => console.log(JSON.stringify(r.map((a) => a.map((x) => x.address).sort()))))`
      const r = exec(['--hostname', 'file-box', '--hosts-file', file, '--host', 'db.example.test=10.9.8.7'], [node, '-e', script])
      expect(r.stderr).toBe('')
      expect(JSON.parse(r.stdout)).toEqual([['10.20.30.40'], ['10.9.8.7'], ['10.0.0.1'], ['127.0.0.1', '::1'].sort()])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('accepts a hostname with "_", as hosts names may have', () => {
    const r = exec(['--hostname', 'x_y'], ['hostname'])
    expect(r.stderr).toBe('')
    expect(r.stdout).toBe('x_y\n')
  })
})

function describeHostListener() {
  let server: Server
  let port = 0
  beforeAll(async () => {
    server = createServer((c) => c.end('host'))
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok))
    port = (server.address() as { port: number }).port
  })
  afterAll(() => new Promise<void>((ok) => server.close(() => ok())))

  it('cannot reach a server the host listens on at 127.0.0.1', () => {
    const script = `require('node:net').connect(${port}, '127.0.0.1').on('connect', () => { console.log('reached'); process.exit(0) }).on('error', (e) => { console.log(e.code); process.exit(0) })`
    const inside = exec([], [node, '-e', script])
    expect(inside.stdout.trim()).toBe('ECONNREFUSED')
    // and the same script from the host does reach it, so the test can fail
    const outside = exec(['--network', 'host'], [node, '-e', script])
    expect(outside.stdout.trim()).toBe('reached')
  })
}
