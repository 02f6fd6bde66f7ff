import { existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { removeIfEmpty, writablePaths } from '../../src/engine/writable.js'
import type { IdMapPlan } from '../../src/plan/idmap.js'
import { validateSandboxOptions } from '../../src/plan/options.js'
import { createSandboxPlan, launcherArgs } from '../../src/plan/plan.js'

// a project of our own outside the temp dir, as most are
const project = realpathSync(mkdtempSync(join(resolve(import.meta.dirname, '..', '..'), '.vpr-writable-')))
// and a home of our own: the checkout may lie in the real one (CI clones into it), and
// then `~` would hold the project
const home = realpathSync(mkdtempSync(join(tmpdir(), 'vpr-writable-home-')))
const realHome = process.env.HOME
process.env.HOME = home
afterAll(() => {
  process.env.HOME = realHome
  for (const dir of [project, home]) rmSync(dir, { recursive: true, force: true })
})

describe('writablePaths', () => {
  it('resolves entries against the project and the home directory, outermost only, making what is missing', () => {
    mkdirSync(join(project, 'out', 'deep'), { recursive: true })
    const created = new Set<string>()
    const paths = writablePaths(['out', 'out/deep', 'new/dir', '~'], project, [join(project, 'new', 'dir', 'inner')], created)
    expect(paths).toEqual([home, join(project, 'new', 'dir'), join(project, 'out')].sort())
    expect(existsSync(join(project, 'new', 'dir', 'inner'))).toBe(true)
    // made here: new, new/dir, new/dir/inner -- out was there already
    expect([...created].sort()).toEqual([join(project, 'new'), join(project, 'new', 'dir'), join(project, 'new', 'dir', 'inner')])
    writeFileSync(join(project, 'new', 'dir', 'kept'), 'x')
    removeIfEmpty(created)
    // what was written to stays, with the directories that hold it; the empty one goes
    expect(existsSync(join(project, 'new', 'dir', 'kept'))).toBe(true)
    expect(existsSync(join(project, 'new', 'dir', 'inner'))).toBe(false)
    expect(existsSync(join(project, 'out'))).toBe(true)
  })

  it('stops with one error naming `writable` past the launcher\'s limit of writable paths', () => {
    const many = Array.from({ length: 63 }, (_, i) => join(project, 'many', String(i)))
    const created = new Set<string>()
    expect(() => writablePaths(['out'], project, many, created)).toThrow(/^vitest-pool-rootless: option `writable` expects at most 62 paths to keep writable .*64 in all here.*got \["out"\]$/)
    removeIfEmpty(created)
    expect(existsSync(join(project, 'many'))).toBe(false)
  })
})

describe('the plan of a read-only host', () => {
  const idMap: IdMapPlan = { uidMap: [{ inside: 0, outside: 1000, count: 1 }], gidMap: [{ inside: 0, outside: 1000, count: 1 }], helpers: null, mode: 'self' }
  it('asks the launcher for a read-only host with /dev, /proc and the writable paths, kept under a tmpfs', () => {
    const options = validateSandboxOptions({ writable: ['./out'] })
    const temp = options.tmpfs[0]!
    const inTemp = join(temp, 'project', 'out')
    const args = launcherArgs(createSandboxPlan({ options, idMap, writable: [join(project, 'out'), inTemp] }))
    expect(args.join(' ')).toContain(`--read-only --writable /dev --writable /proc --writable ${join(project, 'out')} --writable ${inTemp}`)
    // the one under the temp dir's tmpfs is bound back on it, where the launcher places its writable copy
    expect(args.join(' ')).toContain(`--keep ${inTemp}`)
  })
  it('asks nothing of the kind without `writable`', () => {
    const args = launcherArgs(createSandboxPlan({ options: validateSandboxOptions({}), idMap, writable: ['/x'] }))
    expect(args).not.toContain('--read-only')
    expect(args).not.toContain('--writable')
  })
})
