import { describe, expect, it } from 'vitest'
import { openOrFallBack } from '../../src/engine/open-run.js'
import { LauncherNotFoundError } from '../../src/engine/launcher-path.js'
import type { SandboxRun } from '../../src/engine/run.js'
import { RootlessEnvironmentError, SandboxError } from '../../src/plan/errors.js'

/** A run whose probe does what `probe` says. */
function fakeRun(probe: () => void): () => SandboxRun {
  return () => ({ open: probe }) as unknown as SandboxRun
}

const machine = new SandboxError('vitest-pool-rootless: can\'t build the test sandbox on this machine (unshare failed, exit 234).', { step: 'unshare', exitCode: 234 })
const options = new SandboxError('vitest-pool-rootless: the sandbox can\'t be built with these options (exec failed, exit 248).', { step: 'exec', exitCode: 248, fault: 'options' })

describe("fallback: where the machine can't build the sandbox", () => {
  it('opens the run when the probe works, whatever the fallback', () => {
    const said: string[] = []
    const run = openOrFallBack(fakeRun(() => {}), 'unsandboxed', (m) => said.push(m), 'linux')
    expect(run).toBeDefined()
    expect(said).toEqual([])
  })

  it("'error' lets the machine's error through: one error, the doctor's words", () => {
    expect(() => openOrFallBack(fakeRun(() => { throw machine }), 'error', () => {}, 'linux')).toThrow(machine)
  })

  it.each([
    ['no user namespaces', machine, 'linux'],
    ['no launcher and no compiler', new LauncherNotFoundError('vitest-pool-rootless: no launcher binary for linux-riscv64'), 'linux'],
    ['not Linux at all', undefined, 'darwin'],
    ['a TMPDIR that does not exist', new RootlessEnvironmentError('TMPDIR', "vitest-pool-rootless: TMPDIR=/nonexistent: the temp dir can't be used (ENOENT: no such file or directory); set TMPDIR to an existing directory"), 'linux'],
  ] as const)("'unsandboxed' says once why (%s) and gives no run", (_, error, platform) => {
    const said: string[] = []
    const run = openOrFallBack(fakeRun(() => { if (error) throw error }), 'unsandboxed', (m) => said.push(m), platform)
    expect(run).toBeUndefined()
    expect(said).toHaveLength(1)
    expect(said[0]).toContain("running the tests unsandboxed instead (fallback: 'unsandboxed')")
    expect(said[0]).toContain(error ? error.message : "can't build the test sandbox on darwin: it needs Linux")
  })

  it('never falls back on a fault of the options', () => {
    expect(() => openOrFallBack(fakeRun(() => { throw options }), 'unsandboxed', () => {}, 'linux')).toThrow(options)
  })
})
