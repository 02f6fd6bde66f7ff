import { chownSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { findForeignOwned, foreignIds, foreignOwnedReport, OUTSIDE_LIMITS, outsideRoots } from '../../src/engine/foreign-files.js'

// The walk and the report, with the caller's own ids standing in for "foreign" ones: a
// test can't make files of a subordinate id without a sandbox (the e2e suite does that).

describe('foreignIds: what a sandbox maps besides the caller', () => {
  it('leaves out the line that maps the caller alone', () => {
    expect(foreignIds([{ inside: 0, outside: 1000, count: 1 }, { inside: 1, outside: 100000, count: 65536 }], 1000)).toEqual([[100000, 65536]])
    expect(foreignIds([{ inside: 0, outside: 1000, count: 1 }], 1000)).toEqual([])
  })
})

describe('findForeignOwned', () => {
  const base = mkdtempSync(join(tmpdir(), 'vpr-foreign-'))
  afterAll(() => rmSync(base, { recursive: true, force: true }))
  const uid = process.geteuid!()
  const me: Array<[number, number]> = [[uid, 1]]
  const nobody: Array<[number, number]> = [[4_000_000_000, 1]]

  it('finds matching paths, the top-most only, and never looks into node_modules or .git', () => {
    const root = join(base, 'project')
    mkdirSync(join(root, 'out', 'deep'), { recursive: true })
    mkdirSync(join(root, 'node_modules', 'pkg'), { recursive: true })
    writeFileSync(join(root, 'out', 'deep', 'f'), '')
    writeFileSync(join(root, 'top'), '')
    symlinkSync('/nonexistent', join(root, 'link'))
    // every entry is "foreign" here: only what is directly under the root is reported
    const found = findForeignOwned([root], me, nobody).map((f) => f.path).sort()
    expect(found).toEqual(['link', 'node_modules', 'out', 'top'].map((n) => join(root, n)))
  })

  it('finds nothing when no id matches, and descends to check', () => {
    expect(findForeignOwned([base], nobody, nobody)).toEqual([])
  })

  it('matches by group as well as by owner', () => {
    const root = join(base, 'by-group')
    mkdirSync(root)
    writeFileSync(join(root, 'g'), '')
    expect(findForeignOwned([root], nobody, [[process.getegid!(), 1]]).map((f) => f.path)).toEqual([join(root, 'g')])
  })
})

describe('findForeignOwned outside the projects: bounded, and this run\'s only', () => {
  const base = mkdtempSync(join(tmpdir(), 'vpr-foreign-outside-'))
  afterAll(() => rmSync(base, { recursive: true, force: true }))
  const uid = process.geteuid!()
  const nobody: Array<[number, number]> = [[4_000_000_000, 1]]
  const FAR = 3_999_999_999

  // files of another id than the caller's: only root can make them without a sandbox
  it.runIf(uid === 0)('goes no deeper than maxDepth, skips the projects, and stops after maxEntries (as root: it chowns)', () => {
    const home = join(base, 'home')
    mkdirSync(join(home, 'a', 'b', 'c'), { recursive: true })
    mkdirSync(join(home, 'project'), { recursive: true })
    const files = [join(home, 'a', 'b', 'three-deep'), join(home, 'a', 'b', 'c', 'four-deep'), join(home, 'project', 'in-project')]
    for (const file of files) writeFileSync(file, ''), chownSync(file, FAR, FAR)
    const far: Array<[number, number]> = [[FAR, 1]]
    expect(findForeignOwned([home], far, nobody, { maxDepth: 3, skip: [join(home, 'project')] }).map((f) => f.path)).toEqual([files[0]])
    expect(findForeignOwned([home], far, nobody, { maxDepth: 4 }).map((f) => f.path).sort()).toEqual([...files].sort())
    expect(findForeignOwned([home], far, nobody, { maxEntries: 2 })).toEqual([])
  })

  it('names only paths whose status changed since the run opened', () => {
    const dir = join(base, 'since')
    mkdirSync(dir)
    writeFileSync(join(dir, 'f'), '')
    const now = Date.now()
    expect(findForeignOwned([dir], [[uid, 1]], nobody, { changedSince: now - 60_000 }).map((f) => f.path)).toEqual([join(dir, 'f')])
    expect(findForeignOwned([dir], [[uid, 1]], nobody, { changedSince: now + 60_000 })).toEqual([])
  })

  it('looks a few levels deep, no more than a run can afford', () => {
    expect(OUTSIDE_LIMITS).toEqual({ maxDepth: 3, maxEntries: 20_000 })
  })

  it("takes the home only when it is the user's own directory, and /var/tmp and /dev/shm where they exist", () => {
    const home = join(base, 'own-home')
    mkdirSync(home)
    const shared = ['/var/tmp', '/dev/shm'].filter((p) => outsideRoots('/nonexistent').includes(p))
    expect(outsideRoots(home, uid)).toEqual([home, ...shared])
    expect(outsideRoots(home, uid + 1)).toEqual(shared)
    expect(outsideRoots('/', 0)).toEqual(shared)
    expect(outsideRoots(join(base, 'missing'), uid)).toEqual(shared)
  })
})

describe('foreignOwnedReport', () => {
  it('names each path and gives the two commands, paths quoted for the shell', () => {
    const text = foreignOwnedReport([
      { path: '/p/out', uid: 101000, gid: 101000 },
      { path: "/p/it's here", uid: 100999, gid: 1000 },
    ])
    expect(text).toContain('tests left 2 paths in the project owned by ids only the sandbox maps')
    expect(text).toContain('  /p/out (uid 101000, gid 101000)')
    expect(text).toContain("npx vitest-pool-rootless exec --no-tmpfs -- chown -R 0:0 /p/out '/p/it'\\''s here'")
    expect(text).toContain("npx vitest-pool-rootless exec --no-tmpfs -- rm -rf /p/out '/p/it'\\''s here'")
  })

  it('says where the paths are when they are outside the project', () => {
    expect(foreignOwnedReport([{ path: '/home/u/x', uid: 101000, gid: 101000 }], 'outside the project')).toContain(
      "tests left 1 path outside the project owned by ids only the sandbox maps; your user can't change or remove it:\n  /home/u/x (uid 101000, gid 101000)",
    )
  })
})
