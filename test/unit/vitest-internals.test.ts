import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { forksWorkerEntry, hasForksWorkerEntry, usesNativeModuleRunner, vitestNodeModules } from '../../src/pool/vitest-internals.js'

// What the pool reads of Vitest beyond its public API, checked against the Vitest installed
// here: an upgrade that moves any of it fails this file, not a user's run.
const vitestPackage = dirname(createRequire(import.meta.url).resolve('vitest/package.json'))
const distPath = join(vitestPackage, 'dist')
const version = (JSON.parse(readFileSync(join(vitestPackage, 'package.json'), 'utf8')) as { version: string }).version

describe(`Vitest internals the pool relies on (Vitest ${version})`, () => {
  it('the forks worker entry is <distPath>/workers/forks.js and is what Vitest forks itself', () => {
    expect(forksWorkerEntry(distPath)).toBe(join(distPath, 'workers', 'forks.js'))
    expect(hasForksWorkerEntry(distPath)).toBe(true)
    expect(hasForksWorkerEntry('/nonexistent/dist')).toBe(false)
    // Vitest's own forks pool resolves the same file name from distPath
    const bundled = readFileSync(join(distPath, 'chunks', readdirCliApi(distPath)), 'utf8')
    expect(bundled).toContain('"workers/forks.js"')
  })

  it('distPath is <node_modules>/vitest/dist', () => {
    const nodeModules = vitestNodeModules(distPath)
    expect(existsSync(join(nodeModules, 'vitest', 'package.json'))).toBe(true)
  })

  it('experimental.viteModuleRunner is a config key of this Vitest', () => {
    expect(usesNativeModuleRunner({ experimental: { viteModuleRunner: false } })).toBe(true)
    expect(usesNativeModuleRunner({ experimental: {} })).toBe(false)
    expect(usesNativeModuleRunner(undefined)).toBe(false)
    expect(() => findChunk(distPath, (name, text) => name.endsWith('.d.ts') && /viteModuleRunner\??: boolean/.test(text))).not.toThrow()
  })
})

function readdirCliApi(dist: string): string {
  return findChunk(dist, (name, text) => name.endsWith('.js') && text.includes('class ForksPoolWorker'))
}

function findChunk(dist: string, match: (name: string, text: string) => boolean): string {
  for (const name of readdirSync(join(dist, 'chunks'))) {
    if (match(name, readFileSync(join(dist, 'chunks', name), 'utf8'))) return name
  }
  throw new Error(`no chunk of ${dist} matches`)
}
