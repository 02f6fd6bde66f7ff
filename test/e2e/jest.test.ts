import { spawnSync } from 'node:child_process'
import { appendFileSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest'
import { NOTHING_RAN } from '../../src/jest/runner.js'
import { copyFixture, prepareJestConsumer, type JestConsumer } from '../support/consumer.js'
import { runJest, startJest } from '../support/jest-run.js'
import { expectNoLeftovers, releaseNamespaces, snapshotLeftovers } from '../support/leftovers.js'
import { describeSandbox } from '../support/sandbox.js'
import { describeWithServices, networkFixtureEnv } from '../support/services.js'

// The Jest runner end to end: the packed tarball installed next to real Jest (30, and
// 29.7 through the one-line runner file), fixture projects run as the user running the
// suite (CI runs it as an unprivileged user too).

for (const major of [30, 29] as const) {
  describeSandbox(`the Jest runner on Jest ${major}`, () => {
    let consumer: JestConsumer
    // a server of the host's, on its loopback: no sandbox may reach it
    let host: Server
    let hostPort = 0
    beforeAll(async () => {
      consumer = prepareJestConsumer(major, inject('tarball'))
      host = createServer((socket) => socket.end('host'))
      await new Promise<void>((resolve) => host.listen(0, '127.0.0.1', resolve))
      hostPort = (host.address() as { port: number }).port
    }, 300_000)
    afterAll(() => new Promise<void>((resolve) => host.close(() => resolve())))
    afterEach(() => releaseNamespaces())

    it.each([
      ['2 workers', ['--maxWorkers=2'], '2'],
      ['--runInBand (one process, reset between files)', ['-i'], '1'],
    ])('gives every file uid 0, chown, port 80, hosts, hostname, a private /tmp and network; %s', async (_, args, workers) => {
      const root = copyFixture(consumer, 'jest-sandboxed')
      const before = snapshotLeftovers(consumer)
      const run = await runJest(consumer, root, {
        args,
        env: { E2E_HOST_UID: String(process.geteuid!()), E2E_HOST_PORT: String(hostPort), E2E_MAX_WORKERS: workers },
      })
      expect(run.code, run.output).toBe(0)
      expect(run.output).toMatch(/Tests:\s+21 passed, 21 total/)
      expect(run.output).toMatch(/Test Suites:\s+3 passed, 3 total/)
      await expectNoLeftovers(before, consumer)
    })

    describeWithServices('network', () => {
      const env = networkFixtureEnv()

      it.each([
        ['2 workers', ['--maxWorkers=2']],
        ['one worker, reset between files (-i)', ['-i']],
      ])('reaches globalSetup servers with no option, PostgreSQL and Redis through hostPorts, nothing else; %s', async (_, args) => {
        const root = copyFixture(consumer, 'jest-network')
        const before = snapshotLeftovers(consumer)
        const run = await runJest(consumer, root, { args, env: env() })
        expect(run.code, run.output).toBe(0)
        expect(run.output).toMatch(/Test Suites:\s+7 passed, 7 total/)
        // every worker looked up unknown names: the run shows one notice
        expect(run.output.match(/can't be resolved in the sandbox \(ENOTFOUND\)/g)).toHaveLength(1)
        if (args[0] === '-i') {
          // the leaking files ran one after another on the one worker, each in a fresh network
          expect([...run.output.matchAll(/leak-check: (\d) earlier/g)].map((m) => m[1]).sort()).toEqual(['0', '1', '2'])
        }
        await expectNoLeftovers(before, consumer)
      })
    })

    it("lets 10 files bind port 3000 at the same time, where Jest's own runner collides", async () => {
      const root = copyFixture(consumer, 'jest-same-port')
      const control = await runJest(consumer, root, { env: { E2E_RUNNER: 'default' } })
      expect(control.output).toContain('EADDRINUSE')
      expect(control.code).not.toBe(0)
      const before = snapshotLeftovers(consumer)
      const run = await runJest(consumer, root)
      expect(run.code, run.output).toBe(0)
      expect(run.output).toMatch(/Test Suites:\s+10 passed, 10 total/)
      await expectNoLeftovers(before, consumer)
    })

    it('snapshots: written into the project, checked under --ci, updated with -u, obsolete ones found and removed', async () => {
      const root = copyFixture(consumer, 'jest-features')
      const snap = join(root, '__snapshots__', 'snapshot.test.js.snap')
      // --ci=false where Jest may write snapshots: CI=true, as the e2e runs have it, means --ci
      const jest = (args: string[], env: Record<string, string> = {}) => runJest(consumer, root, { args: ['snapshot', ...(args.includes('--ci') ? args : ['--ci=false', ...args])], env })
      const written = await jest([])
      expect(written.code, written.output).toBe(0)
      expect(written.output).toMatch(/Snapshots:\s+1 written, 1 total/)
      // written by uid 0 in the sandbox: the user's file on the host
      expect(readFileSync(snap, 'utf8')).toContain('"value": "one"')
      expect(statSync(snap).uid).toBe(process.geteuid!())
      const ci = await jest(['--ci'])
      expect(ci.code, ci.output).toBe(0)
      expect(ci.output).toMatch(/Snapshots:\s+1 passed, 1 total/)
      const changed = await jest(['--ci'], { E2E_SNAP: 'two' })
      expect(changed.output).toMatch(/Snapshots:\s+1 failed, 1 total/)
      expect(changed.code).toBe(1)
      const updated = await jest(['-u'], { E2E_SNAP: 'two' })
      expect(updated.output).toMatch(/Snapshots:\s+1 updated, 1 total/)
      expect(readFileSync(snap, 'utf8')).toContain('"value": "two"')
      await jest([], { E2E_SNAP: 'two', E2E_EXTRA_SNAPSHOT: '1' })
      const obsolete = await jest(['--ci'], { E2E_SNAP: 'two' })
      expect(obsolete.output).toMatch(/1 snapshot obsolete/)
      const removed = await jest(['-u'], { E2E_SNAP: 'two' })
      expect(removed.output).toMatch(/Snapshots:\s+1 removed, 1 passed, 1 total/)
      expect(readFileSync(snap, 'utf8')).not.toContain('has one more snapshot')
    })

    it.each(['babel', 'v8'])('collects %s coverage in the sandboxes, and Jest merges it', async (provider) => {
      const root = copyFixture(consumer, 'jest-features')
      const run = await runJest(consumer, root, { args: ['sum-', '--maxWorkers=2', '--coverage', `--coverageProvider=${provider}`, '--collectCoverageFrom=sum.js', '--coverageReporters=text'] })
      expect(run.code, run.output).toBe(0)
      // each file covers one branch: only their merge is whole
      expect(run.output).toMatch(/sum\.js\s*\|\s*100\s*\|\s*100\s*\|\s*100\s*\|\s*100/)
    })

    it('runs jsdom, babel-jest, ts-jest, jest.mock, fake timers and test.concurrent; console output, reporters and --json reach Jest', async () => {
      const root = copyFixture(consumer, 'jest-features')
      const run = await runJest(consumer, root, { args: ['--ci=false', '--maxWorkers=2', '--json', '--outputFile=results.json'] })
      expect(run.code, run.output).toBe(0)
      for (const file of ['dom.test.js', 'typed.test.ts', 'mocks.test.js', 'sum-positive.test.js', 'snapshot.test.js']) expect(run.output).toMatch(new RegExp(`PASS \\S*${file.replace('.', '\\.')}`))
      expect(run.output).toContain('hello from the sandbox')
      const results = JSON.parse(readFileSync(join(root, 'results.json'), 'utf8')) as { numPassedTests: number; numFailedTests: number; numTotalTestSuites: number }
      expect(results).toMatchObject({ numFailedTests: 0, numPassedTests: 11, numTotalTestSuites: 6 })
      expect(JSON.parse(readFileSync(join(root, 'reported.json'), 'utf8'))).toEqual({ passed: 11, files: 6 })
    })

    it('-t runs only the tests it names', async () => {
      const root = copyFixture(consumer, 'jest-features')
      const run = await runJest(consumer, root, { args: ['-t', 'adds two numbers'] })
      expect(run.code, run.output).toBe(0)
      expect(run.output).toMatch(/Tests:\s+10 skipped, 1 passed, 11 total/)
    })

    it('--shard splits the files between runs', async () => {
      const root = copyFixture(consumer, 'jest-features')
      const files = await Promise.all(
        ['1/2', '2/2'].map(async (shard, i) => {
          const run = await runJest(consumer, root, { args: ['--ci=false', `--shard=${shard}`, '--json', `--outputFile=shard${i}.json`] })
          expect(run.code, run.output).toBe(0)
          const { testResults } = JSON.parse(readFileSync(join(root, `shard${i}.json`), 'utf8')) as { testResults: Array<{ name: string }> }
          return testResults.map((r) => r.name)
        }),
      )
      expect(files[0]!.length).toBeGreaterThan(0)
      expect(files[1]!.length).toBeGreaterThan(0)
      expect(files[0]!.filter((f) => files[1]!.includes(f))).toEqual([])
      expect(files[0]!.length + files[1]!.length).toBe(6)
    })

    it('--bail stops at the first failed file; failures come coloured when Jest\'s output takes colours', async () => {
      const root = copyFixture(consumer, 'jest-features')
      const bail = await runJest(consumer, root, { args: ['-i', '--bail', 'failing', 'sum-'], env: { E2E_FAILING: '1' } })
      expect(bail.code).toBe(1)
      // stopped after the first file: the other two never ran
      expect(bail.output).toMatch(/Test Suites:\s+1 failed, 1 of 3 total/)
      expect(bail.output).toContain('expect(received).toBe(expected)')
      const coloured = await runJest(consumer, root, { args: ['failing'], env: { E2E_FAILING: '1', FORCE_COLOR: '1', NO_COLOR: '' } })
      expect(coloured.code).toBe(1)
      // the expected value in green, as Jest colours a failed expectation
      expect(coloured.output).toContain('\u001b[32m3\u001b[39m')
    })

    it('runs native ES module tests under --experimental-vm-modules', async () => {
      const root = copyFixture(consumer, 'jest-features')
      const run = await runJest(consumer, root, { nodeArgs: ['--experimental-vm-modules'], args: ['esm'], env: { E2E_ESM: '1' } })
      expect(run.code, run.output).toBe(0)
      expect(run.output).toMatch(/PASS \S*esm\.test\.mjs/)
    })

    it("keeps Jest's transform cache under the temp dir shared by the sandboxes, and there for the next run", async () => {
      const root = copyFixture(consumer, 'jest-features')
      const cache = join(tmpdir(), `vpr-jest-cache-${major}-${process.pid}`)
      rmSync(cache, { recursive: true, force: true })
      try {
        const list = () => {
          const files = new Map<string, number>()
          const walk = (dir: string) => {
            for (const entry of readdirSync(dir, { withFileTypes: true })) {
              const path = join(dir, entry.name)
              if (entry.isDirectory()) walk(path)
              else if (dir.includes('jest-transform-cache')) files.set(path, statSync(path).mtimeMs)
            }
          }
          walk(cache)
          return files
        }
        const args = ['--maxWorkers=2', `--cacheDirectory=${cache}`, 'sum-', 'typed', 'mocks']
        const first = await runJest(consumer, root, { args })
        expect(first.code, first.output).toBe(0)
        const cached = list()
        // the sandboxes' transforms landed in the host's cache, as the user's files
        expect(cached.size).toBeGreaterThan(0)
        for (const file of cached.keys()) expect(statSync(file).uid).toBe(process.geteuid!())
        const second = await runJest(consumer, root, { args })
        expect(second.code, second.output).toBe(0)
        // nothing transformed again: the same files, untouched
        expect(list()).toEqual(cached)
      } finally {
        rmSync(cache, { recursive: true, force: true })
      }
    })

    it('re-runs a changed file in watch mode, in a fresh sandbox', async () => {
      const root = copyFixture(consumer, 'jest-sandboxed')
      const before = snapshotLeftovers(consumer)
      const env = { E2E_HOST_UID: String(process.geteuid!()), E2E_HOST_PORT: String(hostPort), E2E_MAX_WORKERS: '1' }
      const run = startJest(consumer, root, { args: ['--watchAll', '-i', 'a.test'], env, watch: true })
      try {
        await run.waitFor(/Tests:\s+7 passed, 7 total/, { ms: 60_000 })
        const since = run.output().length
        // the file left a marker in its /tmp and a server on port 3000: the re-run must find neither
        appendFileSync(join(root, 'a.test.js'), '\n// changed\n')
        await run.waitFor(/Tests:\s+7 passed, 7 total/, { ms: 60_000, since })
        expect(run.output(since)).not.toMatch(/failed/)
      } finally {
        run.kill('SIGTERM')
        await run.closed
      }
      await expectNoLeftovers(before, consumer)
    })

    it.each([
      [{ hostname: 'not/a/hostname' }, 'option `hostname` expects 1 to 64 letters'],
      [{ tmpfs: ['/usr'] }, "option `tmpfs` expects directories that don't hide /usr"],
      [{ hostport: [5432] }, '`hostport` is not an option; did you mean `hostPorts`? The options are hosts, hostsFile'],
    ])('refuses bad runner options %j before any file runs, in the words rootless() uses', async (options, text) => {
      const root = copyFixture(consumer, 'jest-options')
      const run = await runJest(consumer, root, { env: { E2E_OPTIONS: JSON.stringify(options) } })
      expect(run.code, run.output).toBe(1)
      expect(run.output.split(text).length - 1, run.output).toBe(1)
      expect(run.output).not.toMatch(/PASS|FAIL|    at /)
      // Jest prints its summary of no files before a runner's error: the error says none ran
      expect(run.output.split(NOTHING_RAN).length - 1, run.output).toBe(1)
      expect(run.output.indexOf(NOTHING_RAN)).toBeGreaterThan(run.output.indexOf(text))
    })

    describe("the README's Jest configs, as written", () => {
      const blocks = readmeJsBlocks()
      const first = blocks.find((b) => b.startsWith('// jest.config.js'))!
      const runnerFile = blocks.find((b) => b.startsWith('// rootless-runner.cjs'))!
      const pointsAtRunnerFile = blocks.find((b) => b.startsWith('// jest.config.js') && b.includes("'<rootDir>/rootless-runner.cjs'"))!
      const arrayForm = blocks.find((b) => b.startsWith('// jest.config.js') && b.includes("runner: ['vitest-pool-rootless/jest'"))!

      /** The jest-options fixture with `files` written over its config. */
      async function runWith(files: Record<string, string>) {
        const root = copyFixture(consumer, 'jest-options')
        for (const [name, text] of Object.entries(files)) writeFileSync(join(root, name), text)
        return runJest(consumer, root)
      }

      it('the first snippet (the defaults) runs on every supported Jest', async () => {
        expect(first).toMatch(/every Jest 30/)
        const run = await runWith({ 'jest.config.js': first })
        expect(run.code, run.output).toBe(0)
        expect(run.output).toMatch(/Tests:\s+3 passed, 3 total/)
      })

      it('options through the runner file run on every supported Jest', async () => {
        expect(runnerFile).toMatch(/every supported Jest/)
        const run = await runWith({ 'jest.config.js': pointsAtRunnerFile, 'rootless-runner.cjs': runnerFile })
        expect(run.code, run.output).toBe(0)
        expect(run.output).toMatch(/Tests:\s+3 passed, 3 total/)
      })

      it(`the array form is marked with the Jest it needs, and ${major === 30 ? 'runs on' : 'is refused by'} Jest ${major}`, async () => {
        expect(arrayForm).toContain('Jest >= 30.4.1 only')
        const run = await runWith({ 'jest.config.js': arrayForm })
        if (major === 30) {
          expect(run.code, run.output).toBe(0)
          expect(run.output).toMatch(/Tests:\s+3 passed, 3 total/)
        } else {
          expect(run.code, run.output).not.toBe(0)
          expect(run.output).toContain('Validation Error')
        }
      })
    })

    /** Runs the fixture's Jest where user namespaces are switched off (a user namespace of its own, max 0). */
    function withoutUserNamespaces(root: string, env: Record<string, string> = {}) {
      // uid 0 in that namespace: Jest's default cache dir would be /tmp/jest_0, real root's
      const run = spawnSync('unshare', ['-r', 'sh', '-c', 'echo 0 > /proc/sys/user/max_user_namespaces && exec "$NODE" "$JEST" --cacheDirectory "$CACHE"'], {
        cwd: root,
        encoding: 'utf8',
        env: { ...process.env, NODE: consumer.node, JEST: consumer.jest, CACHE: join(root, '.jest-cache'), NO_COLOR: '1', FORCE_COLOR: '0', CI: 'true', ...env },
        timeout: 120_000,
      })
      return { status: run.status, output: `${run.stdout}${run.stderr}` }
    }

    it('on a machine without user namespaces: one error with the cause and the fix, before any file runs', async () => {
      const root = copyFixture(consumer, 'jest-options')
      const run = withoutUserNamespaces(root)
      const output = run.output
      expect(run.status, output).toBe(1)
      expect(output.match(/can't build the test sandbox/g)?.length, output).toBe(1)
      expect(output).toContain('fix: sudo sysctl -w user.max_user_namespaces=15000')
      expect(output).not.toMatch(/PASS|FAIL|    at |jest-worker|Call retries/)
    })

    it("fallback: 'unsandboxed' runs the files with Jest's own runner where user namespaces are off, and says why once", async () => {
      const root = copyFixture(consumer, 'jest-options')
      const options = JSON.stringify({ fallback: 'unsandboxed' })
      const healthy = await runJest(consumer, root, { env: { E2E_OPTIONS: options, E2E_EXPECT_SANDBOXED: '1' } })
      expect(healthy.code, healthy.output).toBe(0)
      expect(healthy.output).toMatch(/Tests:\s+3 passed, 3 total/)
      const run = withoutUserNamespaces(root, { E2E_OPTIONS: options, E2E_EXPECT_SANDBOXED: '0' })
      expect(run.status, run.output).toBe(0)
      expect(run.output).toMatch(/Tests:\s+1 skipped, 2 passed, 3 total/)
      expect(run.output.match(/running the tests unsandboxed instead \(fallback: 'unsandboxed'\)/g)?.length, run.output).toBe(1)
    })

    it.each([
      ['--detectOpenHandles', { args: ['--detectOpenHandles'] }, '--detectOpenHandles looks for open handles in the Jest process'],
      ['workerThreads', { env: { E2E_WORKER_THREADS: '1' } }, 'workerThreads is ignored'],
    ])('says once what %s can\'t do here, and runs the files sandboxed all the same', async (_, options, notice) => {
      const root = copyFixture(consumer, 'jest-options')
      const run = await runJest(consumer, root, options)
      expect(run.code, run.output).toBe(0)
      expect(run.output.split(notice).length - 1).toBe(1)
      expect(run.output).toMatch(/PASS \S*ok\.test\.js/)
    })
  })
}

/** The README's js code blocks, in order. */
function readmeJsBlocks(): string[] {
  const readme = readFileSync(join(import.meta.dirname, '..', '..', 'README.md'), 'utf8')
  return [...readme.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]!)
}

