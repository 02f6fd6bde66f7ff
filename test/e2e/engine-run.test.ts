import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, expect, it } from 'vitest'
import { exitOf, SandboxRun } from '../../src/engine/run.js'
import { validateSandboxOptions } from '../../src/plan/options.js'
import { describeSandbox, ROOT } from '../support/sandbox.js'

// The engine on its own, with the real launcher: what a runner adapter gets from it.
describeSandbox('the engine: SandboxRun with the real launcher', () => {
  const scratch = mkdtempSync(join(ROOT, '.e2e-engine-'))
  afterAll(() => rmSync(scratch, { recursive: true, force: true }))

  /** A Node entry that reports, over IPC, what it finds at `path`. */
  function entry(): string {
    const file = join(scratch, 'entry.cjs')
    writeFileSync(file, `const fs = require('node:fs'); const p = process.argv.at(-1);\nprocess.send({ uid: process.getuid(), text: (() => { try { return fs.readFileSync(process.env.PROBE_PATH, 'utf8') } catch (e) { return e.code } })() }, () => process.exit(0))\n`)
    return file
  }

  async function launchAndRead(needs: string[], probe: string): Promise<{ uid: number; text: string }> {
    const run = new SandboxRun(validateSandboxOptions({}), { heldUserNamespace: true, runnerPorts: false })
    try {
      // the entry's own directory is needed too, as an adapter's package is (this checkout
      // may itself live under the temp dir)
      const child = await run.launch({ entrypoint: entry(), execArgv: [], env: { ...process.env, PROBE_PATH: probe }, needs: [...needs, scratch], reusable: false }, 0)
      const message = new Promise<{ uid: number; text: string }>((resolve, reject) => {
        child.once('message', (m) => resolve(m as { uid: number; text: string }))
        void exitOf(child).then((exit) => reject(new Error(`the entry ended without a word: ${JSON.stringify(exit)}`)))
      })
      const [result, exit] = await Promise.all([message, exitOf(child)])
      expect(exit).toEqual({ code: 0, signal: null, step: undefined })
      return result
    } finally {
      await run.close()
    }
  }

  it('keeps a needed path visible when it is reached through a symlink into a tmpfs target', async () => {
    // the project really lives under the temp dir; the runner knows it by a symlink outside
    const real = mkdtempSync(join(tmpdir(), 'vpr-engine-real-'))
    try {
      mkdirSync(join(real, 'project'))
      writeFileSync(join(real, 'project', 'marker'), 'visible')
      const link = join(scratch, 'project-link')
      symlinkSync(join(real, 'project'), link)
      const result = await launchAndRead([link], join(link, 'marker'))
      expect(result).toEqual({ uid: 0, text: 'visible' })
    } finally {
      rmSync(real, { recursive: true, force: true })
    }
  })

  it('hides what is not needed under the tmpfs target', async () => {
    const real = mkdtempSync(join(tmpdir(), 'vpr-engine-hidden-'))
    try {
      writeFileSync(join(real, 'marker'), 'secret')
      const result = await launchAndRead([], join(real, 'marker'))
      expect(result).toEqual({ uid: 0, text: 'ENOENT' })
    } finally {
      rmSync(real, { recursive: true, force: true })
    }
  })
})
