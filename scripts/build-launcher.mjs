#!/usr/bin/env node
// Compiles native/launcher.c into native/build/<platform>-<arch>/launcher.
// Runs from the package's own `prepare`/`prepack` (npm runs those for the root
// package) and, at run time, from src/engine/launcher-path.ts when a user's platform has
// no prebuilt binary. Usage: build-launcher.mjs [OUT_FILE]
import { spawnSync } from 'node:child_process'
import { mkdirSync, renameSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const out = resolve(process.argv[2] ?? join(root, 'native', 'build', `${process.platform}-${process.arch}`, 'launcher'))
const cc = process.env.CC || 'cc'
const flags = ['-O2', '-std=c11', '-Wall', '-Wextra', '-Werror=shadow', '-Wmissing-prototypes', '-Werror=implicit-function-declaration']

mkdirSync(dirname(out), { recursive: true })
const tmp = `${out}.${process.pid}.tmp`
const source = join(root, 'native', 'launcher.c')
// Static when the C library allows it: no dynamic loader at each sandbox start, and
// one binary for every glibc/musl version of the platform. Dynamic otherwise.
// `npm pack` requires static (VITEST_POOL_ROOTLESS_STATIC=require): what it ships must
// run on other distributions' C libraries.
const requireStatic = process.env.VITEST_POOL_ROOTLESS_STATIC === 'require'
let result = spawnSync(cc, [...flags, '-static', '-o', tmp, source], { stdio: requireStatic ? 'inherit' : ['ignore', 'ignore', 'pipe'] })
if ((result.error || result.status !== 0) && !requireStatic) result = spawnSync(cc, [...flags, '-o', tmp, source], { stdio: 'inherit' })
if (result.error) {
  console.error(`vitest-pool-rootless: can't build the launcher: ${cc}: ${result.error.message}. Install a C compiler (Debian/Ubuntu: apt-get install gcc; Fedora: dnf install gcc; Alpine: apk add build-base) or point CC at one.`)
  process.exit(1)
}
if (result.status !== 0) {
  console.error(`vitest-pool-rootless: can't build the launcher: ${cc} exited with ${result.status} (its messages are above).`)
  process.exit(1)
}
// rename is atomic: a concurrent run never sees a half-written binary
renameSync(tmp, out)
