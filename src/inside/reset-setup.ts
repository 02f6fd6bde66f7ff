// A setup file for Vitest's native module runner (experimental.viteModuleRunner: false),
// which imports setup files from disk with a fresh query each time, so this one runs
// before every file. The Vite module runner gets a generated copy instead (run-state.ts).
import { resetBeforeFile } from './reset-hook.js'

resetBeforeFile()
