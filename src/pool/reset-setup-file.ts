import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * A Vitest setup file that calls inside/reset-hook.ts before each test file of a reused
 * worker (isolate: false). For the Vite module runner it is generated outside
 * node_modules on purpose: Vitest re-evaluates inlined setup files before every file,
 * but caches external ones after the first. The worker never reads it from disk (Vitest
 * transforms it here and sends the code over IPC), so `stateDir` may stay hidden under
 * the sandbox's tmpfs.
 */
export function resetSetupFile(stateDir: string, nativeRunner: boolean): string {
  if (nativeRunner) return fileURLToPath(new URL('../inside/reset-setup.js', import.meta.url))
  const file = join(stateDir, 'reset-before-file.mjs')
  if (!existsSync(file)) {
    const hook = new URL('../inside/reset-hook.js', import.meta.url).href
    writeFileSync(file, `import { resetBeforeFile } from ${JSON.stringify(hook)}\nresetBeforeFile()\n`)
  }
  return file
}
