import { spawn } from 'node:child_process'
import { closeSync, openSync } from 'node:fs'
import type { Socket } from 'node:net'
import { SandboxError } from '../plan/errors.js'
import type { IdMapPlan } from '../plan/idmap.js'
import { idMapArgs } from '../plan/plan.js'
import { launcherStep } from '../plan/steps.js'
import { egressArg, type EgressHelper } from '../plan/egress.js'

/** A mapped user namespace, held open by an fd, that launchers join with `--userns-fd`. */
export interface HeldUserNamespace {
  /** An fd of this process on `/proc/<holder>/ns/user`; pass it into each launcher. */
  readonly fd: number
  /** The holder's socket for network namespaces made ahead (`--networks`), if it serves one. */
  readonly networksSocket?: string
  /** Releases the namespace (the kernel frees it when the last sandbox in it ends). */
  close(): void
}

const READY_TIMEOUT_MS = 10_000
const READY = 'ready\n'

/**
 * Creates the run's user namespace once, with the full id map: the expensive
 * newuidmap/newgidmap step then happens once per run instead of once per worker.
 *
 * A launcher in `--hold` mode creates and maps the namespace, then a nested one with the
 * same ids that every sandbox of the run locks its mounts with, and says "ready"; we
 * open its `/proc/<pid>/ns/user` (the nested one: launchers find the mapped one as its
 * parent) while it provably still runs (it is our unreaped child, so its pid can't have
 * been reused). The fd alone keeps both namespaces alive.
 *
 * Without `networksSocket`, the holder is let go at once: no holder process outlives this call.
 * With it (a socket path in the run's private state dir), the holder stays until
 * `close()`, making network namespaces ahead and handing each to one launcher that asks
 * there (`--networks`): making one and bringing its lo up is the largest step of a
 * sandbox's setup. It ends when its stdin does: at `close()`, or with this process
 * (it also has PR_SET_PDEATHSIG), and it never holds the run open.
 */
export async function holdUserNamespace(launcher: string, idMap: IdMapPlan, networksSocket?: string, egress?: EgressHelper): Promise<HeldUserNamespace> {
  // with egress, each namespace made ahead gets its helper before it is handed out
  const networks = networksSocket ? ['--networks', networksSocket, ...(egress ? ['--egress', egressArg(egress)] : [])] : []
  const holder = spawn(launcher, [...idMapArgs(idMap), '--hold', ...networks], { stdio: ['pipe', 'pipe', 'pipe'], cwd: '/' })
  let stderr = ''
  holder.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => holder.once('close', (c, s) => resolve([c, s])))
  try {
    let timer: NodeJS.Timeout | undefined
    await new Promise<void>((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS)
      // the launcher says exactly "ready\n" once the namespace is mapped; anything else
      // (or an early end of output) is not readiness
      let said = ''
      holder.stdout.setEncoding('utf8').on('data', (d: string) => {
        said += d
        if (said === READY) resolve()
        else if (!READY.startsWith(said)) reject(new Error(`said ${JSON.stringify(said)} instead of "ready"`))
      })
      holder.once('error', reject)
      holder.once('exit', () => reject(new Error('exited before it was ready')))
    }).finally(() => clearTimeout(timer))
    if (holder.exitCode !== null || holder.signalCode !== null) throw new Error('exited before its namespace was opened')
    const fd = openSync(`/proc/${holder.pid}/ns/user`, 'r')
    if (networksSocket) {
      holder.unref()
      for (const stream of [holder.stdin, holder.stdout, holder.stderr]) (stream as Socket).unref()
    } else {
      holder.stdin.end()
      await exited
    }
    let open = true
    return {
      fd,
      ...(networksSocket ? { networksSocket } : {}),
      close() {
        if (open) {
          closeSync(fd)
          holder.stdin.end()
        }
        open = false
      },
    }
  } catch (cause) {
    holder.kill('SIGKILL')
    const [code] = await exited
    const step = launcherStep(code) ?? 'hold'
    throw new SandboxError(`vitest-pool-rootless: can't create the warm user namespace (${step}): ${stderr.trim() || (cause as Error).message}`, {
      step,
      exitCode: code,
      cause,
    })
  }
}
