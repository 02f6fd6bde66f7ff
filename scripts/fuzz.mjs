#!/usr/bin/env node
// Fuzzes every parser of input a test can shape (native/fuzz/: the launcher's argv, the
// forwarder's control protocol, the connect address check) with libFuzzer, AddressSanitizer
// and UndefinedBehaviorSanitizer, for a bounded time each:
//
//   npm run fuzz -- [--seconds N] [TARGET...]      N defaults to 30
//
// Prints one line per target. A finding (a crash, a sanitizer report or a failed check of
// the target) fails the run; its input is kept in native/build/fuzz/findings/ and the
// line says how to replay it. Each target starts from its regression inputs in
// native/fuzz/corpus/<target> (never written to) and keeps what it learns in
// native/build/fuzz/corpus/<target> for the next run. Needs clang and its compiler-rt
// (Debian/Ubuntu: apt-get install clang libclang-rt-dev).
import { spawn, spawnSync } from 'node:child_process'
import { mkdirSync, readFileSync, readdirSync, renameSync } from 'node:fs'
import { join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(fileURLToPath(new URL('..', import.meta.url)))
const fuzzDir = join(root, 'native', 'fuzz')
const out = join(root, 'native', 'build', 'fuzz')
const TARGETS = JSON.parse(readFileSync(join(fuzzDir, 'targets.json'), 'utf8'))

const args = process.argv.slice(2)
let seconds = 30
const chosen = []
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--seconds') seconds = Number(args[++i])
  else if (args[i] in TARGETS) chosen.push(args[i])
  else usage(`unknown argument '${args[i]}'`)
}
if (!Number.isInteger(seconds) || seconds < 1) usage(`--seconds takes a whole number of seconds, got '${args[args.indexOf('--seconds') + 1]}'`)
const targets = chosen.length > 0 ? chosen : Object.keys(TARGETS)

function usage(problem) {
  console.error(`fuzz: ${problem}. Usage: npm run fuzz -- [--seconds N] [${Object.keys(TARGETS).join('|')}]...`)
  process.exit(2)
}

const cc = process.env.FUZZ_CC || 'clang'
if (spawnSync(cc, ['--version'], { stdio: 'ignore' }).status !== 0) {
  console.error(`fuzz: ${cc} not found: the fuzz targets need clang with libFuzzer (Debian/Ubuntu: apt-get install clang libclang-rt-dev; or point FUZZ_CC at one).`)
  process.exit(2)
}

const findings = join(out, 'findings')
mkdirSync(findings, { recursive: true })
let failed = 0
for (const target of targets) {
  const binary = join(out, target)
  // -O1 -g: libFuzzer's recommendation, readable stacks; every UBSan report is a finding
  const flags = ['-g', '-O1', '-fsanitize=fuzzer,address,undefined', '-fno-sanitize-recover=all', '-Wall', '-Wextra', '-Werror=shadow', '-Wmissing-prototypes']
  const sources = [join(fuzzDir, `${target}.c`), ...TARGETS[target].map((file) => join(root, 'native', file))]
  const built = spawnSync(cc, [...flags, '-o', `${binary}.tmp`, ...sources, '-lpthread'], { stdio: ['ignore', 'inherit', 'inherit'] })
  if (built.status !== 0) {
    console.error(`fuzz: can't build the ${target} target with ${cc} (its messages are above). libFuzzer and the sanitizers' runtimes come with clang's compiler-rt (Debian/Ubuntu: apt-get install libclang-rt-dev).`)
    process.exit(2)
  }
  renameSync(`${binary}.tmp`, binary)
  const learned = join(out, 'corpus', target)
  mkdirSync(learned, { recursive: true })
  const started = Date.now()
  const result = await run(binary, [
    `-max_total_time=${seconds}`,
    `-artifact_prefix=${findings}/${target}-`,
    '-print_final_stats=1',
    // no names of the new functions reached: libFuzzer asks llvm-symbolizer for them, a
    // child it keeps with two pipes open in this process, which the control target's
    // count of open fds then finds
    '-print_funcs=0',
    learned,
    join(fuzzDir, 'corpus', target),
  ])
  const stat = (name) => result.output.match(new RegExp(`stat::${name}:\\s*(\\d+)`))?.[1] ?? '?'
  const took = ((Date.now() - started) / 1000).toFixed(0)
  const coverage = [...result.output.matchAll(/\bcov: (\d+)/g)].pop()?.[1] ?? '?'
  const reproducer = result.output.match(/Test unit written to (\S+)/)?.[1]
  if (result.code === 0 && !reproducer) {
    console.log(`${target.padEnd(8)} ${took} s  ${stat('number_of_executed_units')} runs  coverage ${coverage}  corpus ${readdirSync(learned).length}  no finding`)
    continue
  }
  failed++
  const where = reproducer ? relative(process.cwd(), reproducer) : '(no reproducer written)'
  console.log(`${target.padEnd(8)} ${took} s  FINDING: ${where}; replay it: ${relative(process.cwd(), binary)} ${where}`)
  // the report: from the first sanitizer or check line
  const report = result.output.split('\n')
  const first = report.findIndex((line) => /ERROR: |runtime error|fuzz check failed|deadly signal/.test(line))
  console.log(report.slice(Math.max(first, 0), Math.max(first, 0) + 40).map((line) => `  ${line}`).join('\n'))
}
process.exit(failed > 0 ? 1 : 0)

/** Runs the fuzzer, keeping its output (libFuzzer writes to stderr) for the summary. */
function run(binary, argv) {
  return new Promise((resolvePromise) => {
    const child = spawn(binary, argv, { cwd: out, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.setEncoding('utf8').on('data', (d) => (output += d))
    child.stderr.setEncoding('utf8').on('data', (d) => (output += d))
    child.on('close', (code, signal) => resolvePromise({ code: code ?? (signal ? 128 : 1), output }))
  })
}
