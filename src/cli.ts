#!/usr/bin/env node
import { spawn } from 'node:child_process'
import { parseArgs } from 'node:util'
import { RootlessOptionError } from './ns/errors.js'
import { packageVersion } from './engine/launcher-path.js'
import { validateSandboxOptions, type SandboxOptions } from './ns/options.js'
import { prepareSandbox } from './engine/sandbox.js'
import { scrubEnv } from './ns/env.js'
import { runDoctor } from './doctor/doctor.js'

const USAGE = `Usage:
  vitest-pool-rootless exec [OPTIONS] -- CMD [ARGS...]
      Run CMD as uid 0 in the same sandbox a test file gets: your own user, mount,
      network, UTS and IPC namespaces, your subuid range mapped, a private tmpfs on
      the temp dir, a private /etc/hosts, loopback only. CMD's exit status is ours.

      --host NAME=IP        add an /etc/hosts entry (repeatable)
      --hosts-file PATH     start /etc/hosts from this file
      --hostname NAME       hostname inside the sandbox
      --tmpfs PATH          private tmpfs on PATH (repeatable; default: the temp dir)
      --no-tmpfs            no tmpfs at all (e.g. to remove files a test left in /tmp)
      --tmpfs-size SIZE     size limit of each tmpfs, e.g. 512m
      --keep PATH           keep PATH visible under a tmpfs (repeatable)
      --no-subids           map only your own uid/gid, not your /etc/subuid range
      --network MODE        isolated (default) or host
      --no-pid-namespace    share the host's pid namespace (no init, no /proc of its own)
      --drop-env NAME       don't pass NAME (or a prefix: AWS_*) to CMD (repeatable)

  vitest-pool-rootless doctor [--json]
      Check this machine: kernel settings, AppArmor, seccomp, NoNewPrivs, newuidmap,
      /etc/subuid, the launcher, and a live sandbox. Exits 1 if rootless() can't work.

  vitest-pool-rootless --version | --help

Example, removing files a test chowned to a subordinate uid:
  vitest-pool-rootless exec --no-tmpfs -- rm -rf ./leftover
`

const CLI_NAMES: Record<string, string> = {
  hosts: '--host',
  hostsFile: '--hosts-file',
  hostname: '--hostname',
  tmpfs: '--tmpfs',
  tmpfsSize: '--tmpfs-size',
  keep: '--keep',
  subids: '--no-subids',
  network: '--network',
  pidNamespace: '--no-pid-namespace',
  dropEnv: '--drop-env',
}

/** How the CLI ends: an exit status, or the signal that killed the command. */
type Outcome = number | NodeJS.Signals

async function main(argv: string[]): Promise<Outcome> {
  const [command, ...rest] = argv
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE)
    return command === undefined ? 2 : 0
  }
  if (command === '--version') {
    process.stdout.write(`${packageVersion()}\n`)
    return 0
  }
  if (command === 'exec') return runExec(rest)
  if (command === 'doctor') {
    const { values } = parseArgs({ args: rest, options: { json: { type: 'boolean' } }, strict: true })
    return runDoctor(values.json ?? false)
  }
  process.stderr.write(`vitest-pool-rootless: unknown command ${JSON.stringify(command)}\n\n${USAGE}`)
  return 2
}

async function runExec(args: string[]): Promise<Outcome> {
  const { values, positionals, tokens } = parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    tokens: true,
    options: {
      host: { type: 'string', multiple: true },
      'hosts-file': { type: 'string' },
      hostname: { type: 'string' },
      tmpfs: { type: 'string', multiple: true },
      'no-tmpfs': { type: 'boolean' },
      'tmpfs-size': { type: 'string' },
      keep: { type: 'string', multiple: true },
      'no-subids': { type: 'boolean' },
      network: { type: 'string' },
      'no-pid-namespace': { type: 'boolean' },
      'drop-env': { type: 'string', multiple: true },
    },
  })
  // Everything after `--` is the command; nothing before it may be a positional, so
  // a forgotten `--` is an error rather than a guess at where options end.
  const terminator = tokens.findIndex((t) => t.kind === 'option-terminator')
  const early = tokens.find((t, i) => t.kind === 'positional' && (terminator === -1 || i < terminator))
  if (early) throw new UsageError(`put the command after "--", as in: vitest-pool-rootless exec [OPTIONS] -- ${early.kind === 'positional' ? early.value : ''} ...`)
  if (positionals.length === 0) throw new UsageError('missing the command to run after "--"')
  if (values['no-tmpfs'] && values.tmpfs) throw new UsageError('--tmpfs and --no-tmpfs exclude each other')

  const input: SandboxOptions = {
    hosts: parseHostFlags(values.host ?? []),
    hostsFile: values['hosts-file'],
    hostname: values.hostname,
    tmpfs: values['no-tmpfs'] ? false : values.tmpfs,
    tmpfsSize: values['tmpfs-size'],
    keep: values.keep,
    subids: values['no-subids'] ? false : 'auto',
    network: values.network as SandboxOptions['network'],
    pidNamespace: values['no-pid-namespace'] ? false : undefined,
    dropEnv: values['drop-env'],
  }
  const options = validateSandboxOptions(dropUndefined(input), (key) => CLI_NAMES[key] ?? key)
  const sandbox = await prepareSandbox(options)
  if (sandbox.idMap.warning) process.stderr.write(`${sandbox.idMap.warning}\n`)
  try {
    const needs = [process.cwd()]
    const env = scrubEnv(process.env, options.dropEnv)
    const child = spawn(sandbox.launcher, [...sandbox.args({ needs }), '--', ...positionals], { stdio: 'inherit', env })
    // A terminal's ^C already reaches the command (same process group): stay alive for
    // its exit status, but don't deliver it twice. Other senders' signals are passed on.
    const fromTerminal = process.stdin.isTTY === true
    const forward = (signal: NodeJS.Signals) => {
      if (!(fromTerminal && (signal === 'SIGINT' || signal === 'SIGQUIT'))) child.kill(signal)
    }
    for (const signal of ['SIGTERM', 'SIGHUP', 'SIGINT', 'SIGQUIT'] as const) process.on(signal, forward)
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
      child.once('error', reject)
      child.once('exit', (c, s) => resolve([c, s]))
    })
    return signal ?? code ?? 1
  } finally {
    await sandbox.cleanup()
  }
}

function parseHostFlags(flags: string[]): Record<string, string[]> | undefined {
  if (flags.length === 0) return undefined
  const hosts: Record<string, string[]> = {}
  for (const flag of flags) {
    const eq = flag.indexOf('=')
    if (eq <= 0) throw new RootlessOptionError('--host', flag, 'expects NAME=IP')
    const name = flag.slice(0, eq)
    hosts[name] = [...(hosts[name] ?? []), flag.slice(eq + 1)]
  }
  return hosts
}

function dropUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T
}

class UsageError extends Error {
  override readonly name = 'UsageError'
}

main(process.argv.slice(2)).then(
  (outcome) => {
    if (typeof outcome === 'string') {
      // die by the same signal, so a shell or CI sees "killed by SIGx", not an exit code
      process.removeAllListeners(outcome)
      process.kill(process.pid, outcome)
      return
    }
    process.exitCode = outcome
  },
  (error: unknown) => {
    if (error instanceof UsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`vitest-pool-rootless exec: ${(error as Error).message}\n\n${USAGE}`)
      process.exitCode = 2
      return
    }
    const message = error instanceof Error && /^vitest-pool-rootless/.test(error.message) ? error.message : String((error as Error)?.stack ?? error)
    process.stderr.write(`${message}\n`)
    process.exitCode = 1
  },
)
