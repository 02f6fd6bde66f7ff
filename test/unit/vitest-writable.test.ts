import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, dirname, join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { SandboxRun } from '../../src/engine/run.js'
import { vitestWritable, vitestWritableFor } from '../../src/pool/vitest-writable.js'

// The paths a read-only host keeps writable for Vitest's worker: found for a project's test
// files at the start, grown by a file added or changed later (watch mode), each file's
// source read again only when it changed.

let root: string
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'vitest-writable-'))
})
afterEach(() => rmSync(root, { recursive: true, force: true }))

/** A run with `writable` (or none) whose writablePaths returns the runner's paths as given, sorted, and counts its calls. */
function fakeRun(writable: string[] | undefined) {
  const calls: string[][] = []
  const run = {
    options: { writable },
    writablePaths(_projectRoot: string, runnerPaths: readonly string[] = []) {
      calls.push([...runnerPaths])
      return writable ? [...runnerPaths].sort() : undefined
    },
  }
  return { run: run as unknown as SandboxRun, calls }
}

/** A project whose snapshots go to `__snapshots__` next to each file, as Vitest's default resolver puts them. */
function fakeProject(testFiles: string[], coverage?: { enabled: boolean; reportsDirectory: string }) {
  return {
    config: { root },
    getSerializableConfig: () => ({}),
    globTestFiles: async () => ({ testFiles }),
    vitest: {
      snapshot: { resolvePath: (file: string) => join(dirname(file), '__snapshots__', `${basename(file)}.snap`) },
      config: { coverage },
    },
  }
}

function write(relative: string, source: string): string {
  const file = join(root, relative)
  mkdirSync(dirname(file), { recursive: true })
  writeFileSync(file, source)
  return file
}

describe('vitestWritable / vitestWritableFor', () => {
  it('keeps each file\'s snapshot dir, each literal toMatchFileSnapshot dir and the coverage reports dir', async () => {
    const a = write('a.test.ts', "expect(x).toMatchFileSnapshot('./golden/a.txt')\nexpect(y).toMatchFileSnapshot(`${dir}/computed.txt`)\n")
    const b = write('deep/b.test.ts', 'expect(x).toMatchSnapshot()\n')
    const { run } = fakeRun(['./out'])
    const paths = await vitestWritable(run, fakeProject([a, b], { enabled: true, reportsDirectory: join(root, 'coverage') }))
    expect(paths).toEqual([join(root, '__snapshots__'), join(root, 'coverage'), join(root, 'deep', '__snapshots__'), join(root, 'golden')].sort())
  })

  it('gives the same array for files it knows, and a new one for a file added in a directory of its own', async () => {
    const a = write('a.test.ts', 'expect(x).toMatchSnapshot()\n')
    const { run, calls } = fakeRun(['./out'])
    const project = fakeProject([a])
    const first = await vitestWritable(run, project)
    expect(vitestWritableFor(run, project, [a])).toBe(first)
    expect(calls).toHaveLength(1)

    const later = write('later/later.test.ts', 'expect(x).toMatchSnapshot()\n')
    const grown = vitestWritableFor(run, project, [later])
    expect(grown).not.toBe(first)
    expect(grown).toEqual([join(root, '__snapshots__'), join(root, 'later', '__snapshots__')])
    // from then on the project's sandboxes start with it: no new array for either file
    expect(vitestWritableFor(run, project, [a, later])).toBe(grown)
    expect(calls).toHaveLength(2)
  })

  it('reads a known file again only when it changed: a new file snapshot path then counts', async () => {
    const a = write('a.test.ts', 'expect(x).toMatchSnapshot()\n')
    // whole seconds: a time set again reads back the same
    const atime = new Date(1_700_000_000_000)
    const mtime = new Date(1_700_000_000_000)
    utimesSync(a, atime, mtime)
    const { run } = fakeRun(['./out'])
    const project = fakeProject([a])
    const first = await vitestWritable(run, project)

    // new source, same modification time: not read again (a stat per run, not a read)
    writeFileSync(a, "expect(x).toMatchFileSnapshot('./golden/a.txt')\n")
    utimesSync(a, atime, mtime)
    expect(vitestWritableFor(run, project, [a])).toBe(first)

    // the file changed: read again, and its file snapshot's directory is kept
    utimesSync(a, atime, new Date(mtime.getTime() + 2000))
    expect(vitestWritableFor(run, project, [a])).toEqual([join(root, '__snapshots__'), join(root, 'golden')])
  })

  it('gives undefined without writable, and asks for no paths', async () => {
    const a = write('a.test.ts', 'expect(x).toMatchSnapshot()\n')
    const { run, calls } = fakeRun(undefined)
    const project = fakeProject([a])
    expect(await vitestWritable(run, project)).toBeUndefined()
    expect(vitestWritableFor(run, project, [a])).toBeUndefined()
    expect(calls).toEqual([])
  })
})
