import type { JestConsumer } from './consumer.js'
import { startProcess, type LiveRun, type VitestRun } from './vitest-run.js'

export interface JestOptions {
  /** After the fixture's own flags. */
  args?: string[]
  env?: Record<string, string>
  /** Node flags before jest's entry (`--experimental-vm-modules`). */
  nodeArgs?: string[]
  /** stdin an open pipe and CI unset: for `--watchAll`. */
  watch?: boolean
  timeoutMs?: number
}

/** Starts the consumer's Jest on a copied fixture, as the e2e tests run every runner. */
export function startJest(consumer: JestConsumer, root: string, options: JestOptions = {}): LiveRun {
  const argv = [consumer.node, ...(options.nodeArgs ?? []), consumer.jest, '--rootDir', root, ...(options.args ?? [])]
  return startProcess(argv, root, { env: { ...(options.watch ? {} : { CI: 'true' }), ...options.env }, stdin: options.watch, timeoutMs: options.timeoutMs })
}

/** Runs Jest to completion; 150 s at most. */
export async function runJest(consumer: JestConsumer, root: string, options: JestOptions = {}): Promise<VitestRun> {
  const run = startJest(consumer, root, { timeoutMs: 150_000, ...options })
  const exit = await run.closed
  return { ...exit, output: run.output() }
}
