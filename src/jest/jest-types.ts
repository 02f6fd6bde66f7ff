// The parts of Jest's objects the adapter reads, typed structurally: the adapter builds
// without Jest installed, and a Jest-only project needs no Vitest (nor the reverse).
// Field names as in @jest/types (Config.ProjectConfig, Config.GlobalConfig) and
// @jest/test-result (Test), 29.7 and 30.x.

/** A project's config (`Config.ProjectConfig`); sent to the sandbox whole. */
export interface ProjectConfigView {
  id: string
  rootDir: string
  roots: string[]
  cacheDirectory: string
  testEnvironment: string
  testRunner: string
  transform: Array<[string, string, unknown]>
  [key: string]: unknown
}

/** `Config.GlobalConfig`; sent to the sandbox whole. */
export interface GlobalConfigView {
  rootDir: string
  maxWorkers: number
  detectOpenHandles?: boolean
  workerThreads?: boolean
  /** Bytes (normalized by Jest) of heap after which a worker is replaced. */
  workerIdleMemoryLimit?: number | string
  [key: string]: unknown
}

/** A test file and the project it belongs to (`Test`). */
export interface TestView {
  path: string
  context: {
    config: ProjectConfigView
    moduleMap: { toJSON(): unknown }
  }
}

/** What the scheduler passes as the runner's second argument. */
export interface RunnerContextView {
  changedFiles?: Set<string>
  sourcesRelatedToTestsInChangedFiles?: Set<string>
}

/** `TestWatcher`: watch mode interrupts a run when files change. */
export interface TestWatcherView {
  isInterrupted(): boolean
  on(event: 'change', listener: (state: { interrupted: boolean }) => void): unknown
}
