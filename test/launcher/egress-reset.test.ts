import { spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, expect, it } from 'vitest'
import { installedEgressHelpers } from '../../src/engine/egress.js'
import { locateAddon } from '../../src/engine/launcher-path.js'
import { createResetPlan, type SandboxPlan } from '../../src/plan/plan.js'
import { RESET_ENV } from '../../src/wire/wire.js'
import { OUTSIDE_URL, describeWithOutside } from '../support/outside.js'
import { LAUNCHER, ROOT } from '../support/sandbox.js'

// A reused worker's reset under egress with slirp4netns: the next file gets a new network
// and helper, and the old network's helper stays while a connection there is open -- a
// keep-alive connection of node:http's agent, which the next file reuses under
// isolate: false -- and goes at a later reset once none is (native/left-helpers.c).

const slirp4netns = installedEgressHelpers().find((helper) => helper.kind === 'slirp4netns')
const SELF = ['--uid-map', `0:${process.geteuid!()}:1`, '--gid-map', `0:${process.getegid!()}:1`]
const HOSTS = '127.0.0.1 localhost\n::1 localhost\n'
const base = mkdtempSync(join(tmpdir(), 'vpr-egress-reset-'))
afterAll(() => rmSync(base, { recursive: true, force: true }))

/** The live slirp4netns processes among `pid`'s descendants. */
function helpersUnder(pid: number): number {
  const parents = new Map<number, number>()
  const names = new Map<number, string>()
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const [, name, state, parent] = /^\d+ \((.*)\) (\S+) (\d+)/.exec(readFileSync(`/proc/${entry}/stat`, 'utf8'))!
      parents.set(Number(entry), Number(parent))
      if (state !== 'Z') names.set(Number(entry), name!)
    } catch {
      // gone meanwhile
    }
  }
  const under = (p: number): boolean => p === pid || (p > 1 && parents.has(p) && under(parents.get(p)!))
  return [...names].filter(([p, name]) => name === 'slirp4netns' && under(p)).length
}

describeWithOutside("a reused worker's reset under egress (slirp4netns)", () => {
  it.skipIf(!slirp4netns)("keeps the old network's helper while a kept connection there is open, and ends it at a later reset once none is", async () => {
    const dir = join(base, 'tmp')
    mkdirSync(dir)
    const plan: SandboxPlan = { user: { joinFd: 3 }, mounts: [{ tmpfs: dir, keep: [] }], network: 'egress', egress: slirp4netns!, forwards: [], newSession: false, pidNamespace: true }
    const hostsFile = join(base, 'hosts')
    writeFileSync(hostsFile, HOSTS)
    const module = join(ROOT, 'dist', 'inside', 'sandbox-reset.js')
    // each step is said on stdout and waits for a line on stdin: the host counts helpers meanwhile
    const script = `import { SandboxReset } from ${JSON.stringify(module)}
import * as http from 'node:http'
const sandbox = SandboxReset.fromEnv()
const agent = new http.Agent({ keepAlive: true })
const get = () => new Promise((resolve) => {
  http.get('${OUTSIDE_URL}/hello', { agent, timeout: 3000 }, (res) => {
    let data = ''
    res.setEncoding('utf8').on('data', (d) => (data += d)).on('end', () => resolve(data.trim()))
  }).on('error', (e) => resolve(e.code)).on('timeout', function () { this.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })) })
})
const lines = process.stdin.setEncoding('utf8')
const step = (name) => new Promise((resolve) => { lines.once('data', resolve); console.log(name) })
const report = {}
sandbox.reset()
// the second file: a connection in its own network, which the agent keeps
report.second = await get()
sandbox.reset()
// the third file: the second's connection is reused, through the second's helper
report.third = await get()
await step('kept')
agent.destroy()
await new Promise((resolve) => setTimeout(resolve, 300))
sandbox.reset()
// the fourth file: neither the second's network nor the third's holds a connection now
await step('ended')
console.log(JSON.stringify(report))
process.exit(0)
`
    const reset = createResetPlan(plan, HOSTS, locateAddon())
    const worker = spawn(
      LAUNCHER,
      [...SELF, '--tmpfs', dir, '--hosts-file', hostsFile, '--pid-namespace', '--egress', `${slirp4netns!.kind}:${slirp4netns!.path}`, '--', process.execPath, '--input-type=module', '-e', script],
      { cwd: '/', env: { ...process.env, [RESET_ENV]: JSON.stringify(reset) }, stdio: ['pipe', 'pipe', 'pipe'] },
    )
    const counts: Record<string, number> = {}
    let stdout = ''
    let stderr = ''
    worker.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    worker.stdout.setEncoding('utf8').on('data', async (d: string) => {
      stdout += d
      if (stdout.includes('kept\n') && !('kept' in counts)) {
        counts.kept = helpersUnder(worker.pid!)
        worker.stdin.write('go\n')
      }
      if (stdout.includes('ended\n') && !('ended' in counts)) {
        counts.ended = Infinity
        // a helper whose pipe closed exits in its own time: a few ms
        for (const deadline = Date.now() + 3000; Date.now() < deadline; await new Promise((resolve) => setTimeout(resolve, 50))) {
          counts.ended = helpersUnder(worker.pid!)
          if (counts.ended <= 3) break
        }
        worker.stdin.write('go\n')
      }
    })
    const code = await new Promise<number | null>((resolve) => worker.once('close', resolve))
    expect(stderr).toBe('')
    expect(code).toBe(0)
    const report = JSON.parse(stdout.trim().split('\n').pop()!)
    // the third file's request went over the second file's kept connection: answered
    expect(report).toEqual({ second: 'hello from outside', third: 'hello from outside' })
    // kept: the first file's (the launcher's), the second's, the third's, and perhaps the
    // one made ahead for the next file; ended: the second's and third's are gone
    expect(counts.kept).toBeGreaterThanOrEqual(3)
    expect(counts.ended).toBeLessThanOrEqual(3)
    expect(counts.kept! - counts.ended!).toBeGreaterThanOrEqual(1)
  })
})
