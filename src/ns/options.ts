import { realpathSync, statSync } from 'node:fs'
import { isIP } from 'node:net'
import { tmpdir } from 'node:os'
import { isAbsolute, normalize } from 'node:path'
import { RootlessOptionError } from './errors.js'
import { isInside } from './paths.js'

/** Sandbox options shared by `rootless()` and `vitest-pool-rootless exec`. */
export interface SandboxOptions {
  /**
   * Extra `/etc/hosts` entries: host name → IP address or addresses. Merged over the
   * defaults (`localhost` and the sandbox hostname → 127.0.0.1 and ::1); a name given
   * here replaces its default.
   * @default {}
   */
  hosts?: Record<string, string | readonly string[]>
  /**
   * An absolute path to a hosts file to start from instead of the defaults; `hosts`
   * entries still take precedence.
   */
  hostsFile?: string
  /**
   * Hostname inside the sandbox (`os.hostname()`); 1–64 characters of letters,
   * digits, `.` and `-`. Unset: the host's hostname is kept.
   */
  hostname?: string
  /**
   * Absolute paths of existing directories that get a private, empty tmpfs. `false`
   * for none. Paths the worker needs under them (project, node, cwd) stay visible.
   * @default [os.tmpdir()]
   */
  tmpfs?: readonly string[] | false
  /**
   * Size limit of each tmpfs: bytes as a number, or a string such as `'512m'`,
   * `'2g'`, `'50%'` (of RAM). Unset: the kernel default, half of RAM.
   */
  tmpfsSize?: string | number
  /** Extra absolute paths under a tmpfs target that stay visible inside. @default [] */
  keep?: readonly string[]
  /**
   * `'auto'` maps your /etc/subuid and /etc/subgid ranges as ids 1..N (needs the
   * `uidmap` package), falling back to your own id alone with a warning; `false`
   * maps your own id alone.
   * @default 'auto'
   */
  subids?: 'auto' | false
  /**
   * `'isolated'`: a private network with only loopback. `'host'`: keep the host's
   * network (for debugging, e.g. `--inspect`).
   * @default 'isolated'
   */
  network?: 'isolated' | 'host'
  /**
   * Run the test process under a small init in its own pid namespace: it can't see or
   * signal the host's processes, /proc shows only the sandbox, and anything a test
   * starts (daemons included) dies with it. `false` saves two tiny processes per worker.
   * @default true
   */
  pidNamespace?: boolean
  /**
   * Environment variables the sandboxed processes don't get: names, or prefixes ending
   * in `*` (`['AWS_*', 'NPM_TOKEN']`). For secrets a test has no business seeing.
   * @default []
   */
  dropEnv?: readonly string[]
}

/** Options after validation, with defaults applied. */
export interface ResolvedSandboxOptions {
  hosts: Map<string, string[]>
  hostsFile?: string
  hostname?: string
  tmpfs: string[]
  tmpfsSize?: string
  keep: string[]
  subids: 'auto' | false
  network: 'isolated' | 'host'
  pidNamespace: boolean
  dropEnv: string[]
}

export const SANDBOX_OPTION_KEYS = ['hosts', 'hostsFile', 'hostname', 'tmpfs', 'tmpfsSize', 'keep', 'subids', 'network', 'pidNamespace', 'dropEnv'] as const

const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/
const UTS_NAME = /^[A-Za-z0-9][A-Za-z0-9.-]{0,63}$/
const SIZE = /^([1-9]\d{0,15})([kmg]?)$|^([1-9]\d?|100)%$/i

/**
 * Validates sandbox options before anything starts. Each error names the option (as
 * `spell` renders it: `hostsFile` for the pool, `--hosts-file` for the CLI), the value
 * received, and what was expected.
 */
export function validateSandboxOptions(
  input: unknown,
  spell: (key: string) => string = (key) => key,
  allowedKeys: readonly string[] = SANDBOX_OPTION_KEYS,
): ResolvedSandboxOptions {
  if (input === undefined) input = {}
  if (!isPlainObject(input)) throw new RootlessOptionError('options', input, 'expects an object of options')
  for (const key of Object.keys(input)) {
    if (!allowedKeys.includes(key)) {
      throw new RootlessOptionError(key, input[key], `is not an option; known options are ${allowedKeys.map(spell).join(', ')}`)
    }
  }
  const o = input as Record<string, unknown>
  return {
    hosts: validateHosts(o.hosts, spell('hosts')),
    hostsFile: o.hostsFile === undefined ? undefined : existingPath(o.hostsFile, spell('hostsFile'), 'file'),
    hostname: o.hostname === undefined ? undefined : validateHostname(o.hostname, spell('hostname')),
    tmpfs: validateTmpfs(o.tmpfs, spell('tmpfs')),
    tmpfsSize: o.tmpfsSize === undefined ? undefined : validateSize(o.tmpfsSize, spell('tmpfsSize')),
    keep: validateKeep(o.keep, spell('keep')),
    subids: oneOf(o.subids === undefined ? 'auto' : o.subids, spell('subids'), ['auto', false] as const),
    network: oneOf(o.network === undefined ? 'isolated' : o.network, spell('network'), ['isolated', 'host'] as const),
    pidNamespace: oneOf(o.pidNamespace === undefined ? true : o.pidNamespace, spell('pidNamespace'), [true, false] as const),
    dropEnv: validateEnvNames(o.dropEnv, spell('dropEnv')),
  }
}

function validateHosts(value: unknown, option: string): Map<string, string[]> {
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

function validateHostname(value: unknown, option: string): string {
  if (typeof value !== 'string' || !UTS_NAME.test(value)) {
    throw new RootlessOptionError(option, value, 'expects 1 to 64 letters, digits, "." or "-", starting with a letter or digit')
  }
  return value
}

/** The launcher takes at most 64 of each list; kept paths also carry the worker's own. */
const MAX_TMPFS = 16
const MAX_KEEP = 32

function validateTmpfs(value: unknown, option: string): string[] {
  if (value === false) return []
  if (value === undefined) return [realpathSync(normalize(tmpdir()))]
  if (Array.isArray(value) && value.length > MAX_TMPFS) throw new RootlessOptionError(option, value, `expects at most ${MAX_TMPFS} directories`)
  const paths = validateList(value, option, (p, name) => {
    // mount(2) follows symlinks; compare what it will really cover
    const path = realpathSync(existingPath(p, name, 'directory'))
    if (path === '/') throw new RootlessOptionError(option, p, 'expects directories other than "/" (a tmpfs on / hides the whole system)')
    if (isInside('/etc/hosts', path)) throw new RootlessOptionError(option, p, "expects directories that don't contain /etc/hosts (the sandbox's private hosts file would be hidden)")
    return path
  })
  const unique = [...new Set(paths)]
  for (const a of unique) {
    const outer = unique.find((b) => b !== a && isInside(a, b))
    if (outer) throw new RootlessOptionError(option, value, `expects directories that don't contain each other (${a} is inside ${outer}: one tmpfs would hide the other)`)
  }
  return unique
}


function validateKeep(value: unknown, option: string): string[] {
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

function validateSize(value: unknown, option: string): string {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 4096) {
      throw new RootlessOptionError(option, value, 'expects a whole number of bytes of at least 4096, or a string like "512m", "2g" or "50%"')
    }
    return String(value)
  }
  if (typeof value !== 'string' || !SIZE.test(value) || (/^\d+$/.test(value) && Number(value) < 4096)) {
    throw new RootlessOptionError(option, value, 'expects a size like "512m", "2g", "50%" or a number of bytes of at least 4096')
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
  } catch {
    throw new RootlessOptionError(option, value, `expects an existing ${kind === 'any' ? 'path' : kind}, but nothing is there`)
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

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && (Object.getPrototypeOf(value) === Object.prototype || Object.getPrototypeOf(value) === null)
}
