import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { LAUNCHER_STEPS } from '../../src/plan/steps.js'
import { LAUNCHER, describeSandbox } from '../support/sandbox.js'

// The launcher's --publish (a port of the sandbox reached from the host), --enforce-permissions
// and --tmpfs-dir, on their own.

const SELF = ['--uid-map', `0:${process.geteuid!()}:1`, '--gid-map', `0:${process.getegid!()}:1`]
const USAGE = Number(Object.entries(LAUNCHER_STEPS).find(([, name]) => name === 'usage')![0])
const dir = mkdtempSync(join(tmpdir(), 'vpr-publish-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const launch = (args: string[]) => spawnSync(LAUNCHER, args, { encoding: 'utf8', cwd: '/', timeout: 20_000 })

describe('launcher: --publish, --enforce-permissions and --tmpfs-dir refuse what they can\'t carry out', () => {
  it.each([
    [['--publish', '9229', '--', 'true'], "bad publish '9229', expected PORT=/PATH"],
    [['--publish', '0=/tmp/s', '--', 'true'], "bad publish '0=/tmp/s'"],
    [['--publish', '65536=/tmp/s', '--', 'true'], "bad publish '65536=/tmp/s'"],
    [['--publish', '9229=relative', '--', 'true'], "bad publish '9229=relative'"],
    [['--publish', '1=/a', '--publish', '2=/b', '--', 'true'], '--publish is given twice'],
    [['--publish', '9229=/tmp/s', '--host-network', '--', 'true'], "--publish needs the sandbox's own network"],
    [['--tmpfs', '/tmp', '--tmpfs-dir', 'tmp/user', '--', 'true'], '--tmpfs-dir tmp/user is not an absolute path'],
  ])('%j', (args, message) => {
    const result = launch([...SELF, ...args])
    expect(result.status, result.stderr).toBe(USAGE)
    expect(result.stderr).toContain(message)
  })
})

describeSandbox('launcher: --publish, --enforce-permissions and --tmpfs-dir', () => {
  it('--publish: the host reaches the sandbox\'s own 127.0.0.1:PORT through the Unix socket, and only that way', async () => {
    const socket = join(dir, 'publish.sock')
    // a port nothing on the host listens on (a moment ago): inside, the sandbox's server's
    const port = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, '127.0.0.1', () => {
        const { port: free } = probe.address() as { port: number }
        probe.close(() => resolve(free))
      })
    })
    const server = `require('http').createServer((q, s) => s.end('inside ' + q.url)).listen(${port}, '127.0.0.1', () => console.log('up')); setTimeout(() => {}, 10000)`
    const child = spawn(LAUNCHER, [...SELF, '--publish', `${port}=${socket}`, '--pid-namespace', '--', process.execPath, '-e', server], { cwd: '/', stdio: ['ignore', 'pipe', 'inherit'] })
    try {
      await new Promise((resolve) => child.stdout!.once('data', resolve))
      const answer = await new Promise<string>((resolve, reject) => {
        const client = connect(socket, () => client.end('GET /json/list HTTP/1.0\r\n\r\n'))
        let data = ''
        client.setEncoding('utf8').on('data', (d: string) => (data += d)).on('end', () => resolve(data)).on('error', reject)
      })
      expect(answer).toMatch(/inside \/json\/list$/)
      // the host's own 127.0.0.1:PORT is not the sandbox's
      const direct = await new Promise<string>((resolve) => {
        const client = connect(port, '127.0.0.1', () => resolve('connected')).on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'))
        client.on('connect', () => client.destroy())
      })
      expect(direct).toBe('ECONNREFUSED')
    } finally {
      child.kill('SIGKILL')
    }
  })

  it('--publish: a client finds its connection closed while nothing listens inside yet', async () => {
    const socket = join(dir, 'early.sock')
    const child = spawn(LAUNCHER, [...SELF, '--publish', `9229=${socket}`, '--', 'sleep', '10'], { cwd: '/', stdio: 'ignore' })
    try {
      for (let i = 0; i < 100 && spawnSync('test', ['-S', socket]).status !== 0; i++) await new Promise((resolve) => setTimeout(resolve, 20))
      const closed = await new Promise<string>((resolve) => {
        const client = connect(socket)
        client.on('data', () => resolve('data')).on('close', () => resolve('closed')).on('error', () => resolve('closed'))
      })
      expect(closed).toBe('closed')
    } finally {
      child.kill('SIGKILL')
    }
  })

  it('--enforce-permissions: uid 0 without DAC_OVERRIDE, DAC_READ_SEARCH, FOWNER; a mode-000 file is EACCES, chown still works', () => {
    const script = 'grep CapBnd /proc/self/status; echo x > /tmp/f; chmod 000 /tmp/f; cat /tmp/f 2>&1; chown 0:0 /tmp/f && echo chowned; id -u'
    const enforced = launch([...SELF, '--tmpfs', '/tmp', '--enforce-permissions', '--pid-namespace', '--', 'sh', '-c', script])
    expect(enforced.status, enforced.stderr).toBe(0)
    const bounding = BigInt(`0x${/CapBnd:\s*([0-9a-f]+)/.exec(enforced.stdout)![1]}`)
    // capabilities(7): CAP_DAC_OVERRIDE 1, CAP_DAC_READ_SEARCH 2, CAP_FOWNER 3; CAP_CHOWN 0 stays
    expect(bounding & 0b1110n).toBe(0n)
    expect(bounding & 0b1n).toBe(1n)
    expect(enforced.stdout).toContain('Permission denied')
    expect(enforced.stdout).toMatch(/chowned\n0\n$/)
    const bypassed = launch([...SELF, '--tmpfs', '/tmp', '--', 'sh', '-c', script])
    expect(bypassed.stdout).not.toContain('Permission denied')
    expect(BigInt(`0x${/CapBnd:\s*([0-9a-f]+)/.exec(bypassed.stdout)![1]}`) & 0b1110n).toBe(0b1110n)
  })

  it('--tmpfs-dir: an empty, world-writable, sticky dir made on the tmpfs it lies in', () => {
    const result = launch([...SELF, '--tmpfs', '/tmp', '--tmpfs-dir', '/tmp/user/4242', '--', 'sh', '-c', 'stat -c %a /tmp/user/4242; ls -A /tmp/user/4242 | wc -l'])
    expect(result.status, result.stderr).toBe(0)
    expect(result.stdout).toBe('1777\n0\n')
  })
})
