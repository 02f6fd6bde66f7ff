import { fork, type ChildProcess } from 'node:child_process'
import { setGracefulCleanup } from 'tmp-promise'
import { explainFailure } from '../doctor/diagnose.js'
import { scrubEnv } from '../ns/env.js'
import { SandboxError } from '../ns/errors.js'
import { createWarmUserNamespace, type WarmUserNamespace } from './holder.js'
import type { ResolvedSandboxOptions } from '../ns/options.js'
import { prepareSandbox, runSandboxed, type PreparedSandbox } from './sandbox.js'
import { createResetPlan, createSandboxPlan } from '../ns/plan.js'
import { launcherStep } from '../ns/steps.js'
import { RESET_ENV, type ResetPlan } from '../ns/reset-plan.js'
import { SparePool } from './spares.js'

// the state directory (hosts file) goes when the Vitest process exits, however it exits
setGracefulCleanup()

/** Where a worker's launcher finds the warm user namespace fd: after stdin/out/err and IPC. */
const USERNS_FD_INDEX = 4

/** What a worker process needs to be started; equal specs can share spares. */
export interface WorkerSpec {
  entrypoint: string
  execArgv: string[]
  env: Partial<NodeJS.ProcessEnv>
  /** Paths the worker reads that must stay visible under a tmpfs. */
  needs: string[]
  /** Vitest reuses the worker across files (isolate: false): reset the sandbox between them. */
  reusable: boolean
}

/** The run's sandbox, once prepared: how to start one sandboxed process. */
interface Ready {
  sandbox: PreparedSandbox
  userns?: WarmUserNamespace
}

/** Run-wide settings of `rootless()` beyond the sandbox itself. */
export interface RunSettings {
  /** Join one pre-mapped user namespace instead of mapping ids per worker. */
  warmUserNamespace: boolean
}

/**
 * Per-run work shared by every worker of one `rootless()` pool: decide the id maps,
 * write the hosts file, create the warm user namespace, prove once that a sandbox can
 * be built here, and keep spare workers booted. A machine that can't build a sandbox
 * fails the first worker with one clear error instead of every file crashing alike.
 */
export class RunState {
  private ready?: Promise<Ready>
  private readyNow?: Ready
  private readonly spares: SparePool

  constructor(
    readonly options: ResolvedSandboxOptions,
    readonly settings: RunSettings,
  ) {
    this.spares = new SparePool((spec) => this.forkNow(spec))
  }

  /**
   * A started, sandboxed worker process for `spec`: a booted spare if one waits,
   * else a new one. Either way, spares for the next files are topped up.
   */
  async launch(spec: WorkerSpec, spares: number): Promise<ChildProcess> {
    await this.prepare()
    const child = this.spares.take(spec) ?? this.forkNow(spec)
    this.spares.fill(spec, spares)
    return child
  }

  private prepare(): Promise<Ready> {
    this.ready ??= this.doPrepare()
    return this.ready
  }

  /** The run's private state directory (hosts file, generated files); prepares the run. */
  async stateDir(): Promise<string> {
    return (await this.prepare()).sandbox.stateDir
  }

  private async doPrepare(): Promise<Ready> {
    const sandbox = await prepareSandbox(this.options)
    if (sandbox.idMap.warning) process.stderr.write(`${sandbox.idMap.warning}\n`)
    let userns: WarmUserNamespace | undefined
    if (this.settings.warmUserNamespace) {
      try {
        userns = await createWarmUserNamespace(sandbox.launcher, sandbox.idMap)
      } catch (error) {
        // fresh namespaces still work; say why this run is slower, once
        process.stderr.write(`${(error as Error).message}\nvitest-pool-rootless: creating a fresh user namespace per worker instead.\n`)
      }
    }
    const ready = { sandbox, userns }
    await probeSandbox(ready)
    this.readyNow = ready
    return ready
  }

  private forkNow(spec: WorkerSpec): ChildProcess {
    const { sandbox, userns } = this.readyNow!
    let env = scrubEnv(spec.env, this.options.dropEnv)
    const needs = spec.needs
    if (spec.reusable) {
      // read by reset-hook.ts inside the worker, before each file after the first
      const plan: ResetPlan = createResetPlan(createSandboxPlan({ options: this.options, idMap: sandbox.idMap, needs }), sandbox.hosts)
      env = { ...env, [RESET_ENV]: JSON.stringify(plan) }
    }
    return fork(spec.entrypoint, [], {
      execPath: sandbox.launcher,
      // fork() runs `execPath ...execArgv entrypoint`: the launcher's plan, then node
      execArgv: [...launcherArgs({ sandbox, userns }, needs), '--', process.execPath, ...spec.execArgv],
      env,
      stdio: ['pipe', 'pipe', 'pipe', 'ipc', ...(userns ? [userns.fd] : [])],
      serialization: 'advanced',
    })
  }
}

function launcherArgs({ sandbox, userns }: Ready, needs: string[]): string[] {
  return sandbox.args({ needs, newSession: true, usernsFd: userns ? USERNS_FD_INDEX : undefined })
}

/**
 * Builds one sandbox around `node --version`: the same plan a worker gets, and proof
 * that the node binary is reachable inside it, without paying for a V8 start.
 */
async function probeSandbox(ready: Ready): Promise<void> {
  const args = launcherArgs(ready, [process.execPath])
  const fds = ready.userns ? [ready.userns.fd] : []
  const { code, signal, stderr } = await runSandboxed(ready.sandbox.launcher, args, [process.execPath, '--version'], fds)
  if (code === 0) return
  const step = launcherStep(code) ?? 'probe'
  throw new SandboxError(
    `vitest-pool-rootless: can't build the test sandbox on this machine (${step} failed, exit ${code ?? signal}).\n${stderr.trim()}\n` +
      // the doctor's words for what is wrong with this machine
      `${explainFailure(step, stderr)}`,
    { step, exitCode: code, signal },
  )
}
