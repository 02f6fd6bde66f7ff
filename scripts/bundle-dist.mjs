#!/usr/bin/env node
// Bundles tsc's ES modules in dist/ into a few files (the package's `build` runs it after
// tsc). Why: Node loads each module of a graph on its own, and once Vitest's module
// loader is active a module costs far more than its size -- loading our ~50 modules was
// the largest part of a run's fixed cost (about 35 ms of `vitest run` on a one-file
// project); bundled, the config's import is a handful of files.
//
// What stays as it was: the declarations (*.d.ts, *.d.cts), the CommonJS entries
// (jest/index.cjs, runtime.cjs), and every file another process or Vitest loads by path
// (the sandbox's entry, the worker loop, the setup files, Vitest 3's pool module): each is
// an entry point at its own path. Code two entries share goes to dist/chunks/, so a
// module's state exists once per process, as with tsc's output.
//
// Every bundled file sits one folder below dist/, as tsc's modules did (dist/engine/…):
// paths built from `import.meta.url` ('../inside/…', the package root two levels up) keep
// pointing where they did. So the top-level entries (index.js, cli.js) are one-line
// re-exports of their bundles in dist/chunks/.
import { build } from 'esbuild'
import { mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const dist = join(root, 'dist')
const out = join(root, 'dist.bundle')

// Each build: output name (under dist/, no extension) -> tsc's module. Entries that one
// process may load together share their code through chunks (`split`); the others are
// whole files. (Module state that must be one per process across builds -- the ports
// `forwardHostPort()` registers -- lives on `globalThis`.)
const BUILDS = [
  {
    // the runner's process: Vitest's config and Vitest 3's pool module, Jest's runner
    split: true,
    entries: {
      'chunks/index': 'index.js',
      // by path: Vitest 3 loads the pool module a config names (pool/v3.ts writes it)
      'pool/v3': 'pool/v3.js',
      // by path: jest/index.cjs require()s it
      'jest/runner': 'jest/runner.js',
    },
  },
  {
    // inside the sandbox, by path: the launcher's node runs these, Vitest loads the setup
    // files; the launcher tests run the reset (sandbox-reset) in a sandbox of their own
    split: true,
    entries: Object.fromEntries(['entry', 'worker-loop', 'reset-setup', 'reset-hook', 'reset-runner', 'leak-runner', 'fail-crashed-file', 'sandbox-reset'].map((name) => [`inside/${name}`, `inside/${name}.js`])),
  },
  // processes of their own: the command line; the repo's benchmark and install test
  { split: false, entries: { 'chunks/cli': 'cli.js' } },
  { split: false, entries: { 'chunks/internals': 'internals.js' } },
  { split: false, entries: { 'engine/launcher-path': 'engine/launcher-path.js' } },
]

rmSync(out, { recursive: true, force: true })
await Promise.all(
  BUILDS.map(({ split, entries }, i) =>
    build({
      entryPoints: Object.fromEntries(Object.entries(entries).map(([name, file]) => [name, join(dist, file)])),
      outdir: out,
      bundle: true,
      splitting: split,
      format: 'esm',
      platform: 'node',
      target: 'node20',
      // dependencies (vitest, jest-runner, ...) are the user's, resolved at run time
      packages: 'external',
      // one name space of chunks per build
      chunkNames: `chunks/${i}-[name]-[hash]`,
      logLevel: 'warning',
    }),
  ),
)

// tsc's ES modules go; declarations and CommonJS stay
for (const file of readdirSync(dist, { recursive: true, withFileTypes: true })) {
  if (file.isFile() && file.name.endsWith('.js')) rmSync(join(file.parentPath, file.name))
}
for (const entry of readdirSync(out, { withFileTypes: true })) {
  const from = join(out, entry.name)
  if (!entry.isDirectory()) renameSync(from, join(dist, entry.name))
  else {
    mkdirSync(join(dist, entry.name), { recursive: true })
    for (const file of readdirSync(from)) renameSync(join(from, file), join(dist, entry.name, file))
  }
}
rmSync(out, { recursive: true, force: true })
writeFileSync(join(dist, 'index.js'), `export * from './chunks/index.js'\nexport { default } from './chunks/index.js'\n`)
writeFileSync(join(dist, 'cli.js'), `#!/usr/bin/env node\nimport './chunks/cli.js'\n`, { mode: 0o755 })
