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
//
// The package's `build`/`prepack` scripts run it; `npm pack` requires every target
// (VITEST_POOL_ROOTLESS_TARGETS=require) and static launchers
// (VITEST_POOL_ROOTLESS_STATIC=require): what it ships must run on other machines'
// C libraries. CC overrides this machine's compiler.
import { spawnSync } from 'node:child_process'
import { mkdirSync, renameSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(fileURLToPath(new URL('..', import.meta.url)))
const flags = ['-O2', '-std=c11', '-Wall', '-Wextra', '-Werror=shadow', '-Wmissing-prototypes', '-Werror=implicit-function-declaration']
const source = (...files) => files.map((file) => join(root, 'native', file))
const requireStatic = process.env.VITEST_POOL_ROOTLESS_STATIC === 'require'
const requireTargets = process.env.VITEST_POOL_ROOTLESS_TARGETS === 'require'

/** The compilers of each Linux target: this machine's own `cc`, or a cross compiler. */
const CROSS = { x64: 'x86_64-linux-gnu-gcc', arm64: 'aarch64-linux-gnu-gcc' }
const host = `${process.platform}-${process.arch}`

const outDir = process.argv[2]
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
  // Static when the C library allows it: no dynamic loader at each sandbox start, and one
  // binary for every glibc/musl version of the platform. Dynamic otherwise. The addon is
  // loaded into node, so it uses node's C library.
  build(target, 'launcher', [...flags, '-static'], [...flags], source('launcher.c', 'plan.c', 'layers.c', 'forward.c', 'connect.c'))
  build(target, 'rootless.node', [...flags, '-shared', '-fPIC', '-DROOTLESS_ADDON'], null, source('addon.c', 'plan.c', 'layers.c', 'forward.c', 'connect.c'))
}

function found(cc) {
  return spawnSync(cc, ['--version'], { stdio: 'ignore' }).status === 0
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
