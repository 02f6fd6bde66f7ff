import { readFileSync, writeFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, expect, it } from 'vitest'
import { diffLeftovers, expectNoLeftovers, hostPidsOf, releaseNamespaces, snapshotLeftovers, type LeftoverReport, type LeftoverScope, type Leftovers } from './leftovers.js'
import type { Exit, LiveRun } from './vitest-run.js'

/**
 * Fault injection through a real runner (Vitest or Jest): each case breaks a run in one
 * way and checks that the file is reported as it should be, and that no process, mount
 * or namespace of the run is left on the host 2 s later. Each runner's suite is one table
 * of cases (`Fault[]`); `defineFaults` turns each into a test.
 */

/** How a case breaks the run. Those with `when` act once the runner printed it. */
export type Provoke =
  /** Nothing from outside: the fixture's tests break the run themselves. */
  | { do: 'run' }
  /** A signal to the runner's main process, `delayMs` after `when`. */
  | { do: 'signal main'; signal: 'SIGKILL' | 'SIGINT'; when: RegExp; delayMs?: number }
  /** SIGKILL to the worker whose pid and net namespace `when` captures (as seen inside). */
  | { do: 'kill worker'; when: RegExp }
  /** SIGKILL to that worker's launcher, the process the runner forked (worker -> init -> launcher). */
  | { do: 'kill launcher'; when: RegExp }
  /**
   * The test double-forks `sleep 300` and prints its pid and net namespace (`when`);
   * the host finds its host pid, then lets the test finish (writes `daemon-seen`).
   */
  | { do: 'find daemon'; when: RegExp }

/** What the runner must report. */
export interface Report {
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
  /** Exactly this many lines match (one failure, one error block). */
  once?: RegExp
  /** 'find daemon': the daemon is gone 2 s after the run ('dies'), or still runs 500 ms after ('survives'). */
  daemon?: 'dies' | 'survives'
}

export interface Fault {
  title: string
  /** Names the case in the `[faults] <log>: clean after N ms` line. */
  log: string
  fixture: string
  /** Added to the runner's environment; `{root}` stands for the copied fixture's root. */
  env?: Record<string, string>
  /** The runner runs on a pseudo-terminal; needs script(1). */
  tty?: boolean
  provoke: Provoke
  report: Report
  /**
   * 'clean': nothing of the run is left 2 s after it (the promise to users).
   * 'caught': a control that leaves something on purpose; the check must report it.
   * Either way the snapshot is taken right before the runner starts.
   */
  leftovers: 'clean' | 'caught'
}

/** How a suite starts its runner on a copied fixture. */
export interface FaultRunner {
  /** Where the runner's processes are found (its consumer project). */
  scope(): LeftoverScope
  /** Copies the fixture and returns its root. */
  copy(fixture: string): string
  start(root: string, options: { env?: Record<string, string>; tty?: boolean }): LiveRun
}

/** Lines of `output` that mention every one of `words`. */
export const linesWith = (output: string, ...words: string[]) => output.split('\n').filter((l) => words.every((w) => l.includes(w)))

export const alive = (pid: number) => {
  try {
    return !/^\d+ \(.*\) [ZX] /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return false
  }
}

export async function gone(pid: number, withinMs: number): Promise<boolean> {
  const deadline = Date.now() + withinMs
  while (alive(pid) && Date.now() < deadline) await new Promise((ok) => setTimeout(ok, 50))
  return !alive(pid)
}

export const parentOf = (pid: number) => Number(/^PPid:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1])

export const commandOf = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim()

/** What provoking a case gave: the exit to judge and, for 'find daemon', the daemon. */
interface Provoked {
  exit: Exit
  /** Ms from the signal to the exit ('signal main'). */
  exitedAfterMs?: number
  daemon?: { pid: number; netns: string }
}

/** Records how fast a case came clean, for the log. */
export async function noLeftovers(scope: LeftoverScope, name: string, before: Leftovers): Promise<LeftoverReport> {
  const report = await expectNoLeftovers(before, scope)
  console.log(`[faults] ${name}: clean after ${report.cleanAfterMs} ms; at first look ${JSON.stringify(report.atFirstLook)}`)
  return report
}

/** The message `expectNoLeftovers` fails with; fails itself when the check passes. */
export async function leftoverError(scope: LeftoverScope, before: Leftovers, withinMs: number): Promise<string> {
  const error = await expectNoLeftovers(before, scope, withinMs).then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(error, 'the leftover check found nothing').toBeInstanceOf(Error)
  return (error as Error).message
}

/** Turns each case of `faults` into a test run through `runner`. */
export function defineFaults(faults: readonly Fault[], runner: FaultRunner): void {
  // a run no check followed must not keep its namespaces held open
  afterEach(() => releaseNamespaces())

  /**
   * Proves the leftover check sees a live run: our processes. (Its namespaces are not
   * counted here: a new namespace can get the inode number of one that was in the
   * snapshot and is gone since, which the kernel hands out again; the negative controls
   * prove that namespaces are found.)
   */
  function expectVisibleWhileRunning(before: Leftovers): void {
    const during = diffLeftovers(before, snapshotLeftovers(runner.scope()))
    expect(during.counts.processes, `no worker process of the run was found:\n${during.text}`).toBeGreaterThan(0)
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
        console.log(`[faults] ${how.signal} main: the runner exited with ${JSON.stringify(exit)} after ${exitedAfterMs} ms`)
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
          // worker -> init (pid 1 inside) -> the launcher the runner knows
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

  for (const fault of faults) {
    it(fault.title, async () => {
      if (fault.tty) expect(existsSync('/usr/bin/script') || existsSync('/bin/script'), 'script(1) from util-linux gives the runner a terminal').toBe(true)
      const root = runner.copy(fault.fixture)
      const before = snapshotLeftovers(runner.scope())
      const env = fault.env && Object.fromEntries(Object.entries(fault.env).map(([name, value]) => [name, value.replaceAll('{root}', root)]))
      const run = runner.start(root, { env, tty: fault.tty })
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
        if (report.once) expect(output.split('\n').filter((line) => report.once!.test(line)), output).toHaveLength(1)
        if (report.daemon === 'survives') {
          expect(await gone(daemon!, 500), 'control: without a pid namespace the daemon should survive').toBe(false)
        } else if (report.daemon === 'dies') {
          expect(await gone(daemon!, 2000), `the daemon (host pid ${daemon}, "sleep 300") is still running 2 s after the run ended`).toBe(true)
        }

        if (fault.leftovers === 'clean') {
          await noLeftovers(runner.scope(), fault.log, before)
        } else {
          // what it left must be named: the daemon's sandbox namespace, and the daemon itself
          const left = await leftoverError(runner.scope(), before, 200)
          expect(left).toContain(provoked.daemon!.netns)
          expect(left).toContain(`process ${daemon}: sleep 300`)
        }
      } finally {
        if (daemon !== undefined && alive(daemon)) process.kill(daemon, 'SIGKILL')
        if (daemon !== undefined) await gone(daemon, 2000)
        // a case that failed half-way must not leave its runner running
        if (run.pid !== undefined && alive(run.pid)) run.kill('SIGKILL')
      }
    })
  }
}
