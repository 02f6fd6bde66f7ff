import type { ChildProcess } from 'node:child_process'
import { EventEmitter } from 'node:events'
import { createServer, type AddressInfo } from 'node:net'
import { describe, expect, it, vi } from 'vitest'
import type { HeldUserNamespace } from '../../src/engine/holder.js'
import type { ChildExit } from '../../src/engine/exit.js'
import { markRunConfigured, registerHostPort } from '../../src/engine/forwarded-at-run-time.js'
import { SandboxRun, trackExit, type LaunchSpec, type RunDeps } from '../../src/engine/run.js'
import type { PreparedSandbox } from '../../src/engine/sandbox.js'
import { SandboxError } from '../../src/plan/errors.js'
import { validateSandboxOptions } from '../../src/plan/options.js'

/** A stand-in for a launched process: what SandboxRun and SparePool look at. */
function fakeChild(): ChildProcess {
  const child = new EventEmitter() as unknown as ChildProcess & { exitCode: number | null; signalCode: NodeJS.Signals | null }
  Object.assign(child, { exitCode: null, signalCode: null, ref() {}, unref() {} })
  child.kill = vi.fn((signal?: NodeJS.Signals | number) => {
    child.signalCode = (signal as NodeJS.Signals) ?? 'SIGTERM'
    child.emit('exit', null, child.signalCode)
    return true
  }) as ChildProcess['kill']
  return child
}

/** Fake machine: records what the run did to it. */
function fakeDeps(overrides: Partial<RunDeps> = {}) {
  const log: string[] = []
  const children: ChildProcess[] = []
  let sandboxes = 0
  const deps: RunDeps = {
    prepare() {
      const n = ++sandboxes
      log.push(`prepare ${n}`)
      return { stateDir: `/state/${n}`, hosts: '', launcher: '/launcher', idMap: { mode: 'subids' }, plan: () => ({ mounts: [], forwards: [{ inside: 5432, host: 5432 }] }), cleanup: () => log.push(`cleanup ${n}`) } as unknown as PreparedSandbox
    },
    probe: (sandbox) => void log.push(`probe ${sandbox.stateDir}`),
    async holdUserNamespace() {
      log.push('userns')
      return { fd: 99, close: () => log.push('userns closed') } satisfies HeldUserNamespace
    },
    fork(sandbox, userns, spec, env) {
      log.push(`fork ${sandbox.stateDir} userns=${userns?.fd ?? '-'} reset=${'VITEST_POOL_ROOTLESS_RESET' in env}`)
      const child = fakeChild()
      children.push(child)
      return child
    },
    ...overrides,
  }
  return { deps, log, children }
}

/** What `body` writes to stderr (kept off the test's output). */
async function stderrOf(body: () => Promise<void>): Promise<string> {
  const write = vi.spyOn(process.stderr, 'write').mockImplementation(() => true)
  try {
    await body()
    return write.mock.calls.map((c) => String(c[0])).join('')
  } finally {
    write.mockRestore()
  }
}

const spec: LaunchSpec = { entrypoint: '/entry.js', execArgv: [], env: { A: '1' }, needs: [], reusable: false }
const options = validateSandboxOptions({})

describe('SandboxRun: the lifecycle of one sandbox configuration', () => {
  it('open() prepares and probes once; a failed probe cleans up and throws', () => {
    const ok = fakeDeps()
    const run = new SandboxRun(options, { heldUserNamespace: false, runnerPorts: false }, ok.deps)
    run.open()
    run.open()
    expect(ok.log).toEqual(['prepare 1', 'probe /state/1'])

    const bad = fakeDeps({
      probe() {
        throw new SandboxError('no namespaces here', { step: 'unshare', exitCode: 234 })
      },
    })
    const failing = new SandboxRun(options, { heldUserNamespace: false, runnerPorts: false }, bad.deps)
    expect(() => failing.open()).toThrow('no namespaces here')
    expect(bad.log).toEqual(['prepare 1', 'cleanup 1'])
  })

  it('a passed probe is remembered: the next open() with the same key builds no probe; a sandbox that fails to build then forgets it and says so once', async () => {
    const remembered = new Set<string>()
    const exits: Array<(exit: ChildExit) => void> = []
    const verdictDeps = () => {
      const made = fakeDeps({
        verdicts: {
          key: () => 'boot-1',
          passed: (key) => remembered.has(key),
          remember: (key) => void remembered.add(key),
          forget: (key) => void remembered.delete(key),
        },
      })
      const fork = made.deps.fork
      made.deps.fork = (...args) => {
        const child = fork(...args)
        trackExit(child, new Promise((resolve) => exits.push(resolve)))
        return child
      }
      return made
    }
    const first = verdictDeps()
    const run1 = new SandboxRun(options, { heldUserNamespace: false, runnerPorts: false }, first.deps)
    run1.open()
    expect(first.log).toEqual(['prepare 1', 'probe /state/1'])
    expect([...remembered]).toEqual(['boot-1'])
    await run1.close()

    const second = verdictDeps()
    const run2 = new SandboxRun(options, { heldUserNamespace: false, runnerPorts: false }, second.deps)
    const said = await stderrOf(async () => {
      run2.open()
      // no probe: the remembered verdict stands in for it
      expect(second.log).toEqual(['prepare 1'])
      await run2.launch(spec, 0)
      await run2.launch(spec, 0)
      // the machine changed: both sandboxes fail to build; said once, verdict forgotten
      exits.forEach((exit) => exit({ code: 234, signal: null, step: 'unshare' }))
      await new Promise((resolve) => setTimeout(resolve, 10))
    })
    expect(remembered.size).toBe(0)
    expect(said.match(/can't build the test sandbox on this machine \(unshare failed, exit 234\)/g)).toHaveLength(1)
    expect(said).toContain('something changed since')
    await run2.close()
  })

  it("open() starts making the warm user namespace at once, while the runner starts up, not at the first launch", async () => {
    const { deps, log } = fakeDeps()
    const run = new SandboxRun(options, { heldUserNamespace: true, runnerPorts: false }, deps)
    run.open()
    expect(log).toEqual(['prepare 1', 'probe /state/1', 'userns'])
    await run.launch(spec, 0)
    // made once: the launch joined the one open() started
    expect(log).toEqual(['prepare 1', 'probe /state/1', 'userns', 'fork /state/1 userns=99 reset=false'])
    await run.close()
    expect(log.at(-2)).toBe('userns closed')
  })

  it('launch() joins the warm user namespace, hands out a booted spare, and keeps spares topped up', async () => {
    const { deps, log } = fakeDeps()
    const run = new SandboxRun(options, { heldUserNamespace: true, runnerPorts: false }, deps)
    const first = await run.launch(spec, 1)
    expect(log).toEqual(['prepare 1', 'probe /state/1', 'userns', 'fork /state/1 userns=99 reset=false', 'fork /state/1 userns=99 reset=false'])
    const second = await run.launch(spec, 1)
    expect(second).not.toBe(first)
    // the second file got the spare booted during the first; one new spare replaced it
    expect(log.filter((l) => l.startsWith('fork'))).toHaveLength(3)
    await run.close()
  })

  it('close() stops the spares and releases the namespace and the state dir, once; the next launch reopens', async () => {
    const { deps, log, children } = fakeDeps()
    const run = new SandboxRun(options, { heldUserNamespace: true, runnerPorts: false }, deps)
    await run.launch(spec, 2)
    const spares = children.slice(1)
    expect(spares).toHaveLength(2)
    await run.close()
    await run.close()
    for (const spare of spares) expect(spare.kill).toHaveBeenCalledWith('SIGKILL')
    expect(log.filter((l) => l === 'userns closed' || l.startsWith('cleanup'))).toEqual(['userns closed', 'cleanup 1'])
    await run.launch(spec, 0)
    expect(log.slice(-4)).toEqual(['prepare 2', 'probe /state/2', 'userns', 'fork /state/2 userns=99 reset=false'])
    await run.close()
  })

  it('a warm user namespace that fails falls back to per-worker maps, saying so once', async () => {
    const { deps, log } = fakeDeps({
      async holdUserNamespace() {
        throw new Error('vitest-pool-rootless: no holder today')
      },
    })
    const run = new SandboxRun(options, { heldUserNamespace: true, runnerPorts: false }, deps)
    const said = await stderrOf(async () => {
      await run.launch(spec, 0)
      await run.launch(spec, 0)
    })
    expect(log.filter((l) => l.startsWith('fork'))).toEqual(['fork /state/1 userns=- reset=false', 'fork /state/1 userns=- reset=false'])
    expect(said.match(/no holder today/g)).toHaveLength(1)
    expect(said).toContain('mapping ids per worker instead')
    await run.close()
  })

  it('a reusable worker gets the reset plan in its environment; others do not', async () => {
    const { deps, log } = fakeDeps()
    const run = new SandboxRun(options, { heldUserNamespace: false, runnerPorts: false }, deps)
    await run.launch({ ...spec, reusable: true }, 0)
    expect(log.at(-1)).toBe('fork /state/1 userns=- reset=true')
    await run.close()
  })

  it('forwards the ports this process listens on at launch (runnerPorts), and says which where the network is the sandbox\'s own (isolated, egress)', async () => {
    const server = createServer()
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const port = (server.address() as AddressInfo).port
    try {
      const seen: Array<{ spec: LaunchSpec; env: NodeJS.ProcessEnv }> = []
      const { deps } = fakeDeps({
        fork(_sandbox, _userns, spec, env) {
          seen.push({ spec, env })
          return fakeChild()
        },
      })
      const run = new SandboxRun(options, { heldUserNamespace: false, runnerPorts: true }, deps)
      await run.launch(spec, 0)
      expect(seen[0]!.spec.runnerPorts).toContain(port)
      // the forwarded ports the sandbox will have (the fake plan's), for the EADDRINUSE hint
      expect(seen[0]!.env.VITEST_POOL_ROOTLESS_FORWARDED_PORTS).toBe('5432')
      // the notices load from the sandbox's entry, not from execArgv, which worker threads inherit
      expect(seen[0]!.spec.execArgv).toEqual([])
      await run.close()

      const off = new SandboxRun(options, { heldUserNamespace: false, runnerPorts: false }, deps)
      await off.launch(spec, 0)
      expect(seen[1]!.spec.runnerPorts).toBeUndefined()
      await off.close()

      const host = new SandboxRun(validateSandboxOptions({ network: 'host' }), { heldUserNamespace: false, runnerPorts: true }, deps)
      await host.launch(spec, 0)
      expect(seen[2]!.spec.runnerPorts).toBeUndefined()
      expect(seen[2]!.env.VITEST_POOL_ROOTLESS_FORWARDED_PORTS).toBeUndefined()
      await host.close()

      // egress keeps the sandbox's own ports: the notices load there too, told which network it is
      const egress = new SandboxRun({ ...options, network: 'egress' }, { heldUserNamespace: false, runnerPorts: false }, deps)
      await egress.launch(spec, 0)
      expect(seen[3]!.env.VITEST_POOL_ROOTLESS_FORWARDED_PORTS).toBe('5432')
      expect(seen[3]!.env.VITEST_POOL_ROOTLESS_NETWORK).toBe('egress')
      expect(seen[0]!.env.VITEST_POOL_ROOTLESS_NETWORK).toBe('isolated')
      await egress.close()
    } finally {
      server.close()
    }
  })

  it("passes a port forwardHostPort() registers to each running reused worker's forwarder, and to no other", async () => {
    const channels: Array<{ reusable: boolean; written: string[] }> = []
    const { deps } = fakeDeps({
      fork(_sandbox, _userns, spec, _env, _publish, forwardHost) {
        const child = fakeChild()
        const written: string[] = []
        channels.push({ reusable: spec.reusable, written })
        // the launcher's stdio: the host's channel to the forwarder at 6, when asked for
        const channel = Object.assign(new EventEmitter(), { write: (line: string) => void written.push(line) })
        Object.assign(child, { stdio: forwardHost ? [null, null, null, null, null, null, channel] : [null, null, null, null, null] })
        return child
      },
    })
    const run = new SandboxRun(options, { heldUserNamespace: false, runnerPorts: false }, deps)
    // last in this file: the registry is process-wide, and keeps what this registers
    markRunConfigured()
    const reused = await run.launch({ ...spec, reusable: true }, 0)
    await run.launch(spec, 0)
    registerHostPort({ inside: 6380, host: 32771 }, () => false)
    // a worker gone gets nothing more
    reused.kill()
    registerHostPort(32772, () => false)
    await run.close()
    registerHostPort(32773, () => false)
    expect(channels).toEqual([
      { reusable: true, written: ['6380:32771\n'] },
      { reusable: false, written: [] },
    ])
  })
})
