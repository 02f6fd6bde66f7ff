import { readFileSync, statSync } from 'node:fs'
import { dirname, isAbsolute, resolve } from 'node:path'
import type { SandboxRun } from '../engine/run.js'

/** What of a Vitest project (3.2, 4, 5) the writable paths are found with: public API of each. */
interface ProjectWithSnapshots {
  config: { root: string }
  serializedConfig?: unknown
  getSerializableConfig?(): unknown
  globTestFiles(): Promise<{ testFiles: string[] }>
  vitest: {
    snapshot: { resolvePath(testPath: string, context: { config: unknown }): string }
    config: { coverage?: { enabled?: boolean; reportsDirectory?: string } }
  }
}

/**
 * A project's writable paths so far, the runner's own paths they were made from, and the
 * test files already read for them (each at its modification time then).
 */
interface ProjectWritable {
  runnerPaths: Set<string>
  paths: string[] | undefined
  read: Map<string, number>
}

const found = new WeakMap<object, Promise<ProjectWritable>>()
const settled = new WeakMap<object, ProjectWritable>()

/**
 * With `writable` set, what stays writable for a project's workers: the entries, and what
 * Vitest's worker writes itself -- for each test file the directory its snapshots go to,
 * as Vitest resolves it (`resolveSnapshotPath` included), and where its
 * `toMatchFileSnapshot('…')` calls with a literal path write -- and with coverage on its
 * `reportsDirectory` (the coverage provider writes each file's coverage to `.tmp` there
 * from the worker). Found for the project's test files when the run starts; a file that
 * came later (watch mode) adds its own with `vitestWritableFor`.
 */
export async function vitestWritable(run: SandboxRun, project: ProjectWithSnapshots): Promise<string[] | undefined> {
  if (!run.options.writable) return undefined
  let state = found.get(project)
  if (!state) {
    state = (async () => {
      const { testFiles } = await project.globTestFiles()
      const coverage = project.vitest.config.coverage
      const read = new Map(testFiles.map((file) => [file, modified(file)]))
      const runnerPaths = new Set([...filesWrite(project, testFiles), ...(coverage?.enabled && coverage.reportsDirectory ? [coverage.reportsDirectory] : [])])
      const own: ProjectWritable = { runnerPaths, paths: run.writablePaths(project.config.root, [...runnerPaths]), read }
      settled.set(project, own)
      return own
    })()
    found.set(project, state)
  }
  return (await state).paths
}

/**
 * The project's writable paths with what `files` write added: the same array when they
 * add nothing (a sandbox made with it serves them), else a new one, which the project's
 * later sandboxes start with too. `vitestWritable` for the project has settled before.
 */
export function vitestWritableFor(run: SandboxRun, project: ProjectWithSnapshots, files: readonly string[]): string[] | undefined {
  const state = settled.get(project)
  if (!run.options.writable || !state) return state?.paths
  // a file read since it last changed writes where it did then: each run of a file in
  // watch mode costs a stat, not another read of its source
  const changed = files.map((file) => [file, modified(file)] as const).filter(([file, time]) => state.read.get(file) !== time)
  for (const [file, time] of changed) state.read.set(file, time)
  const missing = filesWrite(project, changed.map(([file]) => file)).filter((path) => !state.runnerPaths.has(path))
  if (missing.length === 0) return state.paths
  for (const path of missing) state.runnerPaths.add(path)
  state.paths = run.writablePaths(project.config.root, [...state.runnerPaths])
  return state.paths
}

/** Where Vitest's worker writes the snapshots of `files`: each one's snapshot file's directory, and each literal `toMatchFileSnapshot` path's. */
function filesWrite(project: ProjectWithSnapshots, files: readonly string[]): string[] {
  const config = project.serializedConfig ?? project.getSerializableConfig?.()
  return files.flatMap((file) => [dirname(project.vitest.snapshot.resolvePath(file, { config })), ...fileSnapshotDirs(file)])
}

/** A file's modification time; -1 for one that isn't there. */
const modified = (file: string): number => statSync(file, { throwIfNoEntry: false })?.mtimeMs ?? -1

/** `toMatchFileSnapshot('./x/y.txt')` with a plain string: Vitest resolves it against the test file's directory. */
const FILE_SNAPSHOT = /\btoMatchFileSnapshot\(\s*(['"`])([^'"`$\\\n]+)\1/g

/**
 * The directories a test file's `toMatchFileSnapshot` calls write to, where the path is a
 * string literal; one computed at run time can't be known ahead (list it in `writable`).
 */
function fileSnapshotDirs(file: string): string[] {
  let source: string
  try {
    source = readFileSync(file, 'utf8')
  } catch {
    return []
  }
  if (!source.includes('toMatchFileSnapshot')) return []
  return [...source.matchAll(FILE_SNAPSHOT)].map((match) => dirname(isAbsolute(match[2]!) ? match[2]! : resolve(dirname(file), match[2]!)))
}
