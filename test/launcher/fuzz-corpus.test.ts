import { spawnSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { ROOT } from '../support/sandbox.js'

// The fuzz targets' regression inputs (native/fuzz/corpus: one per fault issue 26 found,
// and the smaller ones) replayed as tests, with the C compiler every build has: no clang,
// no libFuzzer needed. `npm run fuzz` searches beyond them.

const FUZZ = join(ROOT, 'native', 'fuzz')
const TARGETS: Record<string, string[]> = JSON.parse(readFileSync(join(FUZZ, 'targets.json'), 'utf8'))
const dir = mkdtempSync(join(tmpdir(), 'vpr-fuzz-replay-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function build(target: string, extra: string[] = [], name = target): string {
  const out = join(dir, name)
  const sources = [join(FUZZ, `${target}.c`), join(FUZZ, 'replay.c'), ...TARGETS[target]!.map((file) => join(ROOT, 'native', file))]
  const cc = spawnSync(process.env.CC || 'cc', ['-O1', '-g', '-Wall', '-Wextra', '-Werror=shadow', '-Wmissing-prototypes', '-o', out, ...sources, ...extra, '-lpthread'], { encoding: 'utf8' })
  if (cc.status !== 0) throw new Error(`can't build the ${target} target: ${cc.stderr || cc.error}`)
  return out
}

describe('the fuzz targets\' regression inputs', () => {
  it.each(Object.keys(TARGETS))('%s: every input passes the target\'s checks', (target) => {
    const corpus = join(FUZZ, 'corpus', target)
    const inputs = readdirSync(corpus)
    expect(inputs.length).toBeGreaterThan(3)
    const r = spawnSync(build(target), [corpus], { encoding: 'utf8', timeout: 60_000 })
    expect(r.stderr).toBe('')
    expect(r.stdout.trim()).toBe(`replayed ${inputs.length} inputs`)
    expect(r.status).toBe(0)
  })

  it('has an input for each fault of issue 26 the targets can reach', () => {
    const names = Object.keys(TARGETS).flatMap((target) => readdirSync(join(FUZZ, 'corpus', target)))
    for (const fault of [1, 2, 3, 4, 5, 6]) expect(names.some((name) => name.startsWith(`fault-${fault}-`)), `fault ${fault}`).toBe(true)
  })

  it('catches fault 2 when it is put back: a short message\'s fd kept open fails the control target', () => {
    const leaky = build('control', [join(ROOT, 'test', 'launcher', 'fixtures', 'leaky-recv.c'), '-Wl,--wrap=recv_with_fd'], 'control-leaky')
    const r = spawnSync(leaky, [join(FUZZ, 'corpus', 'control', 'fault-2-short-message-with-fd')], { encoding: 'utf8', timeout: 60_000 })
    expect(r.signal).toBe('SIGABRT')
    const [, open, expected] = r.stderr.match(/fuzz check failed: (\d+) fds open, (\d+) expected \(the fds open between inputs and the listeners taken\)/) ?? []
    expect(Number(open)).toBe(Number(expected) + 1)
    // the report names what each fd is
    expect(r.stderr).toMatch(/^ {2}fd \d+ -> socket:\[\d+\]$/m)
  })
})
