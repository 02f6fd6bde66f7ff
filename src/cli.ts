#!/usr/bin/env node
// Only modules that touch nothing at import time are imported statically; the engine and
// the doctor load once a subcommand needs them, after TMPDIR is checked, so `--help`, a
// usage error and a bad TMPDIR answer at once, in one line.
import { accessSync, constants, realpathSync, statSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { RootlessEnvironmentError, RootlessOptionError, RootlessUsageError } from './plan/errors.js'
import { packageVersion } from './engine/launcher-path.js'
import { resolveTempDir, validateSandboxOptions, type ResolvedSandboxOptions } from './plan/options.js'
import { cliFlagTakes, cliInput, cliParseOptions, cliSpell, cliUsageLines, closestName } from './plan/option-specs.js'
import { isInside } from './plan/paths.js'
import { LAUNCHER_STEPS } from './plan/steps.js'

const EXEC_HELP = `  vitest-pool-rootless exec [OPTIONS] -- CMD [ARGS...]
      Run CMD as uid 0 in the same sandbox a test file gets: your own user, mount,
      network, UTS and IPC namespaces, your subuid range mapped, a private tmpfs on
      the temp dir, a private /etc/hosts, loopback only. CMD's exit status is ours
      (127: CMD not found, 126: CMD not executable).

${cliUsageLines()}      -h, --help            this help
`

const DOCTOR_HELP = `  vitest-pool-rootless doctor [--json]
      Check this machine: kernel settings, AppArmor, seccomp, NoNewPrivs, newuidmap,
      /etc/subuid, the launcher, and a live sandbox. Exits 1 if rootless() can't work.

      --json                print the checks as JSON
      -h, --help            this help
`

const PROFILES_HELP = `  vitest-pool-rootless apparmor
      Print an AppArmor profile that lets this launcher create user namespaces where
      AppArmor restricts them (Ubuntu >= 23.10, GitHub's ubuntu-24.04 runners).

  vitest-pool-rootless seccomp
      Print a seccomp profile for containers (docker run --security-opt seccomp=FILE):
      the launcher's system calls allowed, what no test needs denied.
`

const EXAMPLE = `Example, removing files a test chowned to a subordinate uid:
  vitest-pool-rootless exec --no-tmpfs -- rm -rf ./leftover
`

const USAGE = `Usage:
${EXEC_HELP}
${DOCTOR_HELP}
${PROFILES_HELP}
  vitest-pool-rootless --version | --help

${EXAMPLE}`

/** The node binary's directory (`process.execPath` is already free of symlinks). */
const NODE_DIR = dirname(process.execPath)

/** How the CLI ends: an exit status, or the signal that killed the command. */
type Outcome = number | NodeJS.Signals

type Values = Record<string, string | boolean | Array<string | boolean> | undefined>

interface Subcommand {
  usage: string
  /** `parseArgs` options, besides --help/-h and --version/-v. */
  options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }>
  /** Whether it takes a command after `--`. */
  command: boolean
  run(values: Values, positionals: string[]): Promise<Outcome>
}

const SUBCOMMANDS: Record<string, Subcommand> = {
  exec: { usage: `Usage:\n${EXEC_HELP}\n${EXAMPLE}`, options: cliParseOptions(), command: true, run: runExec },
  doctor: {
    usage: `Usage:\n${DOCTOR_HELP}`,
    options: { json: { type: 'boolean' } },
    command: false,
    run: async (values) => {
      resolveTempDir()
      const { runDoctor } = await import('./doctor/doctor.js')
      return runDoctor(values.json === true)
    },
  },
  apparmor: {
    usage: `Usage:\n${PROFILES_HELP}`,
    options: {},
    command: false,
    run: async () => {
      const [{ locateLauncher }, { apparmorProfile }] = await Promise.all([import('./engine/launcher-path.js'), import('./doctor/recipes.js')])
      process.stdout.write(apparmorProfile(realpathSync(locateLauncher())))
      return 0
    },
  },
  seccomp: {
    usage: `Usage:\n${PROFILES_HELP}`,
    options: {},
    command: false,
    run: async () => {
      const { seccompProfile } = await import('./doctor/recipes.js')
      process.stdout.write(seccompProfile())
      return 0
    },
  },
}

/** An error from a subcommand: reported with its name (and usage, for usage errors). */
class SubcommandError extends Error {
  constructor(
    readonly subcommand: string,
    readonly error: unknown,
  ) {
    super(String(error))
  }
}

async function main(argv: string[]): Promise<Outcome> {
  const [name, ...rest] = argv
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const sub = name === 'help' && rest[0] !== undefined ? SUBCOMMANDS[rest[0]] : undefined
    process.stdout.write(sub ? sub.usage : USAGE)
    return name === undefined ? 2 : 0
  }
  if (name === '--version' || name === '-v') {
    process.stdout.write(`${packageVersion()}\n`)
    return 0
  }
  const sub = Object.hasOwn(SUBCOMMANDS, name) ? SUBCOMMANDS[name]! : undefined
  if (!sub) {
    process.stderr.write(`vitest-pool-rootless: unknown command ${JSON.stringify(name)}\n\n${USAGE}`)
    return 2
  }
  try {
    const parsed = parseSubcommand(sub, rest)
    if (parsed === 'help') {
      process.stdout.write(sub.usage)
      return 0
    }
    if (parsed === 'version') {
      process.stdout.write(`${packageVersion()}\n`)
      return 0
    }
    return await sub.run(parsed.values, parsed.positionals)
  } catch (error) {
    throw new SubcommandError(name, error)
  }
}

function parseSubcommand(sub: Subcommand, args: string[]): 'help' | 'version' | { values: Values; positionals: string[] } {
  const options = { ...sub.options, help: { type: 'boolean', short: 'h' }, version: { type: 'boolean', short: 'v' } } as const
  // A lenient pass first: --help anywhere before `--` wins, and a positional before
  // `--` is a forgotten `--` even when later arguments look like options (`exec id -u`).
  const { tokens } = parseArgs({ args, options, strict: false, allowPositionals: true, tokens: true })
  const end = tokens.findIndex((t) => t.kind === 'option-terminator')
  const before = end === -1 ? tokens : tokens.slice(0, end)
  if (before.some((t) => t.kind === 'option' && t.name === 'help')) return 'help'
  if (before.some((t) => t.kind === 'option' && t.name === 'version')) return 'version'
  const unknown = before.find((t) => t.kind === 'option' && !Object.hasOwn(options, t.name))
  const meant = unknown?.kind === 'option' && unknown.rawName.startsWith('--') ? closestName(unknown.name, Object.keys(options)) : undefined
  if (unknown?.kind === 'option' && meant) throw new RootlessUsageError(`Unknown option '${unknown.rawName}'; did you mean --${meant}?`)
  if (sub.command) {
    for (const token of before) {
      // an unknown option before any positional is the error to report
      if (token.kind === 'option' && !Object.hasOwn(options, token.name)) break
      // `--keep -- true`: the flag took "--" (or the next flag) for its value, which makes
      // the command look misplaced; what is missing is the value
      const takes = token.kind === 'option' ? cliFlagTakes(token.name) : undefined
      if (token.kind === 'option' && takes && !token.inlineValue && (token.value === undefined || token.value.startsWith('-'))) {
        throw new RootlessUsageError(`${token.rawName} is missing its value: ${token.rawName} ${takes}, before "--"`)
      }
      if (token.kind === 'positional') {
        throw new RootlessUsageError(`put the command after "--", as in: vitest-pool-rootless exec [OPTIONS] -- ${token.value} ...`)
      }
    }
  }
  const { values, positionals } = parseArgs({ args, options, strict: true, allowPositionals: sub.command })
  if (sub.command && positionals.length === 0) throw new RootlessUsageError('missing the command to run after "--"')
  return { values: values as Values, positionals }
}

async function runExec(values: Values, command: string[]): Promise<Outcome> {
  const input = cliInput(values)
  const options = validateSandboxOptions(input, cliSpell)
  resolveTempDir() // even with --no-tmpfs: the engine keeps its state there
  for (const warning of options.warnings) process.stderr.write(`${warning}\n`)
  const [{ spawn }, { prepareSandbox }, { scrubEnv }, { hostForwardsOnce }, { resolveEgressAllow }, { writablePaths }] = await Promise.all([
    import('node:child_process'),
    import('./engine/sandbox.js'),
    import('./plan/env.js'),
    import('./engine/services.js'),
    import('./engine/egress.js'),
    import('./engine/writable.js'),
  ])
  // names (egress destinations, named services) resolve before anything is built: a name the host can't resolve stops here
  const egressAllow = resolveEgressAllow(options.egress, cliSpell('egress'))
  const forwards = hostForwardsOnce(options, cliSpell('hostPorts'))
  const sandbox = await prepareSandbox(options, undefined, egressAllow)
  if (sandbox.idMap.warning) process.stderr.write(`${sandbox.idMap.warning}\n`)
  try {
    const cwd = process.cwd()
    const env = scrubEnv(process.env, options.dropEnv)
    // the node running this CLI (nvm's, fnm's, volta's under $HOME) stays usable inside,
    // as for a test worker: `exec --tmpfs ~ -- node --test`
    const child = spawn(sandbox.launcher, [...sandbox.args({ needs: [cwd, NODE_DIR], writable: options.writable && writablePaths(options.writable, cwd, [], new Set()), hostForwards: await forwards.forwards }), '--', ...command], { stdio: 'inherit', env })
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
    if (code !== null && LAUNCHER_STEPS[code] === 'exec') return execFailureStatus(command[0]!, env.PATH, cwd, options) ?? code
    return signal ?? code ?? 1
  } finally {
    forwards.close()
    await sandbox.cleanup()
  }
}

/**
 * The launcher exits with its "exec" status when it can't run the command (its message
 * is already printed). Exit like a shell instead: 127 when the command isn't there, 126
 * when it can't be executed. Decided by looking the command up as execvp(3) does, from
 * the host, with what the tmpfs targets hide; `undefined` when it would run (then the
 * status is the command's own).
 */
function execFailureStatus(command: string, path: string | undefined, cwd: string, options: ResolvedSandboxOptions): 126 | 127 | undefined {
  const kept = [cwd, NODE_DIR, ...options.keep]
  const hidden = (file: string) => {
    const real = realpathSync(file)
    return options.tmpfs.some((t) => isInside(real, t)) && !kept.some((k) => real === k || isInside(real, k))
  }
  const candidates = command.includes('/') ? [resolve(cwd, command)] : (path ?? '/bin:/usr/bin').split(':').map((dir) => resolve(cwd, dir || '.', command))
  let denied = false
  for (const file of candidates) {
    try {
      if (hidden(file)) continue
      // inside, /etc/hosts is the sandbox's own, not executable
      if (!statSync(file).isFile() || realpathSync(file) === '/etc/hosts') {
        denied = true
        continue
      }
    } catch {
      continue
    }
    try {
      accessSync(file, constants.X_OK)
      return undefined
    } catch {
      denied = true
    }
  }
  return denied ? 126 : 127
}

/** Our own errors are one line (or a few, for a hint); anything else is a bug: stack. */
function report(error: unknown): number {
  const subcommand = error instanceof SubcommandError ? error.subcommand : undefined
  const cause = error instanceof SubcommandError ? error.error : error
  const prefix = subcommand ? `vitest-pool-rootless ${subcommand}: ` : 'vitest-pool-rootless: '
  if (cause instanceof RootlessUsageError || (cause as { code?: string })?.code?.startsWith('ERR_PARSE_ARGS')) {
    const usage = subcommand ? SUBCOMMANDS[subcommand]!.usage : USAGE
    process.stderr.write(`${prefix}${(cause as Error).message}\n\n${usage}`)
    return 2
  }
  const message = cause instanceof Error ? cause.message : ''
  if (cause instanceof RootlessOptionError || cause instanceof RootlessEnvironmentError || /^vitest-pool-rootless/.test(message)) {
    process.stderr.write(`${message.replace(/^vitest-pool-rootless: /, prefix)}\n`)
    return cause instanceof RootlessEnvironmentError ? 2 : 1
  }
  process.stderr.write(`${String((cause as Error)?.stack ?? cause)}\n`)
  return 1
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
    process.exitCode = report(error)
  },
)
