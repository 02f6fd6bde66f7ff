// The process a Vitest 3 test file runs in, inside its sandbox: the Vitest 3 adapter
// (src/pool/v3.ts) starts it through the launcher, greets it with `load` (a spare loads
// Vitest's test runner while it waits) and sends `run` for a file. It runs the file with
// Vitest's own worker code (`worker.js`, what tinypool runs in Vitest 3's forks pool)
// and answers `done`; under isolate: true it exits then, otherwise it waits for the next
// file (whose sandbox the reset setup file rebuilds first).
import { isOurs, marked, tinypoolState, type RunFileMessage } from '../wire/wire.js'

interface WorkerModule {
  run(ctx: unknown): Promise<void>
  collect(ctx: unknown): Promise<void>
  teardown?(): Promise<void>
}

let loading: Promise<unknown> | undefined
let worker: Promise<WorkerModule> | undefined
let queue = Promise.resolve()

process.on('message', (message: unknown) => {
  if (!isOurs(message)) return
  if (message.type === 'load') {
    loading = import(message.runner)
    loading.catch(() => {})
  } else if (message.type === 'run') {
    queue = queue.then(() => run(message))
  }
})
process.on('disconnect', () => process.exit(0))

async function run(message: RunFileMessage): Promise<void> {
  let error: { name: string; message: string; stack?: string } | undefined
  try {
    await loading
    // Vitest's pool id comes from tinypool's state, read when worker.js first loads
    ;(process as unknown as { __tinypool_state__?: object }).__tinypool_state__ ??= tinypoolState(message.poolId)
    worker ??= import(message.entry) as Promise<WorkerModule>
    const module = await worker
    await module[message.method](message.ctx)
    if (message.last) await module.teardown?.()
  } catch (e) {
    const err = e as Error
    error = { name: err?.name ?? 'Error', message: String(err?.message ?? e), stack: err?.stack }
  }
  process.send!(marked({ type: 'done' as const, error }), () => {
    if (message.last) process.exit(0)
  })
}
