import { beforeAll, inject } from 'vitest'
import { copyFixture, prepareJestConsumer, type JestConsumer } from '../support/consumer.js'
import { defineFaults, type Fault } from '../support/faults.js'
import { startJest } from '../support/jest-run.js'
import { describeSandbox } from '../support/sandbox.js'

// Fault injection through real Jest (see test/support/faults.ts): each case breaks a
// run in one way; the file must be reported once, with how it ended, the rest of the run
// goes on, and nothing of the run is left on the host 2 s later.

const only = (...files: string[]) => ({ E2E_FILES: files.join('|') })

const FAULTS: Fault[] = [
  {
    title: 'SIGKILL of the Jest process mid-run: workers die with it',
    log: 'jest: SIGKILL main',
    fixture: 'jest-faults',
    env: only('started', 'ok'),
    provoke: { do: 'signal main', signal: 'SIGKILL', when: /FAULTS_STARTED/, delayMs: 1500 },
    report: { exit: { code: null, signal: 'SIGKILL' } },
    leftovers: 'clean',
  },
  {
    title: 'SIGINT (Ctrl-C) to the Jest process: it exits, nothing is left',
    log: 'jest: SIGINT main',
    fixture: 'jest-faults',
    env: only('started', 'ok'),
    provoke: { do: 'signal main', signal: 'SIGINT', when: /FAULTS_STARTED/ },
    // the waiting test had 10 s left: exiting well before means SIGINT stopped the run
    report: { exit: 'fails', exitsWithinMs: 5000 },
    leftovers: 'clean',
  },
  {
    title: 'SIGKILL of a worker from outside: its file is reported once, by name and signal, the rest pass',
    log: 'jest: SIGKILL worker',
    fixture: 'jest-faults',
    env: only('victim', 'ok'),
    provoke: { do: 'kill worker', when: /FAULTS_WORKER (\d+) (net:\[\d+\])/ },
    report: { exit: 'fails', fileAndSignal: ['victim.test.js', 'SIGKILL'], once: /was killed by SIGKILL/, matches: [/PASS \S*ok\.test\.js/, /FAIL \S*victim\.test\.js/] },
    leftovers: 'clean',
  },
  {
    title: "SIGKILL of a worker's launcher (the process the runner forked): the file is reported, the rest pass",
    log: 'jest: SIGKILL launcher',
    fixture: 'jest-faults',
    env: only('victim', 'ok'),
    provoke: { do: 'kill launcher', when: /FAULTS_WORKER (\d+) (net:\[\d+\])/ },
    report: { exit: 'fails', fileAndSignal: ['victim.test.js', 'SIGKILL'], matches: [/PASS \S*ok\.test\.js/] },
    leftovers: 'clean',
  },
  {
    title: 'process.exit(3) in a test: the file is reported once with the code (no retries), the rest pass',
    log: 'jest: process.exit',
    fixture: 'jest-faults',
    env: only('exit', 'ok'),
    provoke: { do: 'run' },
    report: { exit: 'fails', once: /exited with code 3 while running \S*exit\.test\.js/, matches: [/PASS \S*ok\.test\.js/], absent: [/retr(y|ies)/i, /    at .*vitest-pool-rootless/] },
    leftovers: 'clean',
  },
  {
    title: 'a segfault: the file is reported with SIGSEGV, the rest pass',
    log: 'jest: SIGSEGV',
    fixture: 'jest-faults',
    env: only('segv', 'ok'),
    provoke: { do: 'run' },
    report: { exit: 'fails', fileAndSignal: ['segv.test.js', 'SIGSEGV'], matches: [/PASS \S*ok\.test\.js/] },
    leftovers: 'clean',
  },
  {
    title: 'a test that hangs past its timeout: reported as timed out, the rest pass',
    log: 'jest: timeout',
    fixture: 'jest-faults',
    env: only('hang', 'ok'),
    provoke: { do: 'run' },
    report: { exit: 'fails', contains: ['Exceeded timeout of 500 ms'], matches: [/FAIL \S*hang\.test\.js/, /PASS \S*ok\.test\.js/] },
    leftovers: 'clean',
  },
  {
    title: "a worker whose sandbox can't be built: each file says which step failed, no file hangs",
    log: 'jest: sandbox step',
    fixture: 'jest-faults',
    env: { ...only('ok', 'hang'), VITEST_POOL_ROOTLESS_LAUNCHER: '{root}/failing-launcher.sh' },
    provoke: { do: 'run' },
    report: {
      exit: 'fails',
      once: /exited with code 240 while running \S*ok\.test\.js before the test started: the sandbox's "tmpfs" step failed/,
      contains: ["vitest-pool-rootless: tmpfs: can't mount a tmpfs on /nonexistent-vpr-target"],
      matches: [/Test Suites:\s+2 failed, 2 total/],
    },
    leftovers: 'clean',
  },
  {
    title: 'control: without a pid namespace, a daemon a test double-forks survives, and the leftover check reports it',
    log: 'jest: daemon control',
    fixture: 'jest-faults',
    env: { ...only('daemon'), E2E_PID_NAMESPACE: 'off' },
    provoke: { do: 'find daemon', when: /FAULTS_DAEMON (\d+) (net:\[\d+\])/ },
    report: { exit: 'passes', daemon: 'survives' },
    leftovers: 'caught',
  },
  {
    title: 'a daemon a test double-forks does not outlive the run',
    log: 'jest: daemon',
    fixture: 'jest-faults',
    env: only('daemon'),
    provoke: { do: 'find daemon', when: /FAULTS_DAEMON (\d+) (net:\[\d+\])/ },
    report: { exit: 'passes', daemon: 'dies' },
    leftovers: 'clean',
  },
]

describeSandbox('fault injection: the Jest runner on Jest 30', () => {
  let consumer: JestConsumer
  beforeAll(() => {
    consumer = prepareJestConsumer(30, inject('tarball'))
  }, 300_000)

  defineFaults(FAULTS, {
    scope: () => consumer,
    copy: (fixture) => copyFixture(consumer, fixture),
    start: (root, options) => startJest(consumer, root, { env: options.env }),
  })
})
