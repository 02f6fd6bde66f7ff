import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, readlinkSync, rmSync } from 'node:fs'
import { createServer, type AddressInfo, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { LAUNCHER_STEPS } from '../../src/plan/steps.js'
import { cpuTicks, fdCount, MAX_FDS, MAX_TICKS_IN_2S, processTree as tree } from '../support/procs.js'
import { LAUNCHER, describeSandbox } from '../support/sandbox.js'

// What a test can shape and the launcher or its forwarder reads (issue 26): argv built
// from options, and the forwarder's control socket, which a sandboxed process can reach.

const SELF = ['--uid-map', `0:${process.geteuid!()}:1`, '--gid-map', `0:${process.getegid!()}:1`]
const stepCode = (name: string) => Number(Object.entries(LAUNCHER_STEPS).find(([, n]) => n === name)![0])
const launch = (args: string[]) => spawnSync(LAUNCHER, args, { encoding: 'utf8', cwd: '/', timeout: 20_000 })

function expectUsage(result: { status: number | null; stderr: string }, text: string) {
  expect(result.status, result.stderr).toBe(stepCode('usage'))
  expect(result.stderr.trimEnd().split('\n')).toHaveLength(1)
  expect(result.stderr).toContain(text)
}

describe('launcher: argv that a plan could carry but the kernel should never see', () => {
  it.each(['18446744073709551615:0:1', '0:18446744073709551615:1', '0:0:18446744073709551615', '4294967296:0:1', '4294967295:0:1', '0:4294967295:1'])(
    'refuses the id range %s as usage, not as a kernel error later',
    (range) => {
      expectUsage(launch(['--uid-map', range, '--gid-map', '0:0:1', '--', 'true']), `bad id range '${range}'`)
    },
  )

  it('takes the largest ranges that fit: 0:0:4294967295 is parsed (and refused by the kernel, not the parser)', () => {
    const result = launch(['--uid-map', '0:0:4294967295', '--gid-map', '0:0:1', '--', 'true'])
    expect(result.stderr).not.toContain('bad id range')
  })

  it('keeps a step error on one line when argv holds a newline: a second line could be forged', () => {
    const forged = 'x\nvitest-pool-rootless: exec: forged'
    const result = launch([...SELF, '--hostname', `${'h'.repeat(70)}${forged}`, '--', 'true'])
    expect(result.status).toBe(stepCode('hostname'))
    expect(result.stderr.trimEnd().split('\n')).toHaveLength(1)
    expect(result.stderr).toContain('x?vitest-pool-rootless: exec: forged')
    const usage = launch([...SELF, `--bogus${forged}`, '--', 'true'])
    expectUsage(usage, "unknown option '--bogusx?vitest-pool-rootless")
  })

  it('refuses a --tmpfs-size longer than any size, instead of cutting it and mounting', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vpr-size-'))
    try {
      expectUsage(launch([...SELF, '--tmpfs', dir, '--tmpfs-size', '1'.repeat(4096), '--', 'true']), 'bad tmpfs size')
      // a comma would add mount options of its own
      expectUsage(launch([...SELF, '--tmpfs', dir, '--tmpfs-size', '1m,mode=0777', '--', 'true']), "bad tmpfs size '1m,mode=0777'")
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('refuses a second --status-fd (and any single-valued flag given twice) instead of ignoring it', () => {
    const twice = spawnSync(LAUNCHER, ['--status-fd', '3', ...SELF, '--status-fd', '4', '--', 'true'], { stdio: ['ignore', 'pipe', 'pipe', 'pipe', 'pipe'] })
    expectUsage({ status: twice.status, stderr: String(twice.stderr) }, '--status-fd is given twice')
    // still reported on the first one, which is taken before anything else
    expect([...(twice.output[3] as Buffer)]).toEqual([stepCode('usage')])
    expectUsage(launch([...SELF, '--hostname', 'a', '--hostname', 'b', '--', 'true']), '--hostname is given twice')
  })
})

describeSandbox('the forwarder, handed junk by a sandboxed process that holds its control fd', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vpr-hostile-'))
  const hostile = join(dir, 'hostile-control')
  let echo: Server
  let port: number
  beforeAll(async () => {
    const cc = spawnSync('cc', ['-O2', '-o', hostile, join(import.meta.dirname, 'fixtures', 'hostile-control.c')], { encoding: 'utf8' })
    if (cc.status !== 0) throw new Error(`can't build the hostile client: ${cc.stderr || cc.error}`)
    echo = createServer((socket) => socket.end('still here'))
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve))
    port = (echo.address() as AddressInfo).port
  })
  afterAll(() => {
    echo.close()
    rmSync(dir, { recursive: true, force: true })
  })

  // Run by the launcher directly (not a whole Vitest run): the worker of a reused sandbox
  // holds the fd (RESET_ENV set), and hands it to a child as its fd 3.
  it.each([
    ['with a pid namespace (as pools run it)', ['--pid-namespace']],
    ['without one', []],
  ])('drops empty, short, two-fd, UDP and unbound-socket messages without exiting, leaking or spinning, %s', async (_, mode) => {
    const script = `
const net = require('net'), { spawnSync } = require('child_process')
const fd = Number(process.env.VITEST_POOL_ROOTLESS_FORWARDER)
const r = spawnSync(${JSON.stringify(hostile)}, ['3', '400', '${port}'], { stdio: ['ignore', 'inherit', 'inherit', fd] })
console.log('attacked ' + r.status)
setTimeout(() => {
  const s = net.connect(7000, '127.0.0.1')
  let got = ''
  s.setEncoding('utf8').on('data', (d) => (got += d)).on('end', () => { console.log(got); process.exit(0) })
  s.on('error', (e) => { console.log(e.code); process.exit(0) })
}, 2500)`
    const child = spawn(LAUNCHER, [...SELF, '--forward', `7000:${port}`, ...mode, '--', process.execPath, '-e', script], {
      cwd: '/',
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, VITEST_POOL_ROOTLESS_RESET: '{}' },
    })
    let stdout = ''
    let stderr = ''
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    const attacked = new Promise<void>((resolve) =>
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        stdout += d
        if (stdout.includes('attacked')) resolve()
      }),
    )
    const closed = new Promise<void>((resolve) => child.once('close', () => resolve()))
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
    await Promise.race([attacked, closed])
    expect(stdout).toContain('attacked 0')
    // ours: the launcher (or the command it became), the forwarder, init, the worker
    const pids = tree(child.pid!)
    const hostNet = readlinkSync('/proc/self/ns/net')
    // the one process of the sandbox that stays in the host's network
    const forwarder = pids.find((pid) => {
      try {
        return pid !== child.pid && readlinkSync(`/proc/${pid}/ns/net`) === hostNet
      } catch {
        return false
      }
    })
    expect(forwarder, 'the forwarder is still there').toBeDefined()
    const before = cpuTicks(forwarder!)
    await new Promise((resolve) => setTimeout(resolve, 2000))
    const used = cpuTicks(forwarder!) - before
    const fds = Object.fromEntries(tree(child.pid!).map((pid) => [pid, fdCount(pid)]))
    await closed
    clearTimeout(timer)
    expect(stderr).toBe('')
    expect(stdout.trim().split('\n').pop()).toBe('still here')
    for (const [pid, count] of Object.entries(fds)) expect(count, `fds of pid ${pid}`).toBeLessThanOrEqual(MAX_FDS)
    expect(used).toBeLessThanOrEqual(MAX_TICKS_IN_2S)
  })
})
