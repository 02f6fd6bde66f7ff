import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { installRoot, workspaceRoot } from '../../src/engine/needs.js'

describe('installRoot: the node_modules a package was installed into', () => {
  it.each([
    ['npm/yarn, hoisted', '/ws/node_modules/vitest', '/ws/node_modules'],
    ['scoped', '/ws/node_modules/@vitest/spy', '/ws/node_modules'],
    ['nested', '/ws/packages/app/node_modules/vitest', '/ws/packages/app/node_modules'],
    ['pnpm: the node_modules holding .pnpm', '/ws/node_modules/.pnpm/vitest@4.1.12_vite@8.3.8/node_modules/vitest', '/ws/node_modules'],
    ['pnpm, scoped', '/ws/node_modules/.pnpm/@vitest+spy@4.1.12/node_modules/@vitest/spy', '/ws/node_modules'],
    ['outside any node_modules (a linked checkout)', '/home/me/vitest-pool-rootless', undefined],
  ])('%s', (_, dir, expected) => {
    expect(installRoot(dir)).toBe(expected)
  })
})

describe('workspaceRoot', () => {
  const base = mkdtempSync(join(tmpdir(), 'vpr-unit-ws-'))
  afterAll(() => rmSync(base, { recursive: true, force: true }))
  const tree = (name: string, files: Record<string, string>) => {
    const root = join(base, name)
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(join(root, path, '..'), { recursive: true })
      writeFileSync(join(root, path), text)
    }
    mkdirSync(join(root, 'packages', 'app'), { recursive: true })
    return root
  }

  it('finds pnpm-workspace.yaml', () => {
    const root = tree('pnpm', { 'pnpm-workspace.yaml': "packages: ['packages/*']\n", 'packages/app/package.json': '{}' })
    expect(workspaceRoot(join(root, 'packages', 'app'))).toBe(root)
  })

  it('finds package.json workspaces (npm, yarn)', () => {
    const root = tree('npm', { 'package.json': '{"workspaces":["packages/*"]}', 'packages/app/package.json': '{}' })
    expect(workspaceRoot(join(root, 'packages', 'app'))).toBe(root)
  })

  it('is undefined outside a workspace', () => {
    const root = tree('plain', { 'package.json': '{"name":"plain"}' })
    expect(workspaceRoot(join(root, 'packages', 'app'))).toBeUndefined()
  })
})
