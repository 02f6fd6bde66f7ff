import { describe, it, expect } from 'vitest'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { LAUNCHER_STEPS, launcherStep } from '../../src/plan/steps.js'

const header = readFileSync(fileURLToPath(new URL('../../native/steps.h', import.meta.url)), 'utf8')

/** `STEP_X = N` → { STEP_X: N } */
const codes = new Map<string, number>()
for (const m of header.matchAll(/^\s*(STEP_[A-Z0-9_]+)\s*=\s*(\d+)\s*,?\s*$/gm)) {
  codes.set(m[1]!, Number(m[2]))
}
/** `case STEP_X: return "name";` → { STEP_X: name } */
const names = new Map<string, string>()
for (const m of header.matchAll(/case\s+(STEP_[A-Z0-9_]+)\s*:\s*return\s+"([^"]*)"\s*;/g)) {
  names.set(m[1]!, m[2]!)
}

describe('launcher steps: native/steps.h vs src/plan/steps.ts', () => {
  it('finds the enum and the switch in steps.h', () => {
    expect(codes.size).toBeGreaterThan(0)
    expect(names.size).toBeGreaterThan(0)
  })

  it('names every enum value in step_name() and nothing else', () => {
    expect([...names.keys()].sort()).toEqual([...codes.keys()].sort())
  })

  it('gives every step a distinct code and a distinct name', () => {
    expect(new Set(codes.values()).size).toBe(codes.size)
    expect(new Set(names.values()).size).toBe(names.size)
  })

  it('matches LAUNCHER_STEPS exactly', () => {
    const fromHeader: Record<number, string> = {}
    for (const [symbol, code] of codes) fromHeader[code] = names.get(symbol)!
    expect(LAUNCHER_STEPS).toEqual(fromHeader)
    expect(Object.keys(LAUNCHER_STEPS).length).toBe(codes.size)
  })

  it('derives each name from its symbol (STEP_UID_MAP → uid-map)', () => {
    for (const [symbol, name] of names) expect(name).toBe(symbol.slice('STEP_'.length).toLowerCase().replace(/_/g, '-'))
  })

  it('keeps the codes in 230..252, clear of normal and signal exit statuses', () => {
    for (const code of codes.values()) {
      expect(code).toBeGreaterThanOrEqual(230)
      expect(code).toBeLessThanOrEqual(252)
    }
  })
})

describe('launcherStep', () => {
  it('names a launcher exit status', () => {
    expect(launcherStep(230)).toBe('usage')
    expect(launcherStep(236)).toBe('uid-map')
    expect(launcherStep(248)).toBe('exec')
  })

  it('returns undefined for ordinary exit statuses and no status', () => {
    expect(launcherStep(0)).toBeUndefined()
    expect(launcherStep(1)).toBeUndefined()
    expect(launcherStep(137)).toBeUndefined()
    expect(launcherStep(229)).toBeUndefined()
    expect(launcherStep(null)).toBeUndefined()
  })
})
