#!/usr/bin/env node
// Compiles the native side into native/build/<platform>-<arch>/ (or OUT_DIR):
//   launcher      the program that builds each sandbox (native/launcher.c)
//   rootless.node the Node-API addon a reused worker resets its sandbox with (native/addon.c)
// Runs from the package's own `build`/`prepack` scripts and, at run time, from
// src/engine/launcher-path.ts when a user's platform has no prebuilt binaries.
// Usage: build-native.mjs [OUT_DIR]
import { spawnSync } from 'node:child_process'
import { mkdirSync, renameSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(fileURLToPath(new URL('..', import.meta.url)))
const outDir = resolve(process.argv[2] ?? join(root, 'native', 'build', `${process.platform}-${process.arch}`))
const cc = process.env.CC || 'cc'
const flags = ['-O2', '-std=c11', '-Wall', '-Wextra', '-Werror=shadow', '-Wmissing-prototypes', '-Werror=implicit-function-declaration']
const source = (...files) => files.map((file) => join(root, 'native', file))

// Static when the C library allows it: no dynamic loader at each sandbox start, and one
// binary for every glibc/musl version of the platform. Dynamic otherwise. `npm pack`
// requires static (VITEST_POOL_ROOTLESS_STATIC=require): what it ships must run on other
// distributions' C libraries. The addon is loaded into node, so it uses node's C library.
const requireStatic = process.env.VITEST_POOL_ROOTLESS_STATIC === 'require'

mkdirSync(outDir, { recursive: true })
build('launcher', [...flags, '-static'], [...flags], source('launcher.c', 'plan.c', 'layers.c'))
build('rootless.node', [...flags, '-shared', '-fPIC'], null, source('addon.c', 'plan.c', 'layers.c'))

/** Compiles `sources` into outDir/name with `preferred` flags, else `fallback` ones. */
function build(name, preferred, fallback, sources) {
  const out = join(outDir, name)
  const tmp = `${out}.${process.pid}.tmp`
  const quiet = fallback && !requireStatic
  let result = spawnSync(cc, [...preferred, '-o', tmp, ...sources], { stdio: quiet ? ['ignore', 'ignore', 'pipe'] : 'inherit' })
  if ((result.error || result.status !== 0) && quiet) result = spawnSync(cc, [...fallback, '-o', tmp, ...sources], { stdio: 'inherit' })
  if (result.error) {
    console.error(`vitest-pool-rootless: can't build the ${name}: ${cc}: ${result.error.message}. Install a C compiler (Debian/Ubuntu: apt-get install gcc; Fedora: dnf install gcc; Alpine: apk add build-base) or point CC at one.`)
    process.exit(1)
  }
  if (result.status !== 0) {
    console.error(`vitest-pool-rootless: can't build the ${name}: ${cc} exited with ${result.status} (its messages are above).`)
    process.exit(1)
  }
  // rename is atomic: a concurrent run never sees a half-written binary
  renameSync(tmp, out)
}
