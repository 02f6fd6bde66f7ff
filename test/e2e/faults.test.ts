import { execFileSync, spawn } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeAll, expect, inject, it } from 'vitest'
import { copyFixture, prepareConsumer, type Consumer } from '../support/consumer.js'
import { diffLeftovers, expectNoLeftovers, hostPidsOf, releaseNamespaces, snapshotLeftovers, TAG, TAG_ENV, trackNamespaces, type LeftoverReport, type Leftovers } from '../support/leftovers.js'
import { describeSandbox, LAUNCHER } from '../support/sandbox.js'
import { startVitest, type Exit, type LiveRun } from '../support/vitest-run.js'

/**
 * Fault injection through real Vitest: each case breaks a run in one way and checks
 * that the file is reported as it should be, and that no process, mount or namespace
 * of the run is left on the host 2 s later. The cases are one table (FAULTS); one loop
 * turns each into a test.
 */

/** How a case breaks the run. Those with `when` act once Vitest printed it. */
type Provoke =
  /** Nothing from outside: the fixture's tests break the run themselves. */
  | { do: 'run' }
  /** A signal to the Vitest main process, `delayMs` after `when`. */
  | { do: 'signal main'; signal: 'SIGKILL' | 'SIGINT'; when: RegExp; delayMs?: number }
  /** SIGKILL to the worker whose pid and net namespace `when` captures (as seen inside). */
  | { do: 'kill worker'; when: RegExp }
  /** SIGKILL to that worker's launcher, the process Vitest forked (worker -> init -> launcher). */
  | { do: 'kill launcher'; when: RegExp }
  /**
   * The test double-forks `sleep 300` and prints its pid and net namespace (`when`);
   * the host finds its host pid, then lets the test finish (writes `daemon-seen`).
   */
  | { do: 'find daemon'; when: RegExp }

/** What Vitest must report. */
interface Report {
  /**
   * 'fails': the process did not exit 0; 'passes': it did; an Exit: exactly that
   * (read from 'exit' for a signalled main process, else once its output ended).
   */
  exit: 'fails' | 'passes' | Exit
  /** The main process exits within this many ms of the signal. */
  exitsWithinMs?: number
  contains?: string[]
  matches?: RegExp[]
  absent?: RegExp[]
  /** Some line names this file together with this signal. */
  fileAndSignal?: [file: string, signal: string]
  /** 'find daemon': the daemon is gone 2 s after the run ('dies'), or still runs 500 ms after ('survives'). */
  daemon?: 'dies' | 'survives'
}

interface Fault {
  title: string
  /** Names the case in the `[faults] <log>: clean after N ms` line. */
  log: string
  fixture: string
  env?: Record<string, string>
  /** Vitest runs on a pseudo-terminal (see `startVitest`); needs script(1). */
  tty?: boolean
  provoke: Provoke
  report: Report
  /**
   * 'clean': nothing of the run is left 2 s after it (the promise to users).
   * 'caught': a control that leaves something on purpose; the check must report it.
   * Either way the snapshot is taken right before Vitest starts.
   */
  leftovers: 'clean' | 'caught'
}

const FAULTS: Fault[] = [
  {
    title: 'SIGKILL of the Vitest main process mid-run: workers and spares die with it',
    log: 'SIGKILL main',
    fixture: 'faults-kill-main',
    // well into the test, so nothing in flight makes the worker notice on its own:
    // only PR_SET_PDEATHSIG can take the sandbox down
    provoke: { do: 'signal main', signal: 'SIGKILL', when: /FAULTS_STARTED/, delayMs: 1500 },
    report: { exit: { code: null, signal: 'SIGKILL' } },
    leftovers: 'clean',
  },
  {
    title: 'SIGINT (Ctrl-C) to the Vitest main process: it exits, nothing is left',
    log: 'SIGINT main',
    fixture: 'faults-sigint-main',
    provoke: { do: 'signal main', signal: 'SIGINT', when: /FAULTS_STARTED/ },
    // the waiting tests had 10 s left: exiting well before means SIGINT stopped the run
    report: { exit: 'fails', exitsWithinMs: 5000 },
    leftovers: 'clean',
  },
  {
    title: 'SIGKILL of a worker from outside: its file is reported by name and signal, the rest pass',
    log: 'SIGKILL worker',
    fixture: 'faults-kill-worker',
    provoke: { do: 'kill worker', when: /FAULTS_WORKER (\d+) (net:\[\d+\])/ },
    report: { exit: 'fails', fileAndSignal: ['victim.test.ts', 'SIGKILL'], matches: [/✓ ok\.test\.ts/], absent: [/✓ victim\.test\.ts/] },
    leftovers: 'clean',
  },
  {
    title: "SIGKILL of a worker's launcher (the process Vitest forked): init and worker die with it, the file is reported",
    log: 'SIGKILL launcher',
    fixture: 'faults-kill-worker',
    provoke: { do: 'kill launcher', when: /FAULTS_WORKER (\d+) (net:\[\d+\])/ },
    report: { exit: 'fails', fileAndSignal: ['victim.test.ts', 'SIGKILL'], matches: [/✓ ok\.test\.ts/] },
    leftovers: 'clean',
  },
  {
    title: 'process.exit(42) in a test: reported, the rest pass',
    log: 'process.exit',
    fixture: 'faults-exit',
    provoke: { do: 'run' },
    report: { exit: 'fails', contains: ['process.exit unexpectedly called with "42"'], matches: [/× exit\.test\.ts/, /✓ ok\.test\.ts/] },
    leftovers: 'clean',
  },
  {
    title: 'throw at import: reported with the error, the rest pass',
    log: 'import throw',
    fixture: 'faults-import-throw',
    provoke: { do: 'run' },
    report: {
      exit: 'fails',
      contains: ['faults: thrown while importing throws.test.ts'],
      matches: [/FAIL\s+throws\.test\.ts/, /✓ ok\.test\.ts/, /Test Files\s+1 failed \| 1 passed \(2\)/],
    },
    leftovers: 'clean',
  },
  {
    title: 'a test that hangs past its timeout: reported as timed out, the rest pass',
    log: 'timeout',
    fixture: 'faults-timeout',
    provoke: { do: 'run' },
    report: { exit: 'fails', contains: ['Test timed out in 500ms'], matches: [/× hang\.test\.ts/, /✓ ok\.test\.ts/] },
    leftovers: 'clean',
  },
  {
    title: 'a segfault: the file is reported with SIGSEGV, the rest pass',
    log: 'SIGSEGV',
    fixture: 'faults-segv',
    provoke: { do: 'run' },
    report: { exit: 'fails', fileAndSignal: ['segv.test.ts', 'SIGSEGV'], matches: [/✓ ok\.test\.ts/], absent: [/✓ segv\.test\.ts/] },
    leftovers: 'clean',
  },
  {
    title: 'control: without a pid namespace, a daemon a test double-forks survives, and the leftover check reports it',
    log: 'daemon control',
    fixture: 'faults-daemon',
    env: { E2E_PID_NAMESPACE: 'off' },
    provoke: { do: 'find daemon', when: /FAULTS_DAEMON (\d+) (net:\[\d+\])/ },
    report: { exit: 'passes', daemon: 'survives' },
    leftovers: 'caught',
  },
  {
    title: 'a daemon a test double-forks does not outlive the run',
    log: 'daemon',
    fixture: 'faults-daemon',
    provoke: { do: 'find daemon', when: /FAULTS_DAEMON (\d+) (net:\[\d+\])/ },
    report: { exit: 'passes', daemon: 'dies' },
    leftovers: 'clean',
  },
  {
    title: 'control: under the forks pool, on the same terminal, a test does find a controlling terminal',
    log: 'no tty control',
    fixture: 'faults-no-tty',
    env: { E2E_POOL: 'forks' },
    tty: true,
    provoke: { do: 'run' },
    report: { exit: 'fails', contains: ['/dev/tty opened'] },
    leftovers: 'clean',
  },
  {
    title: 'workers have no controlling terminal, even when Vitest has one',
    log: 'no tty',
    fixture: 'faults-no-tty',
    tty: true,
    provoke: { do: 'run' },
    report: { exit: 'passes', matches: [/✓ tty\.test\.ts/] },
    leftovers: 'clean',
  },
]

/** Lines of `output` that mention every one of `words`. */
const linesWith = (output: string, ...words: string[]) => output.split('\n').filter((l) => words.every((w) => l.includes(w)))

const alive = (pid: number) => {
  try {
    return !/^\d+ \(.*\) [ZX] /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return false
  }
}

async function gone(pid: number, withinMs: number): Promise<boolean> {
  const deadline = Date.now() + withinMs
  while (alive(pid) && Date.now() < deadline) await new Promise((ok) => setTimeout(ok, 50))
  return !alive(pid)
}

const parentOf = (pid: number) => Number(/^PPid:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1])

const commandOf = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim()

/** What provoking a case gave: the exit to judge and, for 'find daemon', the daemon. */
interface Provoked {
  exit: Exit
  /** Ms from the signal to the exit ('signal main'). */
  exitedAfterMs?: number
  daemon?: { pid: number; netns: string }
}

describeSandbox('fault injection: rootless() on Vitest 4', () => {
  let consumer: Consumer
  beforeAll(() => {
    consumer = prepareConsumer(4, inject('tarball'))
  }, 120_000)
  // a run no check followed must not keep its namespaces held open
  afterEach(() => releaseNamespaces())

  /** Records how fast a case came clean, for the log. */
  async function noLeftovers(name: string, before: Leftovers): Promise<LeftoverReport> {
    const report = await expectNoLeftovers(before, consumer)
    console.log(`[faults] ${name}: clean after ${report.cleanAfterMs} ms; at first look ${JSON.stringify(report.atFirstLook)}`)
    return report
  }

  /** The message `expectNoLeftovers` fails with; fails itself when the check passes. */
  async function leftoverError(before: Leftovers, withinMs: number): Promise<string> {
    const error = await expectNoLeftovers(before, consumer, withinMs).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(error, 'the leftover check found nothing').toBeInstanceOf(Error)
    return (error as Error).message
  }

  /** Proves the leftover check sees a live run: our processes and its new net namespaces. */
  function expectVisibleWhileRunning(before: Leftovers): void {
    const during = diffLeftovers(before, snapshotLeftovers(consumer))
    expect(during.counts.processes, `no worker process of the run was found:\n${during.text}`).toBeGreaterThan(0)
    expect(during.counts.netNamespaces, `no sandbox network namespace was found:\n${during.text}`).toBeGreaterThan(0)
  }

  async function provoke(how: Provoke, run: LiveRun, before: Leftovers, root: string): Promise<Provoked> {
    switch (how.do) {
      case 'run':
        return { exit: await run.closed }
      case 'signal main': {
        await run.waitFor(how.when)
        expectVisibleWhileRunning(before)
        if (how.delayMs) await new Promise((ok) => setTimeout(ok, how.delayMs))
        const sent = Date.now()
        run.kill(how.signal)
        // not `closed`: what matters is the main process; its output is already in
        const exit = await run.exited
        const exitedAfterMs = Date.now() - sent
        console.log(`[faults] ${how.signal} main: Vitest exited with ${JSON.stringify(exit)} after ${exitedAfterMs} ms`)
        return { exit, exitedAfterMs }
      }
      case 'kill worker':
      case 'kill launcher': {
        const [, inner, netns] = await run.waitFor(how.when)
        expectVisibleWhileRunning(before)
        // the pid the test printed, as the host sees it (the same unless there is a pid namespace)
        const pids = hostPidsOf(Number(inner), netns!)
        expect(pids, `host pid of worker ${inner} in ${netns}`).toHaveLength(1)
        let victim = pids[0]!
        if (how.do === 'kill launcher') {
          // worker (pid 2 inside) -> init (pid 1 inside) -> the launcher Vitest knows
          victim = parentOf(parentOf(victim))
          expect(readFileSync(`/proc/${victim}/cmdline`, 'utf8')).toContain('--pid-namespace')
        }
        process.kill(victim, 'SIGKILL')
        return { exit: await run.closed }
      }
      case 'find daemon': {
        let daemon: { pid: number; netns: string } | undefined
        try {
          const [, inner, netns] = await run.waitFor(how.when)
          expectVisibleWhileRunning(before)
          const pids = hostPidsOf(Number(inner), netns!)
          expect(pids, `host pid of daemon ${inner} in ${netns}`).toHaveLength(1)
          daemon = { pid: pids[0]!, netns: netns! }
          expect(commandOf(daemon.pid)).toBe('sleep 300')
        } finally {
          // lets the test finish: the host has seen the daemon (or given up)
          writeFileSync(join(root, 'daemon-seen'), '')
          await run.closed.catch(() => {})
        }
        return { exit: await run.closed, daemon }
      }
    }
  }

  for (const fault of FAULTS) {
    it(fault.title, async () => {
      if (fault.tty) expect(existsSync('/usr/bin/script') || existsSync('/bin/script'), 'script(1) from util-linux gives Vitest a terminal').toBe(true)
      const root = copyFixture(consumer, fault.fixture)
      const before = snapshotLeftovers(consumer)
      const run = startVitest(consumer, root, { env: fault.env, tty: fault.tty })
      let daemon: number | undefined
      try {
        const provoked = await provoke(fault.provoke, run, before, root)
        daemon = provoked.daemon?.pid
        const output = run.output()
        const { report } = fault

        if (report.exit === 'fails') expect(provoked.exit.code, `exit ${JSON.stringify(provoked.exit)}:\n${output}`).not.toBe(0)
        else if (report.exit === 'passes') expect(provoked.exit.code, output).toBe(0)
        else expect(provoked.exit).toEqual(report.exit)
        if (report.exitsWithinMs !== undefined) expect(provoked.exitedAfterMs).toBeLessThan(report.exitsWithinMs)
        for (const text of report.contains ?? []) expect(output).toContain(text)
        for (const pattern of report.matches ?? []) expect(output).toMatch(pattern)
        for (const pattern of report.absent ?? []) expect(output).not.toMatch(pattern)
        if (report.fileAndSignal) expect(linesWith(output, report.fileAndSignal[1], report.fileAndSignal[0]), output).not.toEqual([])
        if (report.daemon === 'survives') {
          expect(await gone(daemon!, 500), 'control: without a pid namespace the daemon should survive').toBe(false)
        } else if (report.daemon === 'dies') {
          expect(await gone(daemon!, 2000), `the daemon (host pid ${daemon}, "sleep 300") is still running 2 s after the run ended`).toBe(true)
        }

        if (fault.leftovers === 'clean') {
          await noLeftovers(fault.log, before)
        } else {
          // what it left must be named: the daemon's sandbox namespace, and the daemon itself
          const left = await leftoverError(before, 200)
          expect(left).toContain(provoked.daemon!.netns)
          expect(left).toContain(`process ${daemon}: sleep 300`)
        }
      } finally {
        if (daemon !== undefined && alive(daemon)) process.kill(daemon, 'SIGKILL')
        if (daemon !== undefined) await gone(daemon, 2000)
        // a case that failed half-way must not leave its Vitest running
        if (run.pid !== undefined && alive(run.pid)) run.kill('SIGKILL')
      }
    })
  }

  /**
   * Negative controls for the leftover check itself, without Vitest: a double-forked
   * `sleep 600` that only the tag, or only its namespace, ties to us must be reported.
   */
  it('the leftover check reports a double-forked `sleep 600` whose command line names nothing of ours, by its tag', async () => {
    const before = snapshotLeftovers(consumer)
    const start = (env: NodeJS.ProcessEnv) =>
      Number(execFileSync('setsid', ['sh', '-c', 'sleep 600 </dev/null >/dev/null 2>&1 & echo $!'], { encoding: 'utf8', env }).trim())
    const tagged = start({ ...process.env, [TAG_ENV]: TAG })
    const untagged = start({ ...process.env, [TAG_ENV]: 'someone-else' })
    try {
      for (const pid of [tagged, untagged]) {
        expect(commandOf(pid)).toBe('sleep 600')
        // re-parented: not a descendant of this process any more
        expect(parentOf(pid)).not.toBe(process.pid)
      }
      const left = await leftoverError(before, 200)
      expect(left).toContain(`process ${tagged}: sleep 600`)
      // the check is about ours only: another run's daemon is not reported
      expect(left).not.toContain(`process ${untagged}:`)
    } finally {
      for (const pid of [tagged, untagged]) if (alive(pid)) process.kill(pid, 'SIGKILL')
      await gone(tagged, 2000)
      await gone(untagged, 2000)
    }
    await noLeftovers('negative control: tagged sleep, killed', before)
  })

  it("the leftover check reports an untagged double-forked `sleep 600` left in a run's sandbox namespace", async () => {
    const before = snapshotLeftovers(consumer)
    const uid = process.geteuid!()
    const gid = process.getegid!()
    // a sandbox like a worker's (user + net namespace, no pid namespace); in it a shell
    // double-forks a sleep with an empty environment, then stays a moment so the run's
    // process tree is seen in its namespaces, as a Vitest run's is
    const launcher = spawn(LAUNCHER, ['--uid-map', `0:${uid}:1`, '--gid-map', `0:${gid}:1`, '--', '/bin/sh', '-c', 'setsid env -i sleep 600 </dev/null >/dev/null 2>&1 & echo "$!"; readlink /proc/self/ns/net; sleep 0.5'], {
      cwd: '/',
      env: { PATH: process.env.PATH },
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    const stop = trackNamespaces(launcher.pid!)
    let out = ''
    launcher.stdout.setEncoding('utf8').on('data', (d: string) => (out += d))
    const code = await new Promise<number | null>((ok) => launcher.once('close', ok))
    stop()
    expect(code, out).toBe(0)
    const [inner, netns] = out.trim().split('\n')
    const pids = hostPidsOf(Number(inner), netns!)
    expect(pids, `host pid of sleep ${inner} in ${netns}`).toHaveLength(1)
    const sleep = pids[0]!
    try {
      expect(commandOf(sleep)).toBe('sleep 600')
      expect(readFileSync(`/proc/${sleep}/environ`, 'utf8')).toBe('')
      expect(parentOf(sleep)).not.toBe(launcher.pid)
      expect(await leftoverError(before, 200)).toContain(`namespace ${netns}, held by:\n    ${sleep} sleep 600`)
    } finally {
      if (alive(sleep)) process.kill(sleep, 'SIGKILL')
      await gone(sleep, 2000)
    }
    await noLeftovers('negative control: sleep in a sandbox, killed', before)
  })
})
