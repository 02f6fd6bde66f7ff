import { readdirSync, readFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ROOT } from '../support/sandbox.js'

// Each runner's entry loads only its own runner: a Jest-only project has no Vitest, a
// Vitest-only one no Jest. Read from the sources: every module specifier of every file.

const SRC = join(ROOT, 'src')

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => (entry.isDirectory() ? files(join(dir, entry.name)) : /\.c?ts$/.test(entry.name) ? [join(dir, entry.name)] : []))
}

/** The modules `file` imports or requires, as written. */
function specifiers(file: string): string[] {
  const text = readFileSync(file, 'utf8')
  return [...text.matchAll(/(?:from\s+|import\s*\(\s*|require\s*\(\s*|import\s+)['"]([^'"]+)['"]/g)].map((m) => m[1]!)
}

const importsOf = (folders: string[]) =>
  folders.flatMap((folder) => files(join(SRC, folder)).flatMap((file) => specifiers(file).map((spec) => `${relative(SRC, file)}: ${spec}`)))

describe('which side loads which runner', () => {
  it('only the Vitest adapter imports vitest (and only its types)', () => {
    const vitest = importsOf(['engine', 'plan', 'wire', 'inside', 'doctor', 'jest']).filter((line) => /: vitest(\/|$)/.test(line))
    expect(vitest).toEqual([])
    for (const file of files(join(SRC, 'pool'))) {
      for (const match of readFileSync(file, 'utf8').matchAll(/^import (.*) from 'vitest(\/[^']*)?'/gm)) expect(match[1], file).toMatch(/^type /)
    }
  })

  it('nothing outside the Jest adapter names Jest, and the adapter imports no Jest package', () => {
    const jest = importsOf(['engine', 'plan', 'wire', 'inside', 'doctor', 'pool', 'jest']).filter((line) => /: (jest|@jest\/)/.test(line))
    expect(jest).toEqual([])
  })

  it('the files are found (the check reads something)', () => {
    expect(importsOf(['pool']).length).toBeGreaterThan(5)
    expect(importsOf(['jest']).some((line) => line.endsWith(': ./runner.js'))).toBe(true)
  })
})
