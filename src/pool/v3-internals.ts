// Every reliance of the Vitest 3 adapter on something Vitest 3 does not document as
// public API lives here (inside the sandbox, src/inside/vitest3-driver.ts sets tinypool's
// state, and wire/wire.ts uses tinypool's message mark); test/e2e/pool-v3.test.ts checks
// each against a real Vitest 3.2.
// Mirrors Vitest 3.2 (packages/vitest/src/node/pools/forks.ts, pool.ts, runtime/worker.ts,
// utils/config-helpers.ts) and the tinypool 1.x its forks pool runs on.
import { existsSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join, resolve } from 'node:path'

/** Where Vitest 3's own child-process worker code is, from `vitest.distPath`. */
export interface Vitest3Worker {
  /** `<dist>/worker.js`: exports `run(ctx)`, `collect(ctx)`, `teardown()`, what tinypool calls. */
  entry: string
  /** `<dist>/workers/forks.js`: the test runner `entry` loads for the forks pool (`ctx.worker`). */
  runner: string
}

export function vitest3Worker(distPath: string): Vitest3Worker {
  const entry = resolve(distPath, 'worker.js')
  const runner = resolve(distPath, 'workers/forks.js')
  if (!existsSync(entry) || !existsSync(runner)) {
    throw new Error(`vitest-pool-rootless: this Vitest has no worker entry at ${entry} and ${runner}; the Vitest 3 adapter supports Vitest ^3.2 (see src/pool/v3-internals.ts)`)
  }
  return { entry, runner }
}

/** birpc's wire format, as bundled in Vitest 3.2: a request, or the response to one. */
export type RpcMessage = { t: 'q'; m: string; a: unknown[]; i?: string } | { t: 's'; i: string; r?: unknown; e?: unknown }

/** What `utils/config-helpers.ts` does to a config before v8 serialization (undone in the worker). */
export function wrapSerializableConfig<T extends { testNamePattern?: unknown; defines?: unknown }>(config: T): T {
  let testNamePattern = config.testNamePattern
  let defines = config.defines as Record<string, unknown> | undefined
  // v8 serialize does not support regex
  if (testNamePattern && typeof testNamePattern !== 'string') testNamePattern = `$$vitest:${String(testNamePattern)}`
  // v8 serialize drops properties with undefined value
  const wrappedDefines = defines ? { keys: Object.keys(defines), original: defines } : defines
  return { ...config, testNamePattern, defines: wrappedDefines }
}

/** The environment a test file runs in, as Vitest 3's `groupFilesByEnv` decides it. */
export interface Vitest3Environment {
  name: string
  transformMode?: 'web' | 'ssr'
  options: Record<string, unknown> | null
}

interface Picomatch {
  isMatch(path: string, glob: string | string[], options?: object): boolean
}
const picomatches = new Map<string, Picomatch>()
/** Vitest's own `picomatch`, loaded once per Vitest install. */
function picomatchOf(distPath: string): Picomatch {
  let pm = picomatches.get(distPath)
  if (!pm) picomatches.set(distPath, (pm = createRequire(resolve(distPath, '..', 'package.json'))('picomatch') as Picomatch))
  return pm
}

/** What the environment decision reads of a project's config. */
export interface EnvironmentConfigView {
  root: string
  environment?: string
  environmentMatchGlobs?: Array<[string, string]>
  testTransformMode?: { web?: string[]; ssr?: string[] }
}

/**
 * A file's environment: its `@vitest-environment` (or `@jest-environment`) comment, else
 * the first `environmentMatchGlobs` entry it matches, else the project's `environment`;
 * options from `@vitest-environment-options`. `picomatch` is Vitest's own.
 */
export function environmentOf(file: string, config: EnvironmentConfigView, distPath: string): Vitest3Environment {
  const pm = picomatchOf(distPath)
  const code = readFileSync(file, 'utf8')
  let env = /@(?:vitest|jest)-environment\s+([\w-]+)\b/.exec(code)?.[1]
  if (!env) {
    for (const [glob, target] of config.environmentMatchGlobs ?? []) {
      if (pm.isMatch(file, glob, { cwd: config.root })) {
        env = target
        break
      }
    }
  }
  env ||= config.environment || 'node'
  const patterns = config.testTransformMode ?? {}
  const transformMode = patterns.web && pm.isMatch(file, patterns.web) ? 'web' : patterns.ssr && pm.isMatch(file, patterns.ssr) ? 'ssr' : undefined
  let optionsJson = /@(?:vitest|jest)-environment-options\s+(.+)/.exec(code)?.[1]
  // the closing of a docblock the pattern may have taken
  if (optionsJson?.endsWith('*/')) optionsJson = optionsJson.slice(0, -2)
  const options = JSON.parse(optionsJson || 'null') as unknown
  const key = env === 'happy-dom' ? 'happyDOM' : env
  return { name: env, transformMode, options: options ? { [key]: options } : null }
}
