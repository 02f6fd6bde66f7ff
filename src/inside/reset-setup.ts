// A setup file for Vitest's native module runner (experimental.viteModuleRunner: false),
// which imports setup files from disk with a fresh query each time, so this one runs
// before every file. The Vite module runner gets a generated copy instead, or, with
// Vitest's own runner, no setup file at all (pool/reset-setup-file.ts).
import { resetBeforeFile } from './reset-hook.js'

resetBeforeFile()
