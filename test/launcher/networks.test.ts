import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, readlinkSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, expect, it } from 'vitest'
import { findExecutable } from '../../src/engine/host-facts.js'
import { LAUNCHER, describeSandbox } from '../support/sandbox.js'

// The warm holder's network namespaces made ahead (--hold --networks), and launchers
// that take one (--userns-fd N --networks): what a pool's sandboxes run with.

const uid = process.geteuid!()
const gid = process.getegid!()
const SELF = ['--uid-map', `0:${uid}:1`, '--gid-map', `0:${gid}:1`]
const dir = mkdtempSync(join(tmpdir(), 'vpr-networks-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** A holder serving `socket`, ready, and an fd on its user namespace for launchers. */
async function startHolder(socket: string): Promise<{ holder: ChildProcessWithoutNullStreams; fd: number }> {
  const holder = spawn(LAUNCHER, [...SELF, '--hold', '--networks', socket], { stdio: ['pipe', 'pipe', 'pipe'] })
  const said = await new Promise<string>((resolve) => holder.stdout.setEncoding('utf8').once('data', resolve))
  expect(said).toBe('ready\n')
  return { holder, fd: openSync(`/proc/${holder.pid}/ns/user`, 'r') }
}

/** The namespaces a traced launcher entered: its unshare(2) and setns(2) calls, as strace wrote them. */
function traced(socket: string, fd: number, command: string[]) {
  const log = join(dir, `strace-${Math.random().toString(36).slice(2)}.txt`)
  const r = spawnSync('strace', ['-qq', '-o', log, '-e', 'trace=unshare,setns', LAUNCHER, '--userns-fd', '3', '--networks', socket, '--', ...command], { encoding: 'utf8', cwd: '/', stdio: ['ignore', 'pipe', 'pipe', fd] })
  return { ...r, calls: readFileSync(log, 'utf8') }
}

// a node server on port 80 of the sandbox's own 127.0.0.1, reached from inside: uid 0 has
// its capabilities in the namespace (it belongs to the nested user namespace), lo is up
const SERVE_80 = `const net = require('net'); const s = net.createServer((c) => c.end('ok')).listen(80, '127.0.0.1', () => net.connect(80, '127.0.0.1').on('data', (d) => { console.log(require('fs').readlinkSync('/proc/self/ns/net') + ' ' + d); setTimeout(() => s.close(), 500) }))`

describeSandbox('launcher: network namespaces made ahead by the warm holder', () => {
  it('each sandbox joins one the holder made, lo up and port 80 its own; none is given twice, none is the holder\'s', async () => {
    if (!findExecutable('strace')) throw new Error('strace is needed for this test: apt-get install strace')
    const socket = join(dir, 'networks-a')
    const { holder, fd } = await startHolder(socket)
    try {
      // the holder makes them after "ready": the first launcher may come before any exists
      let joined: ReturnType<typeof traced> | undefined
      for (let attempt = 0; attempt < 50 && !joined; attempt++) {
        const r = traced(socket, fd, [process.execPath, '-e', SERVE_80])
        expect(r.stderr).toBe('')
        expect(r.stdout).toMatch(/^net:\[\d+\] ok\n$/)
        if (/setns\(\d+, CLONE_NEWNET\)\s+= 0/.test(r.calls)) joined = r
        else await new Promise((resolve) => setTimeout(resolve, 20))
      }
      expect(joined, 'no launcher joined a network namespace made ahead in 50 tries').toBeDefined()
      // joined, not made: no unshare(2) of this launcher made a network namespace
      expect(joined!.calls).not.toMatch(/unshare\([^)]*CLONE_NEWNET/)

      // several at once (alive together: a finished one's inode may be reused)
      const run = () => {
        const child = spawn(LAUNCHER, ['--userns-fd', '3', '--networks', socket, '--', process.execPath, '-e', SERVE_80], { stdio: ['ignore', 'pipe', 'pipe', fd] })
        let out = ''
        child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d))
        child.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d))
        return new Promise<string>((resolve) => child.once('close', () => resolve(out)))
      }
      const outs = await Promise.all([run(), run(), run(), run(), run(), run()])
      for (const out of outs) expect(out).toMatch(/^net:\[\d+\] ok\n$/)
      const namespaces = outs.map((out) => out.split(' ')[0])
      expect(new Set(namespaces).size).toBe(namespaces.length)
      expect(namespaces).not.toContain(readlinkSync(`/proc/${holder.pid}/ns/net`))
    } finally {
      closeSync(fd)
      holder.stdin.end()
    }
    // it ends with its stdin, and its socket with it
    const [code] = await new Promise<[number | null]>((resolve) => holder.once('close', (c) => resolve([c])))
    expect(code).toBe(0)
  })

  it('a launcher with nobody on the socket makes its own, as without the holder', async () => {
    if (!findExecutable('strace')) throw new Error('strace is needed for this test: apt-get install strace')
    const socket = join(dir, 'networks-b')
    const { holder, fd } = await startHolder(socket)
    holder.stdin.end()
    await new Promise((resolve) => holder.once('close', resolve))
    expect(existsSync(socket)).toBe(true) // a socket file nobody listens on any more
    try {
      const r = traced(socket, fd, [process.execPath, '-e', SERVE_80])
      expect(r.stderr).toBe('')
      expect(r.stdout).toMatch(/^net:\[\d+\] ok\n$/)
      expect(r.calls).toMatch(/unshare\([^)]*CLONE_NEWNET[^)]*\)\s+= 0/)
      expect(r.calls).not.toMatch(/setns\(\d+, CLONE_NEWNET\)/)
      // and where no socket is at all
      const missing = traced(join(dir, 'no-such-socket'), fd, [process.execPath, '-e', SERVE_80])
      expect(missing.stderr).toBe('')
      expect(missing.stdout).toMatch(/^net:\[\d+\] ok\n$/)
    } finally {
      closeSync(fd)
    }
  })

  it('names the step when the holder can\'t listen, and takes --networks only with --userns-fd or --hold', () => {
    const held = spawnSync(LAUNCHER, [...SELF, '--hold', '--networks', join(dir, 'no-such-dir', 'networks')], { encoding: 'utf8', cwd: '/', input: '' })
    expect(held.stdout).toBe('')
    expect(held.stderr).toBe(`vitest-pool-rootless: hold: can't listen on ${join(dir, 'no-such-dir', 'networks')}: No such file or directory\n`)
    const usage = spawnSync(LAUNCHER, [...SELF, '--networks', join(dir, 'networks-c'), '--', 'true'], { encoding: 'utf8', cwd: '/' })
    expect(usage.stderr).toMatch(/^vitest-pool-rootless: usage: --networks goes with --userns-fd \(or --hold\) \(usage: /)
  })
})
