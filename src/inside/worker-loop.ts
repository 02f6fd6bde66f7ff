// The loop of every worker process whose loop we own (the Jest runner's and Vitest 3's;
// Vitest 4/5 run their own): the engine's worker farm starts it through the launcher,
// greets it with `setup` and sends one `run` per test file (src/wire/wire.ts). It hands
// each file to the runner's inside driver -- which runs it with that runner's own worker
// code -- and answers `done`. Before each file after the first it rebuilds its sandbox
// in place (SandboxReset): no process, mount, temp file or socket of an earlier file is
// left when the next one starts, as if the process were new.
import { isWireMessage, marked, serializeError, type AnswerMessage, type LoopDriver, type RunMessage, type SetupMessage } from '../wire/wire.js'
import { SandboxReset } from './sandbox-reset.js'

/** The runner's half inside the sandbox: sets itself up once, then runs one file at a time. */
export interface InsideDriver {
  setup(data: unknown): Promise<void> | void
  /** Runs one file; resolves with what the host's driver makes a result of. */
  run(job: unknown, file: { slot: number; last: boolean }): Promise<unknown>
}

const drivers: Record<LoopDriver, () => Promise<{ driver: InsideDriver }>> = {
  jest: () => import('./jest-driver.js'),
  vitest3: () => import('./vitest3-driver.js'),
}

let ready: Promise<InsideDriver> | undefined
let reset: SandboxReset | undefined
let files = 0
// one file at a time, in the order they come
let queue = Promise.resolve()

process.on('message', (message: unknown) => {
  if (!isWireMessage(message)) return
  if (message.type === 'setup') {
    ready = setUp(message)
    // awaited by the first run; until then, an early failure is no unhandled rejection
    ready.catch(() => {})
  } else if (message.type === 'run') {
    queue = queue.then(() => run(message))
  }
})
// the host is done with us (or gone): nothing more will come
process.on('disconnect', () => process.exit(0))

async function setUp(message: SetupMessage): Promise<InsideDriver> {
  // before any test runs: the sandbox as the launcher built it is the one to return to
  reset = SandboxReset.fromEnv()
  const { driver } = await drivers[message.driver]()
  await driver.setup(message.data)
  return driver
}

function run(message: RunMessage): Promise<void> {
  const answer = (reply: Pick<AnswerMessage, 'result' | 'error' | 'fatal'>, exitAfter: boolean) =>
    new Promise<void>((resolve) =>
      process.send!(marked({ type: 'done', ...reply, heapUsed: process.memoryUsage().heapUsed }), () => (exitAfter ? process.exit(reply.fatal ? 1 : 0) : resolve())),
    )
  let driver: Promise<InsideDriver>
  try {
    if (!ready) throw new Error('vitest-pool-rootless: the worker got no setup message')
    if (files++ > 0) reset?.reset()
    driver = ready
  } catch (error) {
    // a sandbox that can't be reset can't serve another file: this one fails, and the
    // process goes, so the next file gets a new one
    return answer({ error: serializeError(error), fatal: true }, true)
  }
  // chained, not awaited: an await here would show up as a frame of ours at the end of
  // every failing test's async stack, where the runner's own worker frames are filtered out
  return driver
    .then((inside) => inside.run(message.job, { slot: message.slot, last: message.last }))
    .then(
      (result) => answer({ result }, message.last),
      (error: unknown) => answer({ error: serializeError(error) }, message.last),
    )
}
