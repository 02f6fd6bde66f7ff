#!/usr/bin/env node
// Compiles the native side for Linux:
//   launcher      the program that builds each sandbox (native/launcher.c)
//   rootless.node the Node-API addon a reused worker resets its sandbox with (native/addon.c)
//
//   build-native.mjs            every target a compiler is found for, into
//                               native/build/<platform>-<arch>/: this machine's, and the
//                               other 64-bit one (x64 <-> arm64) with a cross compiler
//   build-native.mjs OUT_DIR    this machine's only, into OUT_DIR (the first-use build
//                               of src/engine/launcher-path.ts on a platform without a
//                               prebuilt binary)
//   build-native.mjs --steps    prints src/plan/steps.ts as native/steps.h makes it
//   build-native.mjs --sanitize OUT_DIR
//                               this machine's launcher alone, with AddressSanitizer and
//                               UndefinedBehaviorSanitizer, into OUT_DIR (CI runs the
//                               launcher tests once with it: VITEST_POOL_ROOTLESS_LAUNCHER)
//
// Every build (but OUT_DIR's, in an installed package without sources) also writes
// src/plan/steps.ts from the step list in native/steps.h, the one source of the table.
//
// The package's `build`/`prepack` scripts run it; `npm pack` requires every target
// (VITEST_POOL_ROOTLESS_TARGETS=require) and static launchers
// (VITEST_POOL_ROOTLESS_STATIC=require): what it ships must run on other machines'
// C libraries, and this machine's launcher must be linked with musl (below). CC
// overrides this machine's compiler (and then it alone builds the launcher).
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(fileURLToPath(new URL('..', import.meta.url)))
const flags = ['-O2', '-std=c11', '-Wall', '-Wextra', '-Werror=shadow', '-Wmissing-prototypes', '-Werror=implicit-function-declaration']
const source = (...files) => files.map((file) => join(root, 'native', file))
// What each program is made of. The files the addon shares with the launcher run the same
// steps in a worker's own process: the op loop (ops.c) and what a reset's ops call.
const SHARED_SOURCES = ['plan.c', 'ops.c', 'fail.c', 'fdpass.c', 'mounts.c', 'loopback.c', 'reset.c', 'forward.c', 'connect.c', 'egress.c', 'egress-allow.c', 'sock-diag.c']
const LAUNCHER_SOURCES = ['launcher.c', 'userns.c', 'pidns.c', 'networks.c', 'relay.c', 'control.c', 'served.c', 'publish.c', 'caps.c', ...SHARED_SOURCES]
const ADDON_SOURCES = ['addon.c', 'earlier-networks.c', 'left-helpers.c', 'listeners.c', ...SHARED_SOURCES]
const requireStatic = process.env.VITEST_POOL_ROOTLESS_STATIC === 'require'
const requireTargets = process.env.VITEST_POOL_ROOTLESS_TARGETS === 'require'

/** The compilers of each Linux target: this machine's own `cc`, or a cross compiler. */
const CROSS = { x64: 'x86_64-linux-gnu-gcc', arm64: 'aarch64-linux-gnu-gcc' }
const host = `${process.platform}-${process.arch}`

if (process.argv[2] === '--steps') {
  process.stdout.write(stepsModule())
  process.exit(0)
}
if (process.argv[2] === '--sanitize') {
  const out = resolve(process.argv[3] ?? usage('--sanitize needs an output directory'))
  mkdirSync(out, { recursive: true })
  // a sanitizer's runtime is a shared library: dynamic, the C library's own compiler
  const sanitize = ['-g', '-O1', '-fno-omit-frame-pointer', '-fsanitize=address,undefined', '-fno-sanitize-recover=all']
  build({ name: host, cc: process.env.CC || 'cc', out }, 'launcher', [...flags, ...sanitize], null, source(...LAUNCHER_SOURCES))
  process.exit(0)
}
const outDir = process.argv[2]
if (!outDir && existsSync(join(root, 'src', 'plan'))) {
  const file = join(root, 'src', 'plan', 'steps.ts')
  const text = stepsModule()
  // rewritten only when the list changed: tsc and editors see no needless change
  if (!existsSync(file) || readFileSync(file, 'utf8') !== text) writeFileSync(file, text)
}
const targets = outDir
  ? [{ name: host, cc: process.env.CC || 'cc', out: resolve(outDir) }]
  : [
      { name: host, cc: process.env.CC || 'cc', out: join(root, 'native', 'build', host) },
      ...Object.entries(CROSS)
        .filter(([arch]) => process.platform === 'linux' && arch !== process.arch)
        .map(([arch, cc]) => ({ name: `linux-${arch}`, cc, out: join(root, 'native', 'build', `linux-${arch}`), cross: true })),
    ]

for (const target of targets) {
  if (target.cross && !requireTargets && !found(target.cc)) continue
  mkdirSync(target.out, { recursive: true })
  const launcher = source(...LAUNCHER_SOURCES)
  // Static when the C library allows it: no dynamic loader at each sandbox start, and one
  // binary for every glibc/musl version of the platform. Dynamic otherwise. The addon is
  // loaded into node, so it uses node's C library.
  //
  // musl first, for this machine's launcher: glibc spends about 0.45 ms of every process
  // start probing the CPU (dozens of cpuid instructions, each a trap to the hypervisor on
  // a virtual machine, about 6 µs here), and the launcher is a process of its own before
  // every test file's; a musl program starts in well under 0.1 ms.
  if (!buildWithMusl(target, 'launcher', launcher)) {
    if (requireStatic && !target.cross && !ccIsMusl(target.cc)) {
      console.error(`vitest-pool-rootless: can't build the launcher for ${target.name} with musl (musl-gcc, with the Linux kernel's headers). What the package ships must start fast: install them (Debian/Ubuntu: apt-get install musl-tools linux-libc-dev; Fedora: dnf install musl-gcc kernel-headers).`)
      process.exit(1)
    }
    build(target, 'launcher', [...flags, '-static'], [...flags], launcher)
  }
  build(target, 'rootless.node', [...flags, '-shared', '-fPIC', '-DROOTLESS_ADDON'], null, source(...ADDON_SOURCES))
}

function usage(problem) {
  console.error(`build-native.mjs: ${problem}. Usage: build-native.mjs [OUT_DIR | --steps | --sanitize OUT_DIR]`)
  process.exit(2)
}

function found(cc) {
  return spawnSync(cc, ['--version'], { stdio: 'ignore' }).status === 0
}

/** A compiler whose C library is musl already (Alpine's cc): the glibc-linked build is a musl one. */
function ccIsMusl(cc) {
  return /musl/.test(spawnSync(cc, ['-dumpmachine'], { encoding: 'utf8' }).stdout ?? '')
}

/**
 * Builds a static musl program with musl-gcc, for this machine only (CC set: not at all);
 * false when there is no musl-gcc or it fails. The wrapper sees musl's headers alone, so
 * the kernel's (linux/, asm/, asm-generic/) are put beside them through a scratch
 * directory of links. Messages are shown only at a pack, where this must work.
 */
function buildWithMusl(target, name, sources) {
  if (target.cross || process.env.CC || !found('musl-gcc')) return false
  const triplet = spawnSync('musl-gcc', ['-dumpmachine'], { encoding: 'utf8' }).stdout?.trim()
  const asm = [`/usr/include/${triplet}/asm`, '/usr/include/asm'].find((dir) => existsSync(dir))
  if (!existsSync('/usr/include/linux/nsfs.h') || !existsSync('/usr/include/asm-generic') || !asm) return false
  const headers = mkdtempSync(join(tmpdir(), 'vpr-kernel-headers-'))
  const out = join(target.out, name)
  const tmp = `${out}.${process.pid}.tmp`
  try {
    symlinkSync('/usr/include/linux', join(headers, 'linux'))
    symlinkSync('/usr/include/asm-generic', join(headers, 'asm-generic'))
    symlinkSync(asm, join(headers, 'asm'))
    const result = spawnSync('musl-gcc', [...flags, '-static', '-isystem', headers, '-o', tmp, ...sources], { stdio: requireStatic ? 'inherit' : ['ignore', 'ignore', 'pipe'] })
    if (result.error || result.status !== 0) return false
    renameSync(tmp, out)
    return true
  } finally {
    rmSync(headers, { recursive: true, force: true })
    rmSync(tmp, { force: true })
  }
}

/** Compiles `sources` into target.out/name with `preferred` flags, else `fallback` ones. */
function build(target, name, preferred, fallback, sources) {
  const out = join(target.out, name)
  const tmp = `${out}.${process.pid}.tmp`
  const quiet = fallback && !requireStatic
  let result = spawnSync(target.cc, [...preferred, '-o', tmp, ...sources], { stdio: quiet ? ['ignore', 'ignore', 'pipe'] : 'inherit' })
  if ((result.error || result.status !== 0) && quiet) result = spawnSync(target.cc, [...fallback, '-o', tmp, ...sources], { stdio: 'inherit' })
  if (result.error) {
    const install = target.cross
      ? `Install the cross compiler (Debian/Ubuntu: apt-get install gcc-${target.cc.replace(/-gcc$/, '')} libc6-dev-${target.name === 'linux-arm64' ? 'arm64' : 'amd64'}-cross)`
      : 'Install a C compiler (Debian/Ubuntu: apt-get install gcc; Fedora: dnf install gcc; Alpine: apk add build-base) or point CC at one'
    console.error(`vitest-pool-rootless: can't build the ${name} for ${target.name}: ${target.cc}: ${result.error.message}. ${install}.`)
    process.exit(1)
  }
  if (result.status !== 0) {
    console.error(`vitest-pool-rootless: can't build the ${name} for ${target.name}: ${target.cc} exited with ${result.status} (its messages are above).`)
    process.exit(1)
  }
  // rename is atomic: a concurrent run never sees a half-written binary
  renameSync(tmp, out)
}

/** src/plan/steps.ts, made from the X-macro list in native/steps.h. */
function stepsModule() {
  const header = readFileSync(join(root, 'native', 'steps.h'), 'utf8')
  const rows = [...header.matchAll(/^\s*X\((\w+), (\d+), "([a-z-]+)"\)/gm)].map(([, , code, name]) => `  ${code}: '${name}',`)
  if (rows.length === 0) throw new Error('native/steps.h: no X(SYMBOL, CODE, "name") rows found')
  return `// Generated by scripts/build-native.mjs from native/steps.h (the STEPS list): edit that list.
/**
 * The launcher's exit statuses, one per setup step. A worker that exits with one of
 * these did not get to run the test: the sandbox failed.
 */
export const LAUNCHER_STEPS: Readonly<Record<number, string>> = {
${rows.join('\n')}
}

/** The step name for a launcher exit status, or \`undefined\` if the command itself exited. */
export function launcherStep(exitCode: number | null): string | undefined {
  return exitCode == null ? undefined : LAUNCHER_STEPS[exitCode]
}
`
}
