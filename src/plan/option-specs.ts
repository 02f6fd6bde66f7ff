import { readFileSync, realpathSync, statSync } from 'node:fs'
import { isIP } from 'node:net'
import { tmpdir } from 'node:os'
import { isAbsolute, normalize } from 'node:path'
import { RootlessEnvironmentError, RootlessOptionError, RootlessUsageError } from './errors.js'
import { validateEgressList } from './egress.js'
import { parsePortFlags, validateHostPorts } from './host-ports.js'
import { HOST_NAME } from './hosts.js'
import { isInside } from './paths.js'
import type { PoolOnlyOptions, SandboxOptions } from './options.js'

export type { PortForward } from './host-ports.js'

/**
 * The option table: every option of `rootless()` and `vitest-pool-rootless exec`,
 * described once. The known-key lists, validation, the CLI's `parseArgs` config, its
 * usage lines and the mapping from flags to options are all derived from it.
 *
 * Adding an option: a field with JSDoc in `SandboxOptions` (or `PoolOnlyOptions`), an
 * entry here (the table's type makes forgetting either a compile error), then whatever
 * consumes the resolved value (the plan, the launcher) and a test.
 */

/** Where an option can be given: `rootless({...})` and/or `vitest-pool-rootless exec`. */

/** One command-line flag of an option. */
export type CliFlag<In> =
  /** `--name VALUE`, given once; `toInput` turns the text into the option's value (default: the text). */
  | { name: string; takes: string; multiple?: false; help?: string; toInput?: (value: string, flag: string) => In }
  /** `--name VALUE`, repeatable; `toInput` turns all the texts into the option's value (default: the array). */
  | { name: string; takes: string; multiple: true; help?: string; toInput?: (values: string[], flag: string) => In }
  /** `--no-name`: a boolean flag that sets the option to `sets`. */
  | { name: `no-${string}`; sets: In; help?: string }

/** What a `resolve` function gets besides the value. */
export interface ResolveContext {
  /** The option as the user spells it here: `hostsFile` (pool) or `--hosts-file` (CLI). */
  option: string
  /** How the user spells any option key. */
  spell(key: string): string
  /** Records a one-line warning for the caller to print once. */
  warn(message: string): void
  /** Values validation derives for the engine besides the options themselves. */
  derived: { hostsBase?: string; tmpfsDirs?: string[] }
}

interface SpecBase {
  /** One line: what the option does (usage text; the default for flags without `help`). */
  summary: string
  /**
   * Validates the value as given (`undefined` when absent: apply the default) and
   * returns the resolved value. Throws a RootlessOptionError naming `context.option`.
   */
  resolve(value: unknown, context: ResolveContext): unknown
}

/** One row of the table. Pool-only options have no flags; CLI options need at least one. */
export type OptionSpec<In> = SpecBase &
  (
    | { surfaces: readonly ['pool']; cli?: undefined }
    | { surfaces: readonly ['pool', 'cli'] | readonly ['cli']; cli: readonly [CliFlag<In>, ...CliFlag<In>[]] }
  )

type SpecTable<Options> = { [K in keyof Options]-?: OptionSpec<Exclude<Options[K], undefined>> }

// ---------------------------------------------------------------------------------
// The table

/** Options that describe the sandbox: `rootless()` and `exec` both take them. */
export const SANDBOX_SPECS = {
  hosts: {
    summary: 'add an /etc/hosts entry',
    surfaces: ['pool', 'cli'],
    cli: [{ name: 'host', takes: 'NAME=IP', multiple: true, toInput: parseHostFlags }],
    resolve: validateHosts,
  },
  hostsFile: {
    summary: 'add the entries of this hosts file to /etc/hosts',
    surfaces: ['pool', 'cli'],
    cli: [{ name: 'hosts-file', takes: 'PATH' }],
    resolve: validateHostsFile,
  },
  hostname: {
    summary: 'hostname inside the sandbox',
    surfaces: ['pool', 'cli'],
    cli: [{ name: 'hostname', takes: 'NAME' }],
    resolve: (value, { option }) => (value === undefined ? undefined : validateHostname(value, option)),
  },
  tmpfs: {
    summary: 'private tmpfs on PATH, as well as on /tmp and the temp dir',
    surfaces: ['pool', 'cli'],
    cli: [
      { name: 'tmpfs', takes: 'PATH', multiple: true },
      { name: 'no-tmpfs', sets: false, help: 'no tmpfs, not even on the temp dir (e.g. to remove files a test left there)' },
    ],
    resolve: validateTmpfs,
  },
  tmpfsSize: {
    summary: 'size limit of each tmpfs, e.g. 512m, 2g, 1t or 50%',
    surfaces: ['pool', 'cli'],
    cli: [{ name: 'tmpfs-size', takes: 'SIZE' }],
    resolve: (value, { option }) => (value === undefined ? undefined : validateSize(value, option)),
  },
  keep: {
    summary: 'keep PATH visible under a tmpfs',
    surfaces: ['pool', 'cli'],
    cli: [{ name: 'keep', takes: 'PATH', multiple: true }],
    resolve: validateKeep,
  },
  subids: {
    summary: "map your /etc/subuid and /etc/subgid ranges ('auto') or only your own ids (false)",
    surfaces: ['pool', 'cli'],
    cli: [{ name: 'no-subids', sets: false, help: 'map only your own uid/gid, not your /etc/subuid range' }],
    resolve: (value, { option }) => oneOf(value === undefined ? 'auto' : value, option, ['auto', false] as const),
  },
  network: {
    summary: 'isolated (default), egress (isolated, plus outbound connections) or host',
    surfaces: ['pool', 'cli'],
    cli: [{ name: 'network', takes: 'MODE' }],
    resolve: (value, { option }) => oneOf(value === undefined ? 'isolated' : value, option, ['isolated', 'egress', 'host'] as const),
  },
  egress: {
    summary: "with it, egress reaches only these: host names (resolved when the run starts), addresses, CIDR ranges; implies --network egress",
    surfaces: ['pool', 'cli'],
    cli: [{ name: 'egress', takes: 'DEST', multiple: true }],
    resolve: (value, { option }) => validateEgressList(value, option),
  },
  hostPorts: {
    summary: "reach the host's loopback PORT inside, at PORT (or INSIDE:HOST, FROM-TO, or the service NAME:PORT)",
    surfaces: ['pool', 'cli'],
    cli: [{ name: 'host-port', takes: 'PORT', multiple: true, toInput: parsePortFlags }],
    resolve: (value, { option }) => validateHostPorts(value, option),
  },
  pidNamespace: {
    summary: 'run under a small init in a pid namespace of its own',
    surfaces: ['pool', 'cli'],
    cli: [{ name: 'no-pid-namespace', sets: false, help: "share the host's pid namespace (no init, no /proc of its own)" }],
    resolve: (value, { option }) => oneOf(value === undefined ? true : value, option, [true, false] as const),
  },
  permissions: {
    summary: "bypass (default): uid 0 ignores file permissions; enforce: it sees them, as an ordinary owner",
    surfaces: ['pool', 'cli'],
    cli: [{ name: 'permissions', takes: 'MODE' }],
    resolve: (value, { option }) => oneOf(value === undefined ? 'bypass' : value, option, ['bypass', 'enforce'] as const),
  },
  dropEnv: {
    summary: "don't pass NAME (or a prefix: AWS_*) to CMD",
    surfaces: ['pool', 'cli'],
    cli: [{ name: 'drop-env', takes: 'NAME', multiple: true }],
    resolve: (value, { option }) => validateEnvNames(value, option),
  },
  writable: {
    summary: "make the host read-only but PATH (relative to the project, ~/ for home; the tmpfs, snapshots and runner caches stay writable)",
    surfaces: ['pool', 'cli'],
    cli: [{ name: 'writable', takes: 'PATH', multiple: true }],
    resolve: (value, { option }) => validateWritable(value, option),
  },
} satisfies SpecTable<SandboxOptions>

/** Options of the pool itself. */
export const POOL_ONLY_SPECS = {
  warm: {
    summary: 'booted spare workers to keep waiting, 0 to 64',
    surfaces: ['pool'],
    resolve: (value, { option }): number | undefined => {
      if (value !== undefined && !(typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 64)) {
        throw new RootlessOptionError(option, value, 'expects a whole number of spare workers from 0 to 64')
      }
      return value
    },
  },
  runnerPorts: {
    summary: "reach the test runner's own listening ports (globalSetup servers) inside",
    surfaces: ['pool'],
    resolve: (value, { option }) => oneOf(value === undefined ? true : value, option, [true, false] as const),
  },
  fallback: {
    summary: "where the sandbox can't be built: 'error' (stop) or 'unsandboxed' (run the ordinary way)",
    surfaces: ['pool'],
    resolve: (value, { option }) => oneOf(value === undefined ? 'error' : value, option, ['error', 'unsandboxed'] as const),
  },
  leaks: {
    summary: "what a test file left running when it ended: 'report' (one line each), 'fail' (the file fails) or 'ignore'",
    surfaces: ['pool'],
    resolve: (value, { option }) => oneOf(value === undefined ? 'report' : value, option, ['report', 'fail', 'ignore'] as const),
  },
} satisfies SpecTable<PoolOnlyOptions>

/** The whole table, in order: sandbox options first. */
export const OPTION_SPECS = { ...SANDBOX_SPECS, ...POOL_ONLY_SPECS }

export type OptionKey = keyof typeof OPTION_SPECS

// ---------------------------------------------------------------------------------
// The command line, derived from the table

type AnyFlag = CliFlag<unknown>

/** The options that have flags, with their flags, in table order. */
function cliRows(): Array<[OptionKey, readonly AnyFlag[]]> {
  return (Object.keys(OPTION_SPECS) as OptionKey[]).flatMap((key) => {
    const spec = OPTION_SPECS[key] as { cli?: readonly AnyFlag[] }
    return spec.cli ? [[key, spec.cli] as [OptionKey, readonly AnyFlag[]]] : []
  })
}

/** The keys `vitest-pool-rootless exec` takes. */
export const CLI_OPTION_KEYS: readonly OptionKey[] = cliRows().map(([key]) => key)

/** The option as the CLI spells it in messages: its first flag (`--hosts-file`); other keys as they are. */
export function cliSpell(key: string): string {
  const flags = (OPTION_SPECS as Record<string, { cli?: readonly AnyFlag[] }>)[key]?.cli
  return flags ? `--${flags[0]!.name}` : key
}

/**
 * How the user writes option `key` set to `value`, in the words of where it was given:
 * `network: 'host'` and `tmpfs: false` in a config, `--network host` and `--no-tmpfs` on
 * the command line.
 */
export function spellSetting(spell: (key: string) => string, key: string, value: string | boolean): string {
  const spelt = spell(key)
  if (!spelt.startsWith('--')) return `${spelt}: ${typeof value === 'string' ? `'${value}'` : String(value)}`
  const flags = (OPTION_SPECS as Record<string, { cli?: readonly AnyFlag[] }>)[key]?.cli ?? []
  const negation = flags.find((flag) => 'sets' in flag && flag.sets === value)
  return negation ? `--${negation.name}` : `${spelt} ${value}`
}

/**
 * The known name a mistyped one most likely meant: the same but for case, or at most
 * two edits away (one for short names). Undefined when nothing is that close.
 */
export function closestName(name: string, known: readonly string[]): string | undefined {
  const wanted = name.toLowerCase()
  let best: { name: string; distance: number } | undefined
  for (const candidate of known) {
    const distance = editDistance(wanted, candidate.toLowerCase())
    if (distance <= (wanted.length > 5 ? 2 : 1) && (!best || distance < best.distance)) best = { name: candidate, distance }
  }
  return best?.name
}

/** Levenshtein distance, with a swap of two neighbours counted as one edit. */
function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)))
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1)
    }
  }
  return d[a.length]![b.length]!
}

/** What a value-taking flag takes, as its usage line names it (`--keep` → `PATH`). */
export function cliFlagTakes(name: string): string | undefined {
  for (const [, flags] of cliRows()) for (const flag of flags) if (flag.name === name && 'takes' in flag) return flag.takes
  return undefined
}

/** `util.parseArgs` options for every flag in the table. */
export function cliParseOptions(): Record<string, { type: 'string' | 'boolean'; multiple?: boolean }> {
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }> = {}
  for (const [, flags] of cliRows()) {
    for (const flag of flags) options[flag.name] = 'sets' in flag ? { type: 'boolean' } : { type: 'string', ...(flag.multiple ? { multiple: true } : {}) }
  }
  return options
}

/** Usage lines for every flag in the table, indented by `indent`. */
export function cliUsageLines(indent = '      '): string {
  const lines: string[] = []
  for (const [key, flags] of cliRows()) {
    for (const flag of flags) {
      const left = 'sets' in flag ? `--${flag.name}` : `--${flag.name} ${flag.takes}`
      const help = `${flag.help ?? OPTION_SPECS[key].summary}${'multiple' in flag && flag.multiple ? ' (repeatable)' : ''}`
      lines.push(`${indent}${left.padEnd(21)} ${help}`)
    }
  }
  return `${lines.join('\n')}\n`
}

/**
 * Turns `parseArgs` values into options input (keys as in `SandboxOptions`), ready for
 * validation. Two flags of one option (`--tmpfs` and `--no-tmpfs`) exclude each other.
 */
export function cliInput(values: Record<string, string | boolean | Array<string | boolean> | undefined>): Record<string, unknown> {
  const input: Record<string, unknown> = {}
  for (const [key, flags] of cliRows()) {
    const given = flags.filter((flag) => values[flag.name] !== undefined)
    if (given.length > 1) throw new RootlessUsageError(`${given.map((f) => `--${f.name}`).join(' and ')} exclude each other`)
    const flag = given[0]
    if (!flag) continue
    const raw = values[flag.name]
    if ('sets' in flag) {
      if (raw === true) input[key] = flag.sets
    } else if (flag.toInput) {
      input[key] = (flag.toInput as (value: unknown, flag: string) => unknown)(raw, `--${flag.name}`)
    } else {
      input[key] = raw
    }
  }
  return input
}

function parseHostFlags(flags: string[], option: string): Record<string, string[]> {
  const hosts: Record<string, string[]> = {}
  for (const flag of flags) {
    const eq = flag.indexOf('=')
    if (eq <= 0 || isIP(flag.slice(eq + 1)) === 0) throw new RootlessOptionError(option, flag, 'expects NAME=IP, with an IPv4 or IPv6 address')
    const name = flag.slice(0, eq)
    hosts[name] = [...(hosts[name] ?? []), flag.slice(eq + 1)]
  }
  return hosts
}

// ---------------------------------------------------------------------------------
// Validators

/** The kernel's limits (at most 64 bytes, no "/", no NUL) and the `hosts` name rules (labels of letters, digits, "-", "_"). */
const UTS_NAME = /^(?=.{1,64}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?)*$/

function validateHosts(value: unknown, { option }: ResolveContext): Map<string, string[]> {
  const hosts = new Map<string, string[]>()
  if (value === undefined) return hosts
  if (!isPlainObject(value)) throw new RootlessOptionError(option, value, 'expects an object that maps host names to IP addresses')
  for (const [name, ips] of Object.entries(value)) {
    if (!HOST_NAME.test(name)) {
      throw new RootlessOptionError(option, name, 'expects host names of letters, digits, "-", "_" and "." (no spaces, not empty, at most 253 characters)')
    }
    const list = typeof ips === 'string' ? [ips] : ips
    if (!Array.isArray(list) || list.length === 0 || !list.every((ip) => typeof ip === 'string' && isIP(ip) !== 0)) {
      throw new RootlessOptionError(option, { [name]: ips }, `expects "${name}" to map to an IPv4/IPv6 address or a non-empty array of them`)
    }
    hosts.set(name.toLowerCase().replace(/\.$/, ''), [...new Set(list as string[])])
  }
  return hosts
}

/** At most this many dropped lines are listed one by one; the rest are counted. */
const MAX_LINE_WARNINGS = 5

/**
 * Reads the hosts file now, so a file that can't be read stops the run at config load
 * with the option's name. Lines that are not `IP name...` are dropped with a warning
 * (file:line); comments and blank lines are kept.
 */
function validateHostsFile(value: unknown, { option, warn, derived }: ResolveContext): string | undefined {
  if (value === undefined) return undefined
  const path = existingPath(value, option, 'file')
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (error) {
    throw new RootlessOptionError(option, value, `expects a readable file, but reading it failed (${errnoReason(error)})`)
  }
  const kept: string[] = []
  const dropped: string[] = []
  text.split(/\r?\n/).forEach((line, index) => {
    const content = line.replace(/#.*/, '').trim()
    if (content !== '') {
      const [ip, ...names] = content.split(/[ \t]+/)
      if (names.length === 0 || isIP(ip!) === 0 || !names.every((name) => HOST_NAME.test(name))) {
        dropped.push(`${path}:${index + 1}: ${JSON.stringify(line.length > 80 ? `${line.slice(0, 77)}...` : line)}`)
        return
      }
    }
    kept.push(line)
  })
  for (const where of dropped.slice(0, MAX_LINE_WARNINGS)) {
    warn(`vitest-pool-rootless: \`${option}\` line dropped, not "IP name...": ${where}`)
  }
  if (dropped.length > MAX_LINE_WARNINGS) warn(`vitest-pool-rootless: \`${option}\`: ${dropped.length - MAX_LINE_WARNINGS} more lines of ${path} dropped, not "IP name..."`)
  derived.hostsBase = kept.join('\n').trimEnd()
  return path
}

function validateHostname(value: unknown, option: string): string {
  if (typeof value !== 'string' || !UTS_NAME.test(value)) {
    throw new RootlessOptionError(option, value, 'expects 1 to 64 letters, digits, "-", "_" or ".", in labels separated by single dots, none starting or ending with "-"')
  }
  return value
}

/** The launcher takes at most 64 of each list; kept paths also carry the worker's own. */
const MAX_TMPFS = 16
const MAX_KEEP = 32

/** What each system directory is for, said when a tmpfs would hide it. */
const SYSTEM_DIRS: ReadonlyArray<[string, string]> = [
  ['/dev', 'device nodes such as /dev/null and /dev/urandom that programs open'],
  ['/proc', 'the process information node and the sandbox itself read'],
  ['/sys', 'the kernel and device information programs read'],
  ['/usr', 'the programs and libraries node and every command load'],
]

/**
 * The temp dir (`os.tmpdir()`, i.e. `TMPDIR` or /tmp) as mount(2) will see it. Throws a
 * RootlessEnvironmentError naming TMPDIR when it isn't an existing directory.
 */
export function resolveTempDir(): string {
  const dir = tmpdir()
  const where = process.env.TMPDIR ? `TMPDIR=${process.env.TMPDIR}: the temp dir` : `the temp dir ${dir} (TMPDIR is not set)`
  let real: string
  try {
    real = realpathSync(dir)
  } catch (error) {
    throw new RootlessEnvironmentError('TMPDIR', `vitest-pool-rootless: ${where} can't be used (${errnoReason(error)}); set TMPDIR to an existing directory`)
  }
  if (!statSync(real).isDirectory()) {
    throw new RootlessEnvironmentError('TMPDIR', `vitest-pool-rootless: ${where} is not a directory; set TMPDIR to an existing directory`)
  }
  return real
}

/** /tmp as mount(2) sees it, where there is one. */
function slashTmp(): string[] {
  try {
    return [realpathSync('/tmp')]
  } catch {
    return []
  }
}

/**
 * The temp dir for validation: resolved, or as given where it can't be. A TMPDIR that
 * doesn't exist is the environment's fault, not the options': the run reports it when it
 * opens (`prepareSandbox`), where `fallback: 'unsandboxed'` can still run the tests.
 */
function tempDirAsGiven(): string {
  try {
    return resolveTempDir()
  } catch (error) {
    if (error instanceof RootlessEnvironmentError) return normalize(tmpdir())
    throw error
  }
}

function validateTmpfs(value: unknown, context: ResolveContext): string[] {
  const { option, spell } = context
  if (value === false) return []
  if (Array.isArray(value) && value.length > MAX_TMPFS) throw new RootlessOptionError(option, value, `expects at most ${MAX_TMPFS} directories`)
  const paths = validateList(value, option, (p, name) => {
    // mount(2) follows symlinks; compare what it will really cover
    const path = realpathSync(existingPath(p, name, 'directory'))
    if (path === '/') throw new RootlessOptionError(option, p, 'expects directories other than "/" (a tmpfs on / hides the whole system)')
    for (const [dir, why] of SYSTEM_DIRS) {
      if (path === dir || isInside(dir, path)) throw new RootlessOptionError(option, p, `expects directories that don't hide ${dir} (${why})`)
    }
    if (isInside('/etc/hosts', path)) throw new RootlessOptionError(option, p, "expects directories that don't contain /etc/hosts (the sandbox's private hosts file would be hidden)")
    return path
  })
  // /tmp and the temp dir always get a tmpfs, whatever TMPDIR says (resolved last: a bad
  // entry is the first thing to report); one inside another target (TMPDIR=/tmp/user/1000,
  // Debian's libpam-tmpdir) is made anew, empty, in that target's tmpfs instead
  const temp = tempDirAsGiven()
  const temps = [...new Set([...slashTmp(), temp])]
  const all = [...new Set([...temps, ...paths])]
  const dirs = temps.filter((t) => all.some((other) => other !== t && isInside(t, other)))
  const unique = all.filter((p) => !dirs.includes(p))
  if (dirs.length > 0) context.derived.tmpfsDirs = dirs
  for (const a of unique) {
    const outer = unique.find((b) => b !== a && isInside(a, b))
    if (!outer) continue
    const always = temps.length === 1 ? `${temp} is the temp dir, which always gets a tmpfs` : `/tmp and the temp dir ${temp} always get a tmpfs`
    const note = temps.includes(a) || temps.includes(outer) ? `; ${always} unless ${spellSetting(spell, 'tmpfs', false)}` : ''
    throw new RootlessOptionError(option, value, `expects directories that don't contain each other (${a} is inside ${outer}: one tmpfs would hide the other${note})`)
  }
  return unique
}

function validateKeep(value: unknown, { option }: ResolveContext): string[] {
  if (Array.isArray(value) && value.length > MAX_KEEP) throw new RootlessOptionError(option, value, `expects at most ${MAX_KEEP} paths`)
  return validateList(value, option, (p, name) => realpathSync(existingPath(p, name, 'any')))
}

function validateEnvNames(value: unknown, option: string): string[] {
  if (value === undefined) return []
  if (!Array.isArray(value)) throw new RootlessOptionError(option, value, 'expects an array of environment variable names')
  for (const name of value) {
    if (typeof name !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]*\*?$|^\*$/.test(name)) {
      throw new RootlessOptionError(option, name, 'expects variable names of letters, digits and "_", optionally ending in "*" for a prefix')
    }
  }
  return [...value] as string[]
}

/** Kept below the launcher's 64, with room for what the runner adds (snapshot directories). */
const MAX_WRITABLE = 16

/**
 * `writable` as given, each entry normalized: relative to the project (`out`, from
 * `./out/`), `~/...` for the home directory, or absolute. Made absolute once the project
 * root is known (engine/writable.ts). A relative entry that leaves the project is refused.
 */
function validateWritable(value: unknown, option: string): string[] | undefined {
  if (value === undefined) return undefined
  if (!Array.isArray(value) || !value.every((entry) => typeof entry === 'string' && entry !== '')) {
    throw new RootlessOptionError(option, value, "expects an array of paths: relative to the project root ('./out'), under the home directory ('~/.cache/x') or absolute")
  }
  if (value.length > MAX_WRITABLE) throw new RootlessOptionError(option, value, `expects at most ${MAX_WRITABLE} paths`)
  return (value as string[]).map((entry) => {
    const home = entry === '~' || entry.startsWith('~/')
    if (entry.startsWith('~') && !home) throw new RootlessOptionError(option, entry, "expects '~' only as the home directory ('~/x'), not another user's ('~name')")
    const rest = home ? entry.slice(1).replace(/^\/+/, '') || '.' : entry
    const path = normalize(rest).replace(/(.)\/$/, '$1')
    if (!isAbsolute(path) && (path === '..' || path.startsWith('../'))) {
      throw new RootlessOptionError(option, entry, `expects paths inside the ${home ? 'home directory' : 'project'}; ${entry} leaves it through ".." (give an absolute path for a place outside)`)
    }
    return home ? (path === '.' ? '~' : `~/${path}`) : path
  })
}

const MIN_SIZE = 4096n
const MAX_SIZE = 2n ** 63n - 1n
const SUFFIX: Record<string, bigint> = { '': 1n, k: 1n << 10n, m: 1n << 20n, g: 1n << 30n, t: 1n << 40n }

function validateSize(value: unknown, option: string): string {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 4096) {
      throw new RootlessOptionError(option, value, 'expects a whole number of bytes of at least 4096, or a string like "512m", "2g" or "50%"')
    }
    return String(value)
  }
  const match = typeof value === 'string' ? /^([1-9]\d*)([kmgt]?)$|^([1-9]\d?|100)%$/i.exec(value) : null
  if (typeof value !== 'string' || !match) {
    throw new RootlessOptionError(option, value, 'expects a size like "512m", "2g", "50%" or a number of bytes of at least 4096')
  }
  if (match[1] !== undefined) {
    const bytes = BigInt(match[1]) * SUFFIX[match[2]!.toLowerCase()]!
    if (bytes < MIN_SIZE) throw new RootlessOptionError(option, value, 'expects at least 4096 bytes (one page; "4k")')
    if (bytes > MAX_SIZE) throw new RootlessOptionError(option, value, 'expects at most 2^63-1 bytes (8 EiB; "8388607t")')
  }
  return value.toLowerCase()
}

function validateList(value: unknown, option: string, each: (item: unknown, option: string) => string): string[] {
  if (value === undefined) return []
  if (!Array.isArray(value)) throw new RootlessOptionError(option, value, 'expects an array of absolute paths')
  return value.map((item) => each(item, option))
}

function existingPath(value: unknown, option: string, kind: 'file' | 'directory' | 'any'): string {
  if (typeof value !== 'string' || !isAbsolute(value)) throw new RootlessOptionError(option, value, 'expects an absolute path')
  // stat before dropping a trailing slash: "/etc/hosts/" is not a file
  const path = normalize(value)
  let stat
  try {
    stat = statSync(path)
  } catch (error) {
    const what = `an existing ${kind === 'any' ? 'path' : kind}`
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new RootlessOptionError(option, value, `expects ${what}, but nothing is there`)
    throw new RootlessOptionError(option, value, `expects ${what}, but it can't be reached (${errnoReason(error)})`)
  }
  if (kind === 'file' && !stat.isFile()) throw new RootlessOptionError(option, value, 'expects a file, but it is not a regular file')
  if (kind === 'directory' && !stat.isDirectory()) throw new RootlessOptionError(option, value, 'expects a directory, but it is not one')
  return path.length > 1 ? path.replace(/\/$/, '') : path
}

function oneOf<T extends string | boolean>(value: unknown, option: string, allowed: readonly T[]): T {
  if (!allowed.includes(value as T)) {
    throw new RootlessOptionError(option, value, `expects one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}`)
  }
  return value as T
}

/** "EACCES: permission denied" from a Node fs error. */
function errnoReason(error: unknown): string {
  const e = error as NodeJS.ErrnoException
  return e.code ? `${e.code}: ${e.message.replace(/^\w+: /, '').replace(/,.*$/, '')}` : String(e?.message ?? e)
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && (Object.getPrototypeOf(value) === Object.prototype || Object.getPrototypeOf(value) === null)
}
