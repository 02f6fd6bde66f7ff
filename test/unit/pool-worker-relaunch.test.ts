import { fork, type ChildProcess } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, dirname, join } from 'node:path'
import { PassThrough } from 'node:stream'
import { afterEach, beforeEach, expect, it } from 'vitest'
import type { PoolOptions } from 'vitest/node'
import { trackExit, type LaunchSpec, type SandboxRun } from '../../src/engine/run.js'
import { RootlessPoolWorker } from '../../src/pool/worker.js'

// Vitest 4/5's transport replaces its sandboxed worker when a file needs a writable path
// the sandbox wasn't made with (a test file added in watch mode). When that new sandbox
// can't be made, Vitest hears it as the worker's error (it fails the request and stops
// the worker), the old worker runs nothing of the file, and nothing is left running.
// The sandbox is a plain child process here: what is under test is the transport.

let root: string
const children: ChildProcess[] = []
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'pool-worker-relaunch-'))
})
afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGKILL')
  rmSync(root, { recursive: true, force: true })
})

/** Vitest's worker, as far as the transport sees it: answers `start`, echoes the rest. */
const WORKER = `process.on('message', (message) => {
  if (message.type === 'start') process.send({ __vitest_worker_response__: true, type: 'started' })
  else process.send({ __vitest_worker_response__: true, type: 'got', got: message.type })
})
`

function write(relative: string, source: string): string {
  const file = join(root, relative)
  mkdirSync(dirname(file), { recursive: true })
  writeFileSync(file, source)
  return file
}

it('fails the request with why the new sandbox could not be made; the old worker runs nothing of it and stops', async () => {
  const worker = write('worker.mjs', WORKER)
  const distPath = join(root, 'dist')
  write('dist/workers/forks.js', '')
  const first = write('a.test.ts', 'expect(x).toMatchSnapshot()\n')
  const refused = new Error('the sandbox could not be made (as a step would fail)')
  const launched: LaunchSpec[] = []
  const run = {
    options: { writable: ['./out'], network: 'isolated' },
    stateDir: root,
    watchProjects() {},
    writablePaths: (_root: string, runnerPaths: readonly string[] = []) => [...runnerPaths].sort(),
    async launch(spec: LaunchSpec) {
      launched.push(spec)
      if (launched.length > 1) throw refused
      const child = fork(worker, [], { stdio: ['pipe', 'pipe', 'pipe', 'ipc'] })
      children.push(child)
      trackExit(child, new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal }))))
      return child
    },
  } as unknown as SandboxRun
  const config = { root, isolate: true, maxWorkers: 1, setupFiles: [] }
  const options = {
    distPath,
    env: {},
    execArgv: [],
    project: {
      name: '',
      config,
      vite: {},
      getSerializableConfig: () => ({}),
      globTestFiles: async () => ({ testFiles: [first] }),
      vitest: {
        logger: { outputStream: new PassThrough(), errorStream: new PassThrough() },
        config: { root },
        snapshot: { resolvePath: (file: string) => join(dirname(file), '__snapshots__', `${basename(file)}.snap`) },
      },
    },
  } as unknown as PoolOptions
  const transport = new RootlessPoolWorker(options, run, 0)
  const messages: Array<{ type: string; got?: string }> = []
  const errors: unknown[] = []
  transport.on('message', (message: { type: string }) => messages.push(message))
  transport.on('error', (error: unknown) => errors.push(error))
  await transport.start()
  expect(launched[0]!.writable).toEqual([join(root, '__snapshots__')])
  const start = { __vitest_worker_request__: true, type: 'start', context: { config: {} } }
  transport.send(start as never)
  await expect.poll(() => messages.map((m) => m.type)).toEqual(['started'])

  // a file added since, in a directory of its own: a new sandbox is asked for, with its path
  const later = write('later/later.test.ts', 'expect(x).toMatchSnapshot()\n')
  transport.send({ __vitest_worker_request__: true, type: 'run', context: { files: [{ filepath: later }] } } as never)
  // sent while the new one starts: held for it, never given to the old one
  transport.send({ __vitest_worker_request__: true, type: 'cancel' } as never)
  await expect.poll(() => errors).toEqual([refused])
  expect(launched[1]!.writable).toEqual([join(root, '__snapshots__'), join(root, 'later', '__snapshots__')])
  // Vitest then stops the worker it has: the old one, which got neither message
  await new Promise((resolve) => setTimeout(resolve, 200))
  expect(messages.map((m) => m.got ?? m.type)).toEqual(['started'])
  await transport.stop()
  expect(children[0]!.exitCode !== null || children[0]!.signalCode !== null).toBe(true)
})
