import { execFileSync, spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { beforeAll, expect, inject, it } from 'vitest'
import { copyFixture, prepareConsumer, type Consumer } from '../support/consumer.js'
import { alive, commandOf, defineFaults, gone, leftoverError, noLeftovers, parentOf, type Fault } from '../support/faults.js'
import { hostPidsOf, snapshotLeftovers, TAG, TAG_ENV, trackNamespaces } from '../support/leftovers.js'
import { describeSandbox, LAUNCHER } from '../support/sandbox.js'
import { startVitest } from '../support/vitest-run.js'

// Fault injection through real Vitest (see test/support/faults.ts): each case breaks a
// run in one way; the file must be reported as it should be, and nothing of the run may
// be left on the host 2 s later.

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

// the whole table on Vitest 3.2 too, whose pool is another adapter (src/pool/v3.ts)
describeSandbox('fault injection: rootless() on Vitest 3', () => {
  let consumer: Consumer
  beforeAll(() => {
    consumer = prepareConsumer(3, inject('tarball'))
  }, 300_000)

  defineFaults(FAULTS, {
    scope: () => consumer,
    copy: (fixture) => copyFixture(consumer, fixture),
    start: (root, options) => startVitest(consumer, root, options),
  })
})

describeSandbox('fault injection: rootless() on Vitest 4', () => {
  let consumer: Consumer
  beforeAll(() => {
    consumer = prepareConsumer(4, inject('tarball'))
  }, 300_000)

  defineFaults(FAULTS, {
    scope: () => consumer,
    copy: (fixture) => copyFixture(consumer, fixture),
    start: (root, options) => startVitest(consumer, root, options),
  })

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
      const left = await leftoverError(consumer, before, 200)
      expect(left).toContain(`process ${tagged}: sleep 600`)
      // the check is about ours only: another run's daemon is not reported
      expect(left).not.toContain(`process ${untagged}:`)
    } finally {
      for (const pid of [tagged, untagged]) if (alive(pid)) process.kill(pid, 'SIGKILL')
      await gone(tagged, 2000)
      await gone(untagged, 2000)
    }
    await noLeftovers(consumer, 'negative control: tagged sleep, killed', before)
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
      expect(await leftoverError(consumer, before, 200)).toContain(`namespace ${netns}, held by:\n    ${sleep} sleep 600`)
    } finally {
      if (alive(sleep)) process.kill(sleep, 'SIGKILL')
      await gone(sleep, 2000)
    }
    await noLeftovers(consumer, 'negative control: sleep in a sandbox, killed', before)
  })
})
