import { spawn } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { beforeAll, expect, inject, it } from 'vitest'
import { copyFixture, prepareConsumer, type Consumer } from '../support/consumer.js'
import { diffLeftovers, expectNoLeftovers, hostPidsOf, snapshotLeftovers, TAG, TAG_ENV, type LeftoverReport, type Leftovers } from '../support/leftovers.js'
import { runVitest } from '../support/pool-suite.js'
import { describeSandbox } from '../support/sandbox.js'

/**
 * Fault injection through real Vitest: each case breaks a run in one way and checks
 * that the file is reported as it should be, and that no process, mount or namespace
 * of the run is left on the host 2 s later.
 */

interface Exit {
  code: number | null
  signal: NodeJS.Signals | null
}

/** A consumer Vitest run we watch while it runs, to act on what its tests print. */
interface LiveRun {
  pid: number
  output(): string
  /** Resolves with the first match of `pattern` in the output so far or later. */
  waitFor(pattern: RegExp, ms?: number): Promise<RegExpExecArray>
  /** The Vitest process has exited (its output may still be arriving). */
  exited: Promise<Exit>
  /** The Vitest process has exited and its output ended. */
  closed: Promise<Exit>
}

/**
 * `vitest run --root <root> --reporter=verbose`, as `runVitest` does, but streamed.
 * With `tty`, Vitest runs under `script` on a pseudo-terminal that becomes its
 * controlling terminal -- as when a developer runs it from a shell.
 */
function startVitest(consumer: Consumer, root: string, options: { env?: Record<string, string>; tty?: boolean } = {}): LiveRun {
  const argv = [consumer.node, consumer.vitest, 'run', '--root', root, '--reporter=verbose']
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`
  const [file, args] = options.tty ? ['script', ['-qec', argv.map(quote).join(' '), '/dev/null']] : [argv[0]!, argv.slice(1)]
  const child = spawn(file, args as string[], {
    cwd: root,
    env: { ...process.env, CI: 'true', NO_COLOR: '1', FORCE_COLOR: '0', [TAG_ENV]: TAG, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (output += d))
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (output += d))
  const guard = setTimeout(() => child.kill('SIGKILL'), 60_000)
  const exited = new Promise<Exit>((resolve, reject) => {
    child.once('error', reject)
    child.once('exit', (code, signal) => resolve({ code, signal }))
  })
  const closed = new Promise<Exit>((resolve) =>
    child.once('close', (code, signal) => {
      clearTimeout(guard)
      resolve({ code, signal })
    }),
  )
  return {
    pid: child.pid!,
    output: () => output,
    exited,
    closed,
    waitFor(pattern, ms = 30_000) {
      return new Promise((resolve, reject) => {
        const deadline = Date.now() + ms
        const check = () => {
          const match = pattern.exec(output)
          if (match) return resolve(match)
          if (Date.now() > deadline || child.exitCode !== null || child.signalCode !== null) {
            return reject(new Error(`Vitest never printed ${pattern}:\n${output}`))
          }
          setTimeout(check, 25)
        }
        check()
      })
    },
  }
}

/** Lines of `output` that mention every one of `words`. */
const linesWith = (output: string, ...words: string[]) => output.split('\n').filter((l) => words.every((w) => l.includes(w)))

const alive = (pid: number) => {
  try {
    return !/^\d+ \(.*\) [ZX] /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return false
  }
}

describeSandbox('fault injection: rootless() on Vitest 4', () => {
  let consumer: Consumer
  beforeAll(() => {
    consumer = prepareConsumer(4, inject('tarball'))
  }, 120_000)

  /** Records how fast a case came clean, for the log. */
  async function noLeftovers(name: string, before: Leftovers): Promise<LeftoverReport> {
    const report = await expectNoLeftovers(before, consumer)
    console.log(`[faults] ${name}: clean after ${report.cleanAfterMs} ms; at first look ${JSON.stringify(report.atFirstLook)}`)
    return report
  }

  /** Proves the leftover check sees a live run: our processes and its new net namespaces. */
  function expectVisibleWhileRunning(before: Leftovers): void {
    const during = diffLeftovers(before, snapshotLeftovers(consumer))
    expect(during.counts.processes, `no worker process of the run was found:\n${during.text}`).toBeGreaterThan(0)
    expect(during.counts.netNamespaces, `no sandbox network namespace was found:\n${during.text}`).toBeGreaterThan(0)
  }

  it('SIGKILL of the Vitest main process mid-run: workers and spares die with it', async () => {
    const root = copyFixture(consumer, 'faults-kill-main')
    const before = snapshotLeftovers(consumer)
    const run = startVitest(consumer, root)
    await run.waitFor(/FAULTS_STARTED/)
    expectVisibleWhileRunning(before)
    // well into the test, so nothing in flight makes the worker notice on its own:
    // only PR_SET_PDEATHSIG can take the sandbox down
    await new Promise((ok) => setTimeout(ok, 1500))
    process.kill(run.pid, 'SIGKILL')
    expect(await run.exited).toEqual({ code: null, signal: 'SIGKILL' })
    await noLeftovers('SIGKILL main', before)
  })

  it('SIGINT (Ctrl-C) to the Vitest main process: it exits, nothing is left', async () => {
    const root = copyFixture(consumer, 'faults-sigint-main')
    const before = snapshotLeftovers(consumer)
    const run = startVitest(consumer, root)
    await run.waitFor(/FAULTS_STARTED/)
    expectVisibleWhileRunning(before)
    const sent = Date.now()
    process.kill(run.pid, 'SIGINT')
    const exit = await run.exited
    console.log(`[faults] SIGINT main: Vitest exited with ${JSON.stringify(exit)} after ${Date.now() - sent} ms`)
    // the waiting tests had 10 s left: exiting well before means SIGINT stopped the run
    expect(Date.now() - sent).toBeLessThan(5000)
    expect(exit.code === 0 && exit.signal === null, `exit ${JSON.stringify(exit)}`).toBe(false)
    await noLeftovers('SIGINT main', before)
  })

  it('SIGKILL of a worker from outside: its file is reported by name and signal, the rest pass', async () => {
    const root = copyFixture(consumer, 'faults-kill-worker')
    const before = snapshotLeftovers(consumer)
    const run = startVitest(consumer, root)
    const [, inner, netns] = await run.waitFor(/FAULTS_WORKER (\d+) (net:\[\d+\])/)
    expectVisibleWhileRunning(before)
    // the pid the test printed, as the host sees it (the same unless there is a pid namespace)
    const pids = hostPidsOf(Number(inner), netns!)
    expect(pids, `host pid of worker ${inner} in ${netns}`).toHaveLength(1)
    process.kill(pids[0]!, 'SIGKILL')
    const exit = await run.closed
    const output = run.output()
    expect(exit.code, output).not.toBe(0)
    expect(linesWith(output, 'SIGKILL', 'victim.test.ts'), output).not.toEqual([])
    expect(output).toMatch(/✓ ok\.test\.ts/)
    expect(output).not.toMatch(/✓ victim\.test\.ts/)
    await noLeftovers('SIGKILL worker', before)
  })

  it("SIGKILL of a worker's launcher (the process Vitest forked): init and worker die with it, the file is reported", async () => {
    const root = copyFixture(consumer, 'faults-kill-worker')
    const before = snapshotLeftovers(consumer)
    const run = startVitest(consumer, root)
    const [, inner, netns] = await run.waitFor(/FAULTS_WORKER (\d+) (net:\[\d+\])/)
    const [worker] = hostPidsOf(Number(inner), netns!)
    // worker (pid 2 inside) -> init (pid 1 inside) -> the launcher Vitest knows
    const parentOf = (pid: number) => Number(/^PPid:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1])
    const launcher = parentOf(parentOf(worker!))
    expect(readFileSync(`/proc/${launcher}/cmdline`, 'utf8')).toContain('--pid-namespace')
    process.kill(launcher, 'SIGKILL')
    const exit = await run.closed
    const output = run.output()
    expect(exit.code, output).not.toBe(0)
    expect(linesWith(output, 'SIGKILL', 'victim.test.ts'), output).not.toEqual([])
    expect(output).toMatch(/✓ ok\.test\.ts/)
    await noLeftovers('SIGKILL launcher', before)
  })

  it('process.exit(42) in a test: reported, the rest pass', async () => {
    const root = copyFixture(consumer, 'faults-exit')
    const before = snapshotLeftovers(consumer)
    const run = await runVitest(consumer, root, [], { [TAG_ENV]: TAG })
    expect(run.code, run.output).not.toBe(0)
    expect(run.output).toContain('process.exit unexpectedly called with "42"')
    expect(run.output).toMatch(/× exit\.test\.ts/)
    expect(run.output).toMatch(/✓ ok\.test\.ts/)
    await noLeftovers('process.exit', before)
  })

  it('throw at import: reported with the error, the rest pass', async () => {
    const root = copyFixture(consumer, 'faults-import-throw')
    const before = snapshotLeftovers(consumer)
    const run = await runVitest(consumer, root, [], { [TAG_ENV]: TAG })
    expect(run.code, run.output).not.toBe(0)
    expect(run.output).toContain('faults: thrown while importing throws.test.ts')
    expect(run.output).toMatch(/FAIL\s+throws\.test\.ts/)
    expect(run.output).toMatch(/✓ ok\.test\.ts/)
    expect(run.output).toMatch(/Test Files\s+1 failed \| 1 passed \(2\)/)
    await noLeftovers('import throw', before)
  })

  it('a test that hangs past its timeout: reported as timed out, the rest pass', async () => {
    const root = copyFixture(consumer, 'faults-timeout')
    const before = snapshotLeftovers(consumer)
    const run = await runVitest(consumer, root, [], { [TAG_ENV]: TAG })
    expect(run.code, run.output).not.toBe(0)
    expect(run.output).toContain('Test timed out in 500ms')
    expect(run.output).toMatch(/× hang\.test\.ts/)
    expect(run.output).toMatch(/✓ ok\.test\.ts/)
    await noLeftovers('timeout', before)
  })

  it('a segfault: the file is reported with SIGSEGV, the rest pass', async () => {
    const root = copyFixture(consumer, 'faults-segv')
    const before = snapshotLeftovers(consumer)
    const run = await runVitest(consumer, root, [], { [TAG_ENV]: TAG })
    expect(run.code, run.output).not.toBe(0)
    expect(linesWith(run.output, 'SIGSEGV', 'segv.test.ts'), run.output).not.toEqual([])
    expect(run.output).toMatch(/✓ ok\.test\.ts/)
    expect(run.output).not.toMatch(/✓ segv\.test\.ts/)
    await noLeftovers('SIGSEGV', before)
  })

  /**
   * Runs faults-daemon, whose test double-forks `sleep 300` and prints its pid and net
   * namespace; returns the daemon's host pid once the run has ended.
   */
  async function runDaemonFixture(env: Record<string, string>): Promise<{ before: Leftovers; daemon: number; netns: string }> {
    const root = copyFixture(consumer, 'faults-daemon')
    const before = snapshotLeftovers(consumer)
    const run = startVitest(consumer, root, { env })
    let found: { before: Leftovers; daemon: number; netns: string }
    try {
      const [, inner, netns] = await run.waitFor(/FAULTS_DAEMON (\d+) (net:\[\d+\])/)
      const pids = hostPidsOf(Number(inner), netns!)
      expect(pids, `host pid of daemon ${inner} in ${netns}`).toHaveLength(1)
      const daemon = pids[0]!
      expect(readFileSync(`/proc/${daemon}/cmdline`, 'utf8').replace(/\0/g, ' ').trim()).toBe('sleep 300')
      found = { before, daemon, netns: netns! }
    } finally {
      // lets the test finish: the host has seen the daemon (or given up)
      writeFileSync(join(root, 'daemon-seen'), '')
      await run.closed
    }
    const exit = await run.closed
    expect(exit.code, run.output()).toBe(0)
    return found
  }

  async function gone(pid: number, withinMs: number): Promise<boolean> {
    const deadline = Date.now() + withinMs
    while (alive(pid) && Date.now() < deadline) await new Promise((ok) => setTimeout(ok, 50))
    return !alive(pid)
  }

  it('a daemon a test double-forks does not outlive the run', async () => {
    // control: without a pid namespace the daemon survives, and both checks see it
    const control = await runDaemonFixture({ E2E_PID_NAMESPACE: 'off' })
    try {
      expect(await gone(control.daemon, 500), 'control: without a pid namespace the daemon should survive').toBe(false)
      await expect(expectNoLeftovers(control.before, consumer, 200)).rejects.toThrow(control.netns)
    } finally {
      if (alive(control.daemon)) process.kill(control.daemon, 'SIGKILL')
      await gone(control.daemon, 2000)
    }

    const { before, daemon } = await runDaemonFixture({})
    try {
      expect(await gone(daemon, 2000), `the daemon (host pid ${daemon}, "sleep 300") is still running 2 s after the run ended`).toBe(true)
      await noLeftovers('daemon', before)
    } finally {
      if (alive(daemon)) process.kill(daemon, 'SIGKILL')
    }
  })

  it('workers have no controlling terminal, even when Vitest has one', async () => {
    const root = copyFixture(consumer, 'faults-no-tty')
    expect(existsSync('/usr/bin/script') || existsSync('/bin/script'), 'script(1) from util-linux gives Vitest a terminal').toBe(true)
    // control: the same file under the forks pool, on the same terminal, does find one
    const control = startVitest(consumer, root, { tty: true, env: { E2E_POOL: 'forks' } })
    const controlExit = await control.closed
    expect(controlExit.code, control.output()).not.toBe(0)
    expect(control.output()).toContain('/dev/tty opened')
    const before = snapshotLeftovers(consumer)
    const run = startVitest(consumer, root, { tty: true })
    const exit = await run.closed
    expect(run.output()).toMatch(/✓ tty\.test\.ts/)
    expect(exit.code, run.output()).toBe(0)
    await noLeftovers('no tty', before)
  })
})
