import { spawn, spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, readdirSync, readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer, type AddressInfo, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { LAUNCHER_STEPS } from '../../src/plan/steps.js'
import { LAUNCHER, describeSandbox } from '../support/sandbox.js'

const SELF = ['--uid-map', `0:${process.geteuid!()}:1`, '--gid-map', `0:${process.getegid!()}:1`]
const stepCode = (name: string) => Number(Object.entries(LAUNCHER_STEPS).find(([, n]) => n === name)![0])

/** Runs node `script` in a sandbox made with `flags`, asynchronously: host servers of this process keep serving. */
function sandboxed(flags: string[], script: string): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return sandboxedCommand(flags, [process.execPath, '-e', script])
}

function sandboxedCommand(flags: string[], command: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const child = spawn(LAUNCHER, [...SELF, ...flags, '--', ...command], { cwd: '/', stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
  return new Promise((resolve) => child.once('close', (status) => (clearTimeout(timer), resolve({ status, stdout, stderr }))))
}

/** A script body's helper: how a connect to host:port ends ('connected' or the error code), as JSON lines. */
const TRY = `const net = require('net');
const tryConnect = (port, host = '127.0.0.1') => new Promise((resolve) => {
  const s = net.connect(port, host);
  s.once('connect', () => { s.destroy(); resolve('connected') });
  s.once('error', (e) => resolve(e.code));
  s.setTimeout(5000, () => { s.destroy(); resolve('timeout') });
});`

const listen = (server: Server, host = '127.0.0.1') => new Promise<number>((resolve) => server.listen(0, host, () => resolve((server.address() as AddressInfo).port)))

describe('launcher: --forward is checked before anything is created', () => {
  it.each(['5432', '0:5432', '5432:0', '65536:1', 'a:b', '1:2:3', ':1'])('refuses --forward %s', (value) => {
    const result = spawnSync(LAUNCHER, [...SELF, '--forward', value, '--', 'true'], { encoding: 'utf8' })
    expect(result.status).toBe(stepCode('usage'))
    expect(result.stderr).toContain(`bad forward '${value}', expected INSIDE_PORT:HOST_PORT`)
  })

  it('refuses --forward with --host-network, where it means nothing', () => {
    const result = spawnSync(LAUNCHER, [...SELF, '--forward', '1:1', '--host-network', '--', 'true'], { encoding: 'utf8' })
    expect(result.status).toBe(stepCode('usage'))
    expect(result.stderr).toContain("--forward needs the sandbox's own network")
  })
})

describe('launcher: --forward-range is checked before anything is created', () => {
  it.each(['5432', '0-5432', '5432-0', '1-65536', '70000-70001', '5433-5432', 'a-b', '-5', '5-', '1-2-3', ' 1-2', '+1-2'])('refuses --forward-range %s', (value) => {
    const result = spawnSync(LAUNCHER, [...SELF, '--forward-range', value, '--', 'true'], { encoding: 'utf8' })
    expect(result.status).toBe(stepCode('usage'))
    expect(result.stderr).toContain(`bad forward range '${value}', expected FROM-TO, ports from 1 to 65535 with FROM at most TO`)
  })

  it('refuses --forward-range with --host-network, and in a reset', () => {
    const host = spawnSync(LAUNCHER, [...SELF, '--forward-range', '1-2', '--host-network', '--', 'true'], { encoding: 'utf8' })
    expect(host.status).toBe(stepCode('usage'))
    expect(host.stderr).toContain("--forward-range needs the sandbox's own network")
    const reset = spawnSync(LAUNCHER, ['--reset', '--forward-range', '1-2'], { encoding: 'utf8' })
    expect(reset.status).toBe(stepCode('usage'))
    expect(reset.stderr).toContain('--reset takes only')
  })

  it('refuses a 65th --forward-range', () => {
    const ranges = Array.from({ length: 65 }, (_, i) => ['--forward-range', `${1000 + i}-${1000 + i}`]).flat()
    const result = spawnSync(LAUNCHER, [...SELF, ...ranges, '--', 'true'], { encoding: 'utf8' })
    expect(result.status).toBe(stepCode('usage'))
    expect(result.stderr).toContain('too many --forward-range')
  })
})

describeSandbox('launcher: a forwarder never outlives its launcher', () => {
  // the forwarder is forked before the mounts: a launcher whose tmpfs step then fails
  // exits at once, maybe before its new forwarder asked to die with it
  it('is gone when a later step fails, every time (a run of 40)', () => {
    const marker = `/nonexistent-vpr-forwarder-${process.pid}`
    for (let i = 0; i < 40; i++) {
      const result = spawnSync(LAUNCHER, [...SELF, '--tmpfs', marker, '--forward-host-fd', '3', '--pid-namespace', '--', 'true'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe', 'pipe'], timeout: 10_000 })
      // a forwarder left holds the host channel's pipe: the run would not end
      expect(result.status).toBe(stepCode('tmpfs'))
    }
    const left = spawnSync('pgrep', ['-f', marker], { encoding: 'utf8' }).stdout.trim()
    expect(left, `forwarders left: ${left}`).toBe('')
  })
})

describe('launcher: --forward-host-fd is checked before anything is created', () => {
  it.each([
    [['--host-network'], "--forward-host-fd needs the sandbox's own network, not --host-network"],
    [['--status-fd', '3'], '--forward-host-fd must be an fd of its own'],
  ])('refuses it with %s', (flags, words) => {
    const result = spawnSync(LAUNCHER, [...SELF, '--forward-host-fd', '3', ...flags, '--', 'true'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe', 'pipe'] })
    expect(result.status).toBe(stepCode('usage'))
    expect(result.stderr).toContain(words)
  })

  it.each(['1', 'x', '-3'])('refuses --forward-host-fd %s', (value) => {
    const result = spawnSync(LAUNCHER, [...SELF, '--forward-host-fd', value, '--', 'true'], { encoding: 'utf8' })
    expect(result.status).toBe(stepCode('usage'))
    expect(result.stderr).toMatch(value === '1' ? /--forward-host-fd must be an fd of its own, not a standard stream/ : new RegExp(`bad fd '${value}'`))
  })

  it('refuses an fd that is not open', () => {
    const result = spawnSync(LAUNCHER, [...SELF, '--forward-host-fd', '57', '--', 'true'], { encoding: 'utf8' })
    expect(result.status).toBe(stepCode('usage'))
    expect(result.stderr).toContain('--forward-host-fd 57 is not an open fd')
  })
})

describeSandbox('launcher: --forward leads a port inside to the host', () => {
  let echo: Server
  let echoPort: number
  let other: Server
  let otherPort: number
  let downPort: number
  beforeAll(async () => {
    // echoes what it gets, then the sha256 of it once the client half-closes
    echo = createServer({ allowHalfOpen: true }, (socket) => {
      const hash = createHash('sha256')
      socket.on('data', (d) => hash.update(d))
      socket.on('end', () => socket.end(hash.digest('hex')))
    })
    echoPort = await listen(echo)
    other = createServer((socket) => socket.end('other'))
    otherPort = await listen(other)
    const down = createServer()
    downPort = await listen(down)
    await new Promise((resolve) => down.close(resolve))
  })
  afterAll(() => {
    echo.close()
    other.close()
  })

  // with a pid namespace, connects go straight to the host; without one, through the relay
  it.each([
    ['through the relay', []],
    ['connected straight to the host', ['--pid-namespace']],
  ])('carries 64 MB intact to the host port, from 127.0.0.1 and ::1, under another number inside, %s', async (_, mode) => {
    const script = `${TRY}
const crypto = require('crypto');
const send = (host) => new Promise((resolve, reject) => {
  const data = crypto.randomBytes(64 * 1024 * 1024);
  const want = crypto.createHash('sha256').update(data).digest('hex');
  const s = net.connect(7000, host, () => s.end(data));
  let got = '';
  s.setEncoding('utf8').on('data', (d) => (got += d)).on('end', () => resolve(got === want ? 'intact' : 'corrupt')).on('error', reject);
});
(async () => console.log(JSON.stringify([await send('127.0.0.1'), await send('::1')])))()`
    const result = await sandboxed(['--forward', `7000:${echoPort}`, ...mode], script)
    expect(result.stderr).toBe('')
    expect(JSON.parse(result.stdout)).toEqual(['intact', 'intact'])
    expect(result.status).toBe(0)
  })

  it('refuses at once a forwarded port nothing listens on, and every port no --forward names', async () => {
    const script = `${TRY}
(async () => console.log(JSON.stringify([await tryConnect(${downPort}), await tryConnect(${otherPort}), await tryConnect(${echoPort})])))()`
    const result = await sandboxed(['--forward', `${downPort}:${downPort}`], script)
    expect(JSON.parse(result.stdout)).toEqual(['ECONNREFUSED', 'ECONNREFUSED', 'ECONNREFUSED'])
    expect(result.status).toBe(0)
  })

  it('leaves the sandbox its own listeners on every other port, and takes the forwarded one', async () => {
    const script = `${TRY}
const listen = (port) => new Promise((resolve) => net.createServer().once('error', (e) => resolve(e.code)).listen(port, '127.0.0.1', () => resolve('listening')));
(async () => { console.log(JSON.stringify([await listen(${otherPort}), await listen(7000)])); process.exit(0) })()`
    const result = await sandboxed(['--forward', `7000:${echoPort}`], script)
    expect(JSON.parse(result.stdout)).toEqual(['listening', 'EADDRINUSE'])
    expect(result.status).toBe(0)
  })

  /** Host pids whose command line holds `marker` (a zombie's reads empty: it is gone). */
  const carrying = (marker: string) =>
    readdirSync('/proc').filter((pid) => {
      try {
        return /^\d+$/.test(pid) && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(marker)
      } catch {
        return false
      }
    })

  it('ends the forwarder before the launcher exits, with a pid namespace (as pools run it)', async () => {
    const marker = `fwd-marker-${process.pid}-pidns`
    const result = await sandboxed(['--forward', `7000:${echoPort}`, '--hostname', marker, '--pid-namespace'], `${TRY} tryConnect(7000).then((r) => console.log(r))`)
    expect(result.stdout.trim()).toBe('connected')
    expect(result.status).toBe(0)
    expect(carrying(marker)).toEqual([])
  })

  it('ends and reaps the forwarder before the launcher exits, without a pid namespace too: no zombie waits for the host\'s init', async () => {
    // without a pid namespace the sandbox sees the host's processes: the forwarder is the
    // launcher's other child, beside the command
    const script = `${TRY}
const fs = require('fs')
const ppidOf = (pid) => { try { const s = fs.readFileSync('/proc/' + pid + '/stat', 'utf8'); return Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]) } catch { return -1 } }
const siblings = fs.readdirSync('/proc').filter((p) => /^\\d+$/.test(p) && Number(p) !== process.pid && ppidOf(p) === process.ppid)
tryConnect(7000).then((r) => console.log(r + ' ' + siblings.join(',')))`
    const result = await sandboxed(['--forward', `7000:${echoPort}`], script)
    const [connected, forwarder] = result.stdout.trim().split(' ')
    expect(connected).toBe('connected')
    expect(forwarder).toMatch(/^\d+$/)
    expect(result.status).toBe(0)
    // gone the moment the launcher is: not even a zombie
    expect(existsSync(`/proc/${forwarder}`)).toBe(false)
  })

  it('starts 64 forwards without reading the host\'s socket tables once per port', () => {
    const forwards = Array.from({ length: 64 }, (_, i) => ['--forward', `${7100 + i}:${echoPort}`]).flat()
    const time = (args: string[]) => {
      const runs = Array.from({ length: 7 }, () => {
        const started = process.hrtime.bigint()
        const r = spawnSync(LAUNCHER, [...SELF, ...args, '--', 'true'], { cwd: '/', encoding: 'utf8' })
        expect(r.stderr).toBe('')
        return Number(process.hrtime.bigint() - started) / 1e6
      })
      return Math.min(...runs)
    }
    const none = time([])
    const many = time(forwards)
    // a read of the tables per port took 1.2-1.4 s here; one sock_diag dump and 128 listeners
    // made and handed over take about 7 ms: 150 ms leaves room for a busy machine (or ASan)
    expect(many - none).toBeLessThan(150)
  })
})

describeSandbox('launcher: connects to a forwarded port go straight to the host (with a pid namespace)', () => {
  // answers each connection with the port it came from, as the host sees it, and keeps it open until the client ends it
  let whoami: Server
  let port: number
  let v6only: Server
  let v6Port: number
  beforeAll(async () => {
    whoami = createServer((socket) => socket.write(`${socket.remotePort}\n`))
    port = await listen(whoami, '::')
    v6only = createServer((socket) => socket.write(`${socket.remotePort}\n`))
    v6Port = await listen(v6only, '::1')
  })
  afterAll(() => {
    whoami.close()
    v6only.close()
  })

  /** Established TCP connections on port 7000 in the sandbox's own network (a relayed one has two). */
  const INSIDE = `const inside = () => ['/proc/net/tcp', '/proc/net/tcp6'].flatMap((f) => require('fs').readFileSync(f, 'utf8').split('\\n').slice(1))
  .map((l) => l.trim().split(/\\s+/)).filter((c) => c[3] === '01' && (c[1].endsWith(':1B58') || c[2].endsWith(':1B58'))).length;
const ask = (host, options = {}) => new Promise((resolve) => {
  const s = require('net').connect({ port: 7000, host, ...options });
  let got = '';
  s.setEncoding('utf8').on('data', (d) => {
    got += d;
    if (got.endsWith('\\n')) { const answer = { direct: Number(got) === s.localPort, inside: inside() }; s.end(); resolve(answer) }
  });
  s.once('error', (e) => resolve(e.code));
});`

  it('from Node (non-blocking connects), on 127.0.0.1 and ::1: the host sees the client itself', async () => {
    const script = `${INSIDE}
(async () => console.log(JSON.stringify([await ask('127.0.0.1'), await ask('::1')])))()`
    const result = await sandboxed(['--forward', `7000:${port}`, '--pid-namespace'], script)
    expect(result.stderr).toBe('')
    expect(JSON.parse(result.stdout)).toEqual([{ direct: true, inside: 0 }, { direct: true, inside: 0 }])
  })

  it('from a blocking connect (bash /dev/tcp)', async () => {
    const script = 'exec 3<>/dev/tcp/127.0.0.1/7000 && read -r from <&3 && echo "$from" && awk \'FNR > 1 && $4 == "01" && ($2 ~ /:1B58$/ || $3 ~ /:1B58$/)\' /proc/net/tcp /proc/net/tcp6 | wc -l'
    const result = await sandboxedCommand(['--forward', `7000:${port}`, '--pid-namespace'], ['bash', '-c', script])
    expect(result.stderr).toBe('')
    const [from, inside] = result.stdout.trim().split('\n')
    expect(Number(from)).toBeGreaterThan(0)
    expect(Number(inside)).toBe(0)
  })

  it('leaves to the relay what it should not redirect: a bound socket, --relay-only, a service on the other loopback', async () => {
    const bound = await sandboxed(['--forward', `7000:${port}`, '--pid-namespace'], `${INSIDE} ask('127.0.0.1', { localAddress: '127.0.0.1', localPort: 40123 }).then((r) => console.log(JSON.stringify(r)))`)
    expect(JSON.parse(bound.stdout)).toMatchObject({ inside: 2 })
    const relayOnly = await sandboxed(['--forward', `7000:${port}`, '--pid-namespace', '--relay-only'], `${INSIDE} ask('127.0.0.1').then((r) => console.log(JSON.stringify(r)))`)
    expect(JSON.parse(relayOnly.stdout)).toMatchObject({ inside: 2 })
    // served on ::1 only: 127.0.0.1 is refused on the host, the relay tries ::1
    const other = await sandboxed(['--forward', `7000:${v6Port}`, '--pid-namespace'], `${INSIDE} ask('127.0.0.1').then((r) => console.log(JSON.stringify(r)))`)
    expect(JSON.parse(other.stdout)).toMatchObject({ inside: 2 })
  })

  it('leaves alone a connect from a network namespace the test made itself', async () => {
    const result = await sandboxedCommand(['--forward', `7000:${port}`, '--pid-namespace'], ['unshare', '--net', process.execPath, '-e', `${TRY} tryConnect(7000).then((r) => console.log(r))`])
    expect(result.stderr).toBe('')
    expect(result.stdout.trim()).toBe('ENETUNREACH')
  })

  it('lets every other connect through: the sandbox reaches its own servers, a Unix socket, and is refused elsewhere', async () => {
    const script = `${TRY}
const unix = require('path').join(require('os').tmpdir(), 'vpr-fwd-' + process.pid + '.sock');
const own = net.createServer((s) => s.on('error', () => {}).end('own')).listen(7100, '127.0.0.1', async () => {
  const sock = await new Promise((resolve) => net.createServer((s) => s.end()).listen(unix, function () { resolve(this) }));
  console.log(JSON.stringify([await tryConnect(7100), await tryConnect(unix), await tryConnect(${port + 1 === 7100 ? 7101 : port + 1})]));
  own.close(); sock.close();
});`
    const result = await sandboxed(['--forward', `7000:${port}`, '--pid-namespace'], script)
    expect(result.stderr).toBe('')
    expect(JSON.parse(result.stdout)).toEqual(['connected', 'connected', 'ECONNREFUSED'])
  })
})

describeSandbox('launcher: --forward-range', () => {
  // each host server answers with the port its client connected from, as the host sees it
  const servers: Server[] = []
  const whoami = (port: number, host: string) => {
    const server = createServer((socket) => socket.end(`${socket.remotePort}\n`))
    servers.push(server)
    return new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, host, () => resolve()))
  }
  afterAll(() => servers.forEach((server) => server.close()))

  /** Four host ports in a row nothing listens on now: BASE..BASE+2 the range, BASE+3 just outside. */
  async function fourFreePorts(): Promise<number> {
    for (let tries = 0; tries < 20; tries++) {
      const first = createServer()
      const base = await listen(first)
      const held = [first]
      for (let i = 1; i < 4; i++) {
        const next = createServer()
        const ok = await new Promise<boolean>((resolve) => next.once('error', () => resolve(false)).listen(base + i, '127.0.0.1', () => resolve(true)))
        if (ok) held.push(next)
      }
      await Promise.all(held.map((server) => new Promise((resolve) => server.close(resolve))))
      if (held.length === 4 && base + 3 <= 65535) return base
    }
    throw new Error('no four free ports in a row')
  }

  /**
   * A sandbox whose script prints a line, waits for one on stdin (the host starts a server
   * meanwhile), and prints a second: both lines, parsed.
   */
  function twoSteps(flags: string[], script: string, between: () => Promise<void>): Promise<{ first: unknown; second: unknown; stderr: string }> {
    const child = spawn(LAUNCHER, [...SELF, ...flags, '--', process.execPath, '-e', script], { cwd: '/', stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    let stepped = false
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d
      if (!stepped && stdout.includes('\n')) {
        stepped = true
        void between().then(() => child.stdin.end('go\n'))
      }
    })
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
    return new Promise((resolve) =>
      child.once('close', () => {
        clearTimeout(timer)
        const [first, second] = stdout.trim().split('\n').map((line) => JSON.parse(line) as unknown)
        resolve({ first, second, stderr })
      }),
    )
  }

  /** 'direct' when the host's server saw this very socket; what a server of the sandbox said; or the error code. */
  const ASK = `const net = require('net');
const ask = (port, host = '127.0.0.1') => new Promise((resolve) => {
  const s = net.connect(port, host);
  let got = '';
  s.setEncoding('utf8').on('data', (d) => { got += d; if (got.endsWith('\\n')) { resolve(Number(got) === s.localPort ? 'direct' : got.trim()); s.destroy() } });
  s.once('error', (e) => resolve(e.code));
  s.setTimeout(5000, () => { s.destroy(); resolve('timeout') });
});
const listeners = (from, to) => ['/proc/net/tcp', '/proc/net/tcp6'].flatMap((f) => require('fs').readFileSync(f, 'utf8').split('\\n').slice(1))
  .map((l) => l.trim().split(/\\s+/)).filter((c) => c[3] === '0A' && parseInt(c[1].split(':').pop(), 16) >= from && parseInt(c[1].split(':').pop(), 16) <= to).length;
const waitForHost = () => new Promise((resolve) => process.stdin.once('data', resolve));`

  const scriptFor = (base: number) => `${ASK}
(async () => {
  console.log(JSON.stringify(await ask(${base})));
  await waitForHost();
  const own = await new Promise((resolve) => net.createServer((s) => s.end('own\\n')).once('error', (e) => resolve(e.code)).listen(${base + 2}, '127.0.0.1', function () { resolve(this) }));
  const ownAnswer = typeof own === 'string' ? own : await ask(${base + 2});
  if (typeof own !== 'string') own.close();
  console.log(JSON.stringify({ late: [await ask(${base}), await ask(${base}, '::1')], unserved: await ask(${base + 1}), servedAtStart: await ask(${base + 2}), outside: await ask(${base + 3}), listenersInRange: listeners(${base}, ${base + 2}), own: ownAnswer }));
  process.exit(0);
})()`

  it.each([
    [
      'with direct connects: every port of the range leads to the host, served at the start or later, with no listener inside',
      ['--pid-namespace'],
      // a server of the sandbox on a port of the range keeps its own clients
      { late: ['direct', 'direct'], servedAtStart: 'direct', listenersInRange: 0, own: 'own' },
    ],
    [
      'through the relay (no pid namespace): only the ports served when the sandbox started lead out, one listener each inside',
      [],
      // relayed: the host's server saw the relay's socket, not this one
      { late: ['ECONNREFUSED', 'ECONNREFUSED'], servedAtStart: expect.stringMatching(/^\d+$/), listenersInRange: 2, own: 'EADDRINUSE' },
    ],
  ])('%s', async (_, mode, expected) => {
    const base = await fourFreePorts()
    await whoami(base + 2, '127.0.0.1')
    await whoami(base + 3, '127.0.0.1')
    // as the pool passes it: the range, and the port of it served now as a forward (the relay's fallback)
    const flags = ['--forward-range', `${base}-${base + 2}`, '--forward', `${base + 2}:${base + 2}`, ...mode]
    const result = await twoSteps(flags, scriptFor(base), () => whoami(base, '::'))
    expect(result.stderr).toBe('')
    expect(result.first).toBe('ECONNREFUSED')
    expect(result.second).toEqual({ unserved: 'ECONNREFUSED', outside: 'ECONNREFUSED', ...expected })
  })

  it('with direct connects: leaves alone a connect to a port of the range from a network namespace the test made itself', async () => {
    const base = await fourFreePorts()
    await whoami(base, '127.0.0.1')
    const result = await sandboxedCommand(['--forward-range', `${base}-${base}`, '--pid-namespace'], ['unshare', '--net', process.execPath, '-e', `${TRY} tryConnect(${base}).then((r) => console.log(r))`])
    expect(result.stderr).toBe('')
    expect(result.stdout.trim()).toBe('ENETUNREACH')
  })
})

describeSandbox('launcher: a forwarder that cannot start', () => {
  const strace = spawnSync('sh', ['-c', 'command -v strace'], { encoding: 'utf8' }).stdout.trim()

  it('names the step, in one line, and runs nothing', () => {
    if (!strace) throw new Error('strace is needed for this test: apt-get install strace')
    const result = spawnSync(strace, ['-f', '-qq', '-o', '/dev/null', '-e', 'trace=socketpair', '-e', 'inject=socketpair:error=EMFILE', LAUNCHER, ...SELF, '--forward', '7000:7000', '--', 'echo', 'ran'], { encoding: 'utf8' })
    expect(result.status).toBe(stepCode('forward'))
    expect(result.stdout).toBe('')
    // EMFILE in glibc's words or musl's
    expect(result.stderr.trim()).toMatch(/^vitest-pool-rootless: forward: can't start the forwarder: (Too many open files|No file descriptors available)$/)
  })
})

describeSandbox('launcher: --nsswitch-file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vpr-nsswitch-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('answers an unknown name ENOTFOUND at once, from the hosts file alone', async () => {
    const file = join(dir, 'nsswitch.conf')
    writeFileSync(file, 'passwd: files\ngroup: files\nhosts: files\n')
    const hosts = join(dir, 'hosts')
    writeFileSync(hosts, '127.0.0.1 localhost\n10.1.2.3 db.test\n')
    const script = `const dns = require('dns');
const lookup = (name) => new Promise((resolve) => dns.lookup(name, { family: 4 }, (e, a) => resolve(e ? e.code : a)));
(async () => console.log(JSON.stringify([await lookup('no-such-name.example'), await lookup('db.test'), require('fs').readFileSync('/etc/nsswitch.conf', 'utf8')])))()`
    const result = await sandboxed(['--hosts-file', hosts, '--nsswitch-file', file], script)
    expect(result.stderr).toBe('')
    expect(JSON.parse(result.stdout)).toEqual(['ENOTFOUND', '10.1.2.3', 'passwd: files\ngroup: files\nhosts: files\n'])
  })

  it('names the step when the file is missing', async () => {
    const result = await sandboxed(['--nsswitch-file', join(dir, 'missing')], 'true')
    expect(result.status).toBe(stepCode('nsswitch'))
    expect(result.stderr).toMatch(/^vitest-pool-rootless: nsswitch: /)
  })
})
