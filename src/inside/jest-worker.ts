// The process Jest's test files run in, inside its sandbox: the Jest adapter (src/jest)
// starts one per concurrent slot through the launcher, greets it with `setup`, and sends
// it one `run` per test file. It runs each file with jest-runner's own worker -- the
// code Jest's default runner runs in its child processes, so environments, transforms,
// snapshots, coverage and test events all behave as Jest's own -- and answers with the
// result. Before each file after the first it rebuilds its sandbox in place
// (SandboxReset): no process, mount, file in the temp dir or socket of an earlier file
// is left when the next one starts, as if the process were new.
import { createRequire } from 'node:module'
import type { FromSandbox, RunMessage, SerializedError, SetupMessage, ToSandbox } from '../wire/wire.js'
import { SandboxReset } from './sandbox-reset.js'

type Worker = (data: unknown) => Promise<unknown>
interface TestWorkerModule {
  setup(data: unknown): void | Promise<void>
  worker: Worker
}

const require = createRequire(import.meta.url)
let ready: Promise<Worker> | undefined
let sandbox: SandboxReset | undefined
let files = 0
// one file at a time, in the order they come
let queue = Promise.resolve()

process.on('message', (message: ToSandbox) => {
  if (message?.type === 'setup') {
    ready = load(message)
    // awaited by the first run; until then, an early failure is no unhandled rejection
    ready.catch(() => {})
  } else if (message?.type === 'run') {
    queue = queue.then(() => run(message))
  }
})
// the host is done with us (or gone): nothing more will come
process.on('disconnect', () => process.exit(0))

async function load(message: SetupMessage): Promise<Worker> {
  // before any test runs: the sandbox as the launcher built it is the one to return to
  sandbox = SandboxReset.fromEnv()
  const testWorker = require(message.testWorker) as TestWorkerModule
  await testWorker.setup(message.setupData)
  // Jest would load these for the first file anyway; a new worker does it while it waits
  for (const path of message.preload) {
    try {
      require(path)
    } catch {}
  }
  return testWorker.worker
}

function run(message: RunMessage): Promise<void> {
  process.env.JEST_WORKER_ID = message.workerId
  const answer = (reply: FromSandbox, then?: () => void) => new Promise<void>((resolve) => process.send!(reply, () => (then ? then() : resolve())))
  let worker: Promise<Worker>
  try {
    if (!ready) throw new Error('vitest-pool-rootless: the Jest worker got no setup message')
    if (files++ > 0) sandbox?.reset()
    worker = ready
  } catch (error) {
    // a sandbox that can't be reset can't serve another file: this one fails, and the
    // process goes, so the next file gets a new one
    return answer({ type: 'error', error: serializeError(error), fatal: true }, () => process.exit(1))
  }
  // chained, not awaited: an await here would show up as a frame of ours at the end of
  // every failing test's async stack, where Jest's own worker frames are filtered out
  return worker
    .then((run) => run(message.data))
    .then(
      (result) => answer({ type: 'result', result, heapUsed: process.memoryUsage().heapUsed }),
      (error: unknown) => answer({ type: 'error', error: serializeError(error) }),
    )
}

/** As jest-runner's worker formats what it throws: a plain object Jest reads as an Error. */
function serializeError(error: unknown): SerializedError {
  if (error !== null && typeof error === 'object') {
    const e = error as { type?: unknown; name?: unknown; message?: unknown; stack?: unknown; code?: unknown }
    const serialized: SerializedError = { type: typeof e.type === 'string' ? e.type : typeof e.name === 'string' ? e.name : 'Error', message: String(e.message ?? '') }
    if (typeof e.stack === 'string') serialized.stack = e.stack
    if (e.code !== undefined) serialized.code = e.code
    return serialized
  }
  return { type: 'Error', message: String(error), stack: String(error) }
}
