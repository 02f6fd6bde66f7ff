import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { realpathOrSelf } from '../plan/paths.js'

/** Loose view of a project's Vite dev server: only the field read here. */
export interface ViteServerView {
  config: { server?: { fs?: { allow?: string[] } } }
}

/**
 * A Vitest setup file that calls inside/reset-hook.ts before each test file of a reused
 * worker (isolate: false). For the Vite module runner it is generated outside
 * node_modules on purpose: Vitest re-evaluates inlined setup files before every file,
 * but caches external ones after the first. The worker never reads it from disk (Vitest
 * transforms it here and sends the code over IPC), so `stateDir` may stay hidden under
 * the sandbox's tmpfs.
 *
 * Web environments (jsdom, happy-dom) fetch modules through Vite's client environment,
 * which loads only files inside `server.fs.allow` ("Failed to load url ... Does the file
 * exist?" otherwise); node and edge-runtime use the ssr environment, which doesn't check.
 * So the file itself -- that one path, nothing around it -- is added to the allow list of
 * `vite`, the project's dev server, which Vitest reads on every load.
 */
export function resetSetupFile(stateDir: string, nativeRunner: boolean, vite?: ViteServerView): string {
  if (nativeRunner) return fileURLToPath(new URL('../inside/reset-setup.js', import.meta.url))
  const hook = new URL('../inside/reset-hook.js', import.meta.url).href
  return generated(stateDir, 'reset-before-file.mjs', `import { resetBeforeFile } from ${JSON.stringify(hook)}\nresetBeforeFile()\n`, vite)
}

/**
 * A Vitest `runner` module for a reused worker whose runner is Vitest's own: its test
 * runner with the sandbox reset before each file (inside/reset-runner.ts), which costs
 * less than a setup file. `TestRunner` comes from the Vitest that runs (`distPath`), by
 * its public entry: the class its worker would use. Generated beside the setup file,
 * and served by Vite the same way (so it works with the Vite module runner only).
 */
export function resetRunnerFile(stateDir: string, distPath: string, vite?: ViteServerView): string {
  const vitest = pathToFileURL(join(distPath, 'index.js')).href
  const hook = new URL('../inside/reset-runner.js', import.meta.url).href
  return generated(stateDir, 'reset-runner.mjs', `import { TestRunner } from ${JSON.stringify(vitest)}\nimport { withSandboxReset } from ${JSON.stringify(hook)}\nexport default withSandboxReset(TestRunner)\n`, vite)
}

/**
 * The setup file that fails, at once, a file whose worker crashed, in the worker that
 * runs it next (inside/fail-crashed-file.ts). It runs for one file only, so it needs no
 * generated copy: Node may cache it.
 */
export function failCrashedFile(): string {
  return fileURLToPath(new URL('../inside/fail-crashed-file.js', import.meta.url))
}

/** `name` in the run's state dir, written once with `code`, and served by `vite`. */
function generated(stateDir: string, name: string, code: string, vite?: ViteServerView): string {
  // as Vite compares it: symlinks resolved
  const file = join(realpathOrSelf(stateDir), name)
  if (!existsSync(file)) writeFileSync(file, code)
  if (vite) allowInVite(vite, file)
  return file
}

/** Lets `vite` serve `file` to every environment, once. */
export function allowInVite(vite: ViteServerView, file: string): void {
  const fs = vite.config.server?.fs
  if (!fs) return
  const allow = fs.allow ?? (fs.allow = [])
  if (!allow.includes(file)) allow.push(file)
}
