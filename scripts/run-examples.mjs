#!/usr/bin/env node
// Runs every project under examples/ with the repo's own Vitest -- or Jest, for those
// with a jest.config -- one after the other, then prints a summary table. Exits 1 if any
// example failed. Works from any cwd.
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const vitest = join(repo, 'node_modules', 'vitest', 'vitest.mjs')
const jest = join(repo, 'node_modules', 'jest', 'bin', 'jest.js')
const examplesDir = join(repo, 'examples')

const examples = readdirSync(examplesDir, { withFileTypes: true })
  .filter((entry) => entry.isDirectory())
  .map((entry) => entry.name)
  .sort()

if (examples.length === 0) {
  console.error(`run-examples: no examples found in ${examplesDir}`)
  process.exit(1)
}

const results = []
for (const name of examples) {
  const root = join(examplesDir, name)
  console.log(`\n=== examples/${name}\n`)
  const started = performance.now()
  const usesJest = ['jest.config.js', 'jest.config.cjs'].some((file) => existsSync(join(root, file)))
  const args = usesJest ? [jest] : [vitest, 'run', '--root', root]
  const run = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' })
  const seconds = (performance.now() - started) / 1000
  const runner = usesJest ? 'Jest' : 'Vitest'
  if (run.error) console.error(`run-examples: could not start ${runner} for ${name}: ${run.error.message}`)
  else if (run.signal) console.error(`run-examples: ${runner} for ${name} was killed by ${run.signal}`)
  results.push({ name, passed: run.status === 0, seconds })
}

const rows = [['example', 'result', 'seconds'], ...results.map((r) => [r.name, r.passed ? 'passed' : 'FAILED', r.seconds.toFixed(1)])]
const widths = rows[0].map((_, col) => Math.max(...rows.map((row) => row[col].length)))
const line = (row) => row.map((cell, col) => (col === 2 ? cell.padStart(widths[col]) : cell.padEnd(widths[col]))).join('  ')
console.log(`\n${line(rows[0])}\n${widths.map((w) => '-'.repeat(w)).join('  ')}`)
for (const row of rows.slice(1)) console.log(line(row))

const failed = results.filter((r) => !r.passed).length
console.log(`\n${results.length - failed} of ${results.length} examples passed`)
process.exit(failed === 0 ? 0 : 1)
