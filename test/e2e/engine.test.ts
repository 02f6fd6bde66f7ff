import { spawn, spawnSync } from 'node:child_process'
import { appendFileSync, readdirSync, rmSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { beforeAll, expect, inject, it } from 'vitest'
import { copyFixture, prepareConsumer, type Consumer } from '../support/consumer.js'
import { runVitest } from '../support/vitest-run.js'
import { describeSandbox, homeWithNode } from '../support/sandbox.js'

/** Open fds and live child processes of `pid`. */
function resources(pid: number): { fds: number; children: number } {
  const children = spawnSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean).length
  return { fds: readdirSync(`/proc/${pid}/fd`).length, children }
}

for (const major of [4, 5] as const) {
  describeSandbox(`the engine's lifecycle and reports on Vitest ${major}`, () => {
    let consumer: Consumer
    beforeAll(() => {
      consumer = prepareConsumer(major, inject('tarball'))
    }, 300_000)

    it('10 config reloads in watch mode leave the Vitest process with the fds and children it had after the first run', async () => {
      const root = copyFixture(consumer, 'lifecycle')
      const child = spawn(consumer.node, [consumer.vitest, 'watch', '--root', root], {
        cwd: root,
        env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' },
        stdio: ['pipe', 'pipe', 'pipe'],
      })
      let output = ''
      child.stdout.setEncoding('utf8').on('data', (d: string) => (output += d))
      child.stderr.setEncoding('utf8').on('data', (d: string) => (output += d))
      const passes = () => output.match(/Test Files\s+1 passed \(1\)/g)?.length ?? 0
      const waitForPasses = async (n: number) => {
        const deadline = Date.now() + 60_000
        while (passes() < n) {
          if (Date.now() > deadline || child.exitCode !== null) throw new Error(`watch mode did not pass ${n} time(s):\n${output}`)
          await new Promise((ok) => setTimeout(ok, 100))
        }
        // let the spare for the next file finish booting before counting
        await new Promise((ok) => setTimeout(ok, 1500))
      }
      try {
        await waitForPasses(1)
        const first = resources(child.pid!)
        for (let i = 1; i <= 10; i++) {
          appendFileSync(join(root, 'vitest.config.ts'), `// reload ${i}\n`)
          await waitForPasses(i + 1)
        }
        const after = resources(child.pid!)
        expect(after, output).toEqual(first)
        // and the state dirs of the closed runs are gone: one live run, one state dir
        expect(output).not.toContain('Error')
      } finally {
        child.kill('SIGTERM')
        await new Promise((ok) => child.once('close', ok))
      }
    })

    it('a test process that exits with 240 after the sandbox was built is reported as its own exit, not a sandbox step', async () => {
      const root = copyFixture(consumer, 'exit-status')
      const run = await runVitest(consumer, root)
      expect(run.code).not.toBe(0)
      expect(run.output).toContain('the sandboxed worker exited with code 240 while running')
      expect(run.output).toContain('exit-240.test.ts')
      expect(run.output).not.toContain('step failed')
      expect(run.output).toMatch(/Tests\s+1 passed/)
    })

    it('names the files tests gave to a subordinate id in the project and in the home directory, with commands that give them back', async () => {
      const root = copyFixture(consumer, 'foreign-owned')
      const file = join(root, 'out', 'owned-by-1000.txt')
      // a home of its own, outside /tmp and the temp dir (those are private in the sandbox)
      const { home } = homeWithNode(consumer.node)
      const homeFile = join(home, 'left-by-tests', 'owned-by-1000.txt')
      const cli = join(consumer.dir, 'node_modules', 'vitest-pool-rootless', 'dist', 'cli.js')
      try {
        const run = await runVitest(consumer, root, { env: { HOME: home } })
        expect(run.code, run.output).toBe(0)
        expect(run.output).toMatch(/Tests\s+2 passed/)
        if (process.geteuid!() === 0) {
          // root can take back whatever its tests chowned: nothing to say
          expect(run.output).not.toContain('tests left')
          return
        }
        expect(statSync(file).uid).not.toBe(process.geteuid!())
        expect(statSync(homeFile).uid).not.toBe(process.geteuid!())
        expect(run.output).toContain(`tests left 1 path in the project owned by ids only the sandbox maps; your user can't change or remove it:\n  ${file} (uid `)
        expect(run.output).toContain(`tests left 1 path outside the project owned by ids only the sandbox maps; your user can't change or remove it:\n  ${homeFile} (uid `)
        // the commands it gives work
        const commands = [...run.output.matchAll(/npx vitest-pool-rootless (exec --no-tmpfs -- chown -R 0:0 \S+)/g)].map((m) => m[1]!)
        expect(commands).toHaveLength(2)
        for (const command of commands) {
          const fix = spawnSync(consumer.node, [cli, ...command.split(' ')], { cwd: root, encoding: 'utf8' })
          expect(fix.status, fix.stderr).toBe(0)
        }
        expect(statSync(file).uid).toBe(process.geteuid!())
        expect(statSync(homeFile).uid).toBe(process.geteuid!())
      } finally {
        // whatever happened above, the files must be the user's again, or nobody can remove them
        spawnSync(consumer.node, [cli, 'exec', '--no-tmpfs', '--', 'chown', '-R', '0:0', join(root, 'out'), home], { cwd: root })
        rmSync(home, { recursive: true, force: true })
      }
    })

    it("fallback: 'unsandboxed' runs the suite with Vitest's forks pool where user namespaces are off, and says why once", async () => {
      const root = copyFixture(consumer, 'fallback')
      const healthy = await runVitest(consumer, root, { env: { E2E_FALLBACK: 'unsandboxed', E2E_EXPECT_SANDBOXED: '1' } })
      expect(healthy.code, healthy.output).toBe(0)
      expect(healthy.output).toMatch(/Tests\s+2 passed/)
      expect(healthy.output).not.toContain('unsandboxed instead')
      const run = spawnSync('unshare', ['-r', 'sh', '-c', 'echo 0 > /proc/sys/user/max_user_namespaces && exec "$NODE" "$VITEST" run --root "$ROOT"'], {
        cwd: root,
        encoding: 'utf8',
        env: { ...process.env, NODE: consumer.node, VITEST: consumer.vitest, ROOT: root, NO_COLOR: '1', FORCE_COLOR: '0', CI: 'true', E2E_FALLBACK: 'unsandboxed', E2E_EXPECT_SANDBOXED: '0' },
        timeout: 120_000,
      })
      const output = `${run.stdout}${run.stderr}`
      expect(run.status, output).toBe(0)
      expect(output).toMatch(/Tests\s+1 passed \| 1 skipped/)
      expect(output.match(/running the tests unsandboxed instead \(fallback: 'unsandboxed'\)/g)?.length, output).toBe(1)
      expect(output).toContain('max_user_namespaces')
    })

    it("tmpfs on a directory that holds the node binary (nvm's under $HOME): the probe and the workers keep node's directory", async () => {
      const root = copyFixture(consumer, 'node-under-tmpfs')
      const { home, node, secret } = homeWithNode(consumer.node)
      try {
        const run = await runVitest({ ...consumer, node }, root, { env: { E2E_HOME: home, E2E_SECRET: secret } })
        expect(run.code, run.output).toBe(0)
        expect(run.output).toMatch(/Tests\s+1 passed/)
      } finally {
        rmSync(home, { recursive: true, force: true })
      }
    })

    it("a TMPDIR that doesn't exist: the package imports, the run stops with the one TMPDIR message; with fallback: 'unsandboxed' it runs unsandboxed", async () => {
      const root = copyFixture(consumer, 'fallback')
      const tmp = join(root, 'no-such-tmp')
      const message = `TMPDIR=${tmp}: the temp dir can't be used (ENOENT: no such file or directory); set TMPDIR to an existing directory`
      const stopped = await runVitest(consumer, root, { env: { TMPDIR: tmp } })
      expect(stopped.code, stopped.output).toBe(1)
      expect(stopped.output.split(message).length - 1, stopped.output).toBe(1)
      expect(stopped.output).not.toMatch(/lstat|^\s+at /m)
      const unsandboxed = await runVitest(consumer, root, { env: { TMPDIR: tmp, E2E_FALLBACK: 'unsandboxed', E2E_EXPECT_SANDBOXED: '0' } })
      expect(unsandboxed.code, unsandboxed.output).toBe(0)
      expect(unsandboxed.output).toMatch(/Tests\s+1 passed \| 1 skipped/)
      expect(unsandboxed.output.split(message).length - 1, unsandboxed.output).toBe(1)
      expect(unsandboxed.output).toContain("running the tests unsandboxed instead (fallback: 'unsandboxed')")
    })

    it('with user namespaces switched off: exactly one error block with the cause and the fix, nothing blaming Vitest', async () => {
      const root = copyFixture(consumer, 'lifecycle')
      const run = spawnSync('unshare', ['-r', 'sh', '-c', 'echo 0 > /proc/sys/user/max_user_namespaces && exec "$NODE" "$VITEST" run --root "$ROOT"'], {
        cwd: root,
        encoding: 'utf8',
        env: { ...process.env, NODE: consumer.node, VITEST: consumer.vitest, ROOT: root, NO_COLOR: '1', FORCE_COLOR: '0', CI: 'true' },
        timeout: 120_000,
      })
      const output = `${run.stdout}${run.stderr}`
      expect(run.status, output).toBe(1)
      expect(output.match(/can't build the test sandbox/g)?.length, output).toBe(1)
      expect(output).toContain('max_user_namespaces')
      expect(output).toContain('fix: sudo sysctl -w user.max_user_namespaces=15000')
      for (const noise of ['bug in Vitest', 'Timeout terminating', 'Failed to terminate', 'Caused by', 'already runs in a user namespace', 'per worker instead', '    at ']) {
        expect(output, noise).not.toContain(noise)
      }
    })
  })
}
