import { mkdirSync, mkdtempSync, readdirSync, realpathSync, rmSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeAll, describe, expect, inject, it } from 'vitest'
import { driveDebugger } from '../support/cdp.js'
import { copyFixture, prepareConsumer, prepareJestConsumer, type Consumer, type JestConsumer } from '../support/consumer.js'
import { runJest, startJest } from '../support/jest-run.js'
import { releaseNamespaces } from '../support/leftovers.js'
import { describeSandbox } from '../support/sandbox.js'
import { runVitest, startVitest } from '../support/vitest-run.js'

// What real suites do on purpose, end to end on Vitest 5 and Jest 30: a debugger on the
// host attached to the sandboxed worker (its inspector published at the address the user
// gave), `permissions: 'enforce'` (uid 0 that sees permission bits), and a TMPDIR other
// than /tmp (both stay private). CI runs this as an unprivileged user too.

/**
 * TMPDIR elsewhere: $HOME/t (a CI's own), and inside /tmp (Debian's libpam-tmpdir). `ours`:
 * the test made it, and takes it away after (a $HOME/t that was there is the user's).
 */
const TMPDIRS: Array<[string, () => { tmp: string; ours: boolean }]> = [
  ['$HOME/t', () => ({ ours: mkdirSync(join(homedir(), 't'), { recursive: true }) !== undefined, tmp: realpathSync(join(homedir(), 't')) })],
  ['/tmp/user/<id>-like, inside /tmp', () => ({ tmp: mkdtempSync(join(realpathSync('/tmp'), 'vpr-user-')), ours: true })],
]

/** Files of this run's marker left in the host's /tmp or `tmp` (none may be: all stayed private). */
function markersLeft(marker: string, tmp: string): string[] {
  return ['/tmp', tmp].flatMap((dir) => readdirSync(dir).filter((f) => f.startsWith(marker)).map((f) => join(dir, f)))
}

/** A port nothing listens on, and the one after it free too (a moment ago). */
async function freePorts(): Promise<number> {
  for (;;) {
    const port = await listenOnce(0)
    if (port < 65535 && (await listenOnce(port + 1).catch(() => 0))) return port
  }
}

function listenOnce(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject).listen({ host: '127.0.0.1', port }, () => {
      const { port: bound } = server.address() as { port: number }
      server.close(() => resolve(bound))
    })
  })
}

describeSandbox('a debugger, permissions and TMPDIR on Vitest 5', () => {
  let consumer: Consumer
  beforeAll(() => {
    consumer = prepareConsumer(5, inject('tarball'))
  }, 300_000)
  afterEach(() => releaseNamespaces())

  it('attaches a debugger on the host to each sandboxed worker under --inspect-brk, pauses, and the run passes', async () => {
    const root = copyFixture(consumer, 'debugger')
    const port = await freePorts()
    const run = startVitest(consumer, root, { args: [`--inspect-brk=127.0.0.1:${port}`, '--no-file-parallelism'], timeoutMs: 120_000 })
    const seen = await driveDebugger('127.0.0.1', port, run.closed)
    const exit = await run.closed
    expect(exit.code, run.output()).toBe(0)
    expect(run.output()).toMatch(/Test Files\s+2 passed \(2\)/)
    // one worker per file (isolate: true), each attached
    expect(seen.attached.length).toBeGreaterThanOrEqual(2)
    // each file's `debugger` statement (line 6) stopped its worker -- besides Vitest's own
    // breakpoint on the first line of the file a worker starts with
    expect(seen.pauses.filter((p) => p.line === 5 && /[ab]\.test\.ts/.test(p.url)), JSON.stringify(seen)).toHaveLength(2)
  })

  it('refuses an --inspect-brk port something on the host listens on, with one error and no worker', async () => {
    const root = copyFixture(consumer, 'debugger')
    const server: Server = createServer()
    await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve))
    const { port } = server.address() as { port: number }
    try {
      const run = await runVitest(consumer, root, { args: [`--inspect-brk=127.0.0.1:${port}`, '--no-file-parallelism'] })
      expect(run.code).not.toBe(0)
      expect(run.output).toContain(`option \`--inspect-brk\` expects an address the host can listen on, where the sandboxed worker's inspector is published; something on the host already listens on 127.0.0.1:${port}`)
      expect(run.output).not.toMatch(/✓ a\.test\.ts/)
    } finally {
      server.close()
    }
  })

  it.each([
    ['enforce', 'EACCES on a mode-000 file, yet chown to 1000 and port 80'],
    ['bypass', 'a mode-000 file read as root reads it (the default)'],
  ])("permissions: '%s': uid 0 with %s", async (permissions) => {
    const root = copyFixture(consumer, 'permissions')
    const run = await runVitest(consumer, root, { env: { E2E_PERMISSIONS: permissions } })
    expect(run.output).toMatch(/Tests\s+5 passed \(5\)/)
    expect(run.code, run.output).toBe(0)
  })

  it.each(TMPDIRS)('keeps /tmp and TMPDIR both private with TMPDIR=%s', async (_, makeTmp) => {
    const { tmp, ours } = makeTmp()
    const root = copyFixture(consumer, 'tmpdir')
    const marker = `vpr-tmpdir-${process.pid}-${Date.now()}`
    try {
      const run = await runVitest(consumer, root, { env: { TMPDIR: tmp, E2E_TMPDIR: tmp, E2E_MARKER: marker } })
      expect(run.output).toMatch(/Test Files\s+2 passed \(2\)/)
      expect(run.code, run.output).toBe(0)
      expect(markersLeft(marker, tmp)).toEqual([])
    } finally {
      if (ours) rmSync(tmp, { recursive: true, force: true })
    }
  })
})

describeSandbox('a debugger, permissions and TMPDIR on Jest 30', () => {
  let consumer: JestConsumer
  beforeAll(() => {
    consumer = prepareJestConsumer(30, inject('tarball'))
  }, 300_000)
  afterEach(() => releaseNamespaces())

  it('stops in the test code with Jest\'s recipe, node --inspect-brk jest -i: the worker\'s inspector at the next port', async () => {
    const root = copyFixture(consumer, 'jest-debugger')
    const port = await freePorts()
    const run = startJest(consumer, root, { nodeArgs: [`--inspect-brk=127.0.0.1:${port}`], args: ['-i'], timeoutMs: 120_000 })
    // the Jest process waits for a debugger when the run ends too: let go once it reported
    const reported = run.waitFor(/Test Suites:.*total/, { ms: 110_000 })
    const [jest, worker] = await Promise.all([driveDebugger('127.0.0.1', port, reported), driveDebugger('127.0.0.1', port + 1, reported)])
    const exit = await run.closed
    expect(exit.code, run.output()).toBe(0)
    expect(run.output()).toMatch(/Tests:\s+2 passed, 2 total/)
    expect(run.output()).toContain(`an inspector of its own at 127.0.0.1:${port + 1}, waiting for a debugger`)
    expect(jest.attached).toHaveLength(1)
    expect(worker.attached).toHaveLength(1)
    // both files' `debugger` statements, in the sandboxed worker: not only in the Jest process
    expect(worker.pauses.filter((p) => p.line === 3 && /\/[ab]\.test\.js$/.test(p.url)), JSON.stringify({ jest, worker })).toHaveLength(2)
    expect(jest.pauses.every((p) => !/\.test\.js$/.test(p.url))).toBe(true)
  })

  it.each(['enforce', 'bypass'])("permissions: '%s' reaches the worker from the runner's options", async (permissions) => {
    const root = copyFixture(consumer, 'jest-permissions')
    const run = await runJest(consumer, root, { env: { E2E_PERMISSIONS: permissions } })
    expect(run.code, run.output).toBe(0)
    expect(run.output).toMatch(/Tests:\s+5 passed, 5 total/)
  })

  it.each(TMPDIRS)('keeps /tmp and TMPDIR both private with TMPDIR=%s, in one worker reset between files (-i)', async (_, makeTmp) => {
    const { tmp, ours } = makeTmp()
    const root = copyFixture(consumer, 'jest-tmpdir')
    const marker = `vpr-tmpdir-${process.pid}-${Date.now()}`
    try {
      const run = await runJest(consumer, root, { args: ['-i'], env: { TMPDIR: tmp, E2E_TMPDIR: tmp, E2E_MARKER: marker } })
      expect(run.code, run.output).toBe(0)
      expect(run.output).toMatch(/Tests:\s+2 passed, 2 total/)
      expect(markersLeft(marker, tmp)).toEqual([])
    } finally {
      if (ours) rmSync(tmp, { recursive: true, force: true })
    }
  })

  it('refuses a permissions value other than the two words, naming the option', async () => {
    const root = copyFixture(consumer, 'jest-permissions')
    const run = await runJest(consumer, root, { env: { E2E_PERMISSIONS: 'strict' } })
    expect(run.code).not.toBe(0)
    expect(run.output).toContain('option `permissions` expects one of "bypass", "enforce", got "strict"')
  })
})

describe('the CDP client itself', () => {
  it('sees no target and returns when nothing listens', async () => {
    const port = await freePorts()
    const seen = await driveDebugger('127.0.0.1', port, new Promise((resolve) => setTimeout(resolve, 300)))
    expect(seen).toEqual({ attached: [], pauses: [] })
  })
})
