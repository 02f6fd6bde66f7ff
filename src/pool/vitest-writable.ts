import { dirname } from 'node:path'
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

const found = new WeakMap<object, Promise<string[] | undefined>>()

/**
 * With `writable` set, what stays writable for a project's workers: the entries, and what
 * Vitest's worker writes itself -- the directory each test file's snapshots go to, as
 * Vitest resolves it (`resolveSnapshotPath` included), and with coverage on its
 * `reportsDirectory` (the coverage provider writes each file's coverage to `.tmp` there
 * from the worker). Once per project and run.
 */
export function vitestWritable(run: SandboxRun, project: ProjectWithSnapshots): Promise<string[] | undefined> {
  if (!run.options.writable) return Promise.resolve(undefined)
  let paths = found.get(project)
  if (!paths) {
    paths = (async () => {
      const { testFiles } = await project.globTestFiles()
      const config = project.serializedConfig ?? project.getSerializableConfig?.()
      const dirs = testFiles.map((file) => dirname(project.vitest.snapshot.resolvePath(file, { config })))
      const coverage = project.vitest.config.coverage
      return run.writablePaths(project.config.root, [...dirs, ...(coverage?.enabled && coverage.reportsDirectory ? [coverage.reportsDirectory] : [])])
    })()
    found.set(project, paths)
  }
  return paths
}
