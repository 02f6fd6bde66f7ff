import { mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { ProbeVerdicts } from '../../src/engine/probe.js'

describe('ProbeVerdicts: passed probes, remembered per boot, machine settings and options', () => {
  const dirs: string[] = []
  afterEach(() => dirs.splice(0).forEach((dir) => rmSync(dir, { recursive: true, force: true })))
  const verdicts = () => {
    const dir = mkdtempSync(join(tmpdir(), 'vpr-probe-test-'))
    dirs.push(dir)
    return { dir, verdicts: new ProbeVerdicts(join(dir, 'probes')) }
  }

  it('keys a probe by this boot and by the options and launcher: other options or another launcher, another key', () => {
    const { verdicts: v } = verdicts()
    const boot = readdirSync('/proc/sys/kernel/random').includes('boot_id')
    const key = v.key({ hosts: { a: '127.0.0.1' } }, process.execPath)
    if (!boot) {
      expect(key).toBeUndefined()
      return
    }
    expect(key).toMatch(/^[\w-]+-[0-9a-f]{32}$/)
    expect(v.key({ hosts: { a: '127.0.0.1' } }, process.execPath)).toBe(key)
    expect(v.key({ hosts: { a: '127.0.0.2' } }, process.execPath)).not.toBe(key)
    expect(v.key({ hosts: { a: '127.0.0.1' } }, '/bin/sh')).not.toBe(key)
  })

  it('remembers and forgets; a verdict of this boot drops the other boots\' files', () => {
    const { dir, verdicts: v } = verdicts()
    expect(v.passed('boot-a-0123')).toBe(false)
    v.remember('boot-a-0123')
    expect(v.passed('boot-a-0123')).toBe(true)
    writeFileSync(join(dir, 'probes', 'unrelated'), '')
    v.remember('boot-b-4567')
    expect(readdirSync(join(dir, 'probes')).sort()).toEqual(['probe-boot-b-4567', 'unrelated'])
    v.forget('boot-b-4567')
    expect(v.passed('boot-b-4567')).toBe(false)
  })

  it('keeps the newest 32 verdicts of a boot: a config edited all day does not fill the cache', () => {
    const { dir, verdicts: v } = verdicts()
    for (let i = 0; i < 40; i++) {
      v.remember(`boot-a-${String(i).padStart(4, '0')}`)
      // one second apart, oldest first, whatever the file system's time resolution
      utimesSync(join(dir, 'probes', `probe-boot-a-${String(i).padStart(4, '0')}`), 1_000_000 + i, 1_000_000 + i)
    }
    const kept = readdirSync(join(dir, 'probes')).sort()
    expect(kept).toHaveLength(32)
    expect(kept[0]).toBe('probe-boot-a-0008')
    expect(kept.at(-1)).toBe('probe-boot-a-0039')
    // the verdict just remembered is kept even when its file is the oldest
    utimesSync(join(dir, 'probes', 'probe-boot-a-0039'), 1, 1)
    v.remember('boot-a-0039')
    expect(v.passed('boot-a-0039')).toBe(true)
  })

  it('remembers nothing, and does not throw, where the cache can not be written', () => {
    const { dir } = verdicts()
    writeFileSync(join(dir, 'file'), '')
    const v = new ProbeVerdicts(join(dir, 'file', 'probes'))
    v.remember('boot-a-0123')
    expect(v.passed('boot-a-0123')).toBe(false)
  })
})
