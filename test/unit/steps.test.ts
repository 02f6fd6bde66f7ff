import { describe, it, expect } from 'vitest'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { LAUNCHER_STEPS, launcherStep } from '../../src/plan/steps.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const header = readFileSync(`${ROOT}/native/steps.h`, 'utf8')

/** The STEPS list's rows: `X(SYMBOL, CODE, "name")`. */
const rows = [...header.matchAll(/^\s*X\((\w+), (\d+), "([^"]*)"\)/gm)].map(([, symbol, code, name]) => ({ symbol: symbol!, code: Number(code), name: name! }))

describe('launcher steps: one list in native/steps.h, src/plan/steps.ts made from it', () => {
  it('finds the list', () => {
    expect(rows.length).toBeGreaterThan(20)
  })

  it('src/plan/steps.ts is what the build makes from the list (run `npm run build` after editing it)', () => {
    const made = execFileSync(process.execPath, [`${ROOT}/scripts/build-native.mjs`, '--steps'], { encoding: 'utf8' })
    expect(readFileSync(`${ROOT}/src/plan/steps.ts`, 'utf8')).toBe(made)
    expect(Object.keys(LAUNCHER_STEPS).length).toBe(rows.length)
    for (const row of rows) expect(LAUNCHER_STEPS[row.code]).toBe(row.name)
  })

  it('gives every step a distinct code and a distinct name', () => {
    expect(new Set(rows.map((r) => r.code)).size).toBe(rows.length)
    expect(new Set(rows.map((r) => r.name)).size).toBe(rows.length)
  })

  it('derives each name from its symbol (UID_MAP → uid-map)', () => {
    for (const row of rows) expect(row.name).toBe(row.symbol.toLowerCase().replace(/_/g, '-'))
  })

  it('keeps the codes in 230..253, clear of normal and signal exit statuses', () => {
    for (const row of rows) {
      expect(row.code).toBeGreaterThanOrEqual(230)
      expect(row.code).toBeLessThanOrEqual(253)
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
