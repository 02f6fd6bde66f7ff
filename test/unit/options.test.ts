import { describe, it, expect, afterAll } from 'vitest'
import { mkdtempSync, mkdirSync, writeFileSync, rmSync, symlinkSync, realpathSync } from 'node:fs'
import { homedir, tmpdir } from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'
import { validateSandboxOptions, validatePoolOptions, SANDBOX_OPTION_KEYS, POOL_OPTION_KEYS, resolveTempDir } from '../../src/plan/options.js'
import { OPTION_SPECS, SANDBOX_SPECS, CLI_OPTION_KEYS, cliInput, cliParseOptions, cliSpell as tableSpell, cliUsageLines } from '../../src/plan/option-specs.js'
import { RootlessEnvironmentError, RootlessOptionError, RootlessUsageError, describe as describeValue } from '../../src/plan/errors.js'
import { isInside } from '../../src/plan/paths.js'

const temp = realpathSync(tmpdir())
const nodeDir = dirname(realpathSync(process.execPath))

/**
 * Real paths, created at collection time so it.each tables can use them; outside the
 * temp dir (which always gets a tmpfs, so a tmpfs inside it is refused) and away from
 * the node binary's directory.
 */
const base = [resolve(import.meta.dirname, '..', '..'), '/var/tmp', homedir()].find(
  (d) => d !== temp && !isInside(d, temp) && !isInside(temp, d) && d !== nodeDir && !isInside(nodeDir, d) && !isInside(d, nodeDir),
)!
const root = mkdtempSync(join(base, '.vpr-options-'))
const dir = join(root, 'dir')
const nested = join(dir, 'nested')
const file = join(root, 'hosts')
const missing = join(root, 'missing')
const sibling = join(root, 'sibling')
const link = join(root, 'link-to-sibling')
mkdirSync(nested, { recursive: true })
mkdirSync(sibling, { recursive: true })
symlinkSync(sibling, link)
writeFileSync(file, '127.0.0.1 localhost\n')

afterAll(() => {
  rmSync(root, { recursive: true, force: true })
})

/** Runs fn, expects a RootlessOptionError, returns it for further assertions. */
function catchOptionError(fn: () => unknown): RootlessOptionError {
  try {
    fn()
  } catch (error) {
    expect(error).toBeInstanceOf(RootlessOptionError)
    return error as RootlessOptionError
  }
  throw new Error('expected a RootlessOptionError, nothing was thrown')
}

/** camelCase → --kebab-case, as the CLI spells options. */
const cliSpell = (key: string) => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`

describe('validateSandboxOptions: defaults', () => {
  it('applies the defaults for no options', () => {
    const resolved = validateSandboxOptions(undefined)
    expect(resolved.tmpfs).toEqual([temp])
    expect(resolved.warnings).toEqual([])
    expect(resolved.hostsBase).toBeUndefined()
    expect(resolved.subids).toBe('auto')
    expect(resolved.network).toBe('isolated')
    expect(resolved.keep).toEqual([])
    expect(resolved.hosts).toBeInstanceOf(Map)
    expect(resolved.hosts.size).toBe(0)
    expect(resolved.hostsFile).toBeUndefined()
    expect(resolved.hostname).toBeUndefined()
    expect(resolved.tmpfsSize).toBeUndefined()
    expect(resolved.pidNamespace).toBe(true)
    expect(resolved.permissions).toBe('bypass')
  })

  it('gives the same result for {} as for undefined', () => {
    expect(validateSandboxOptions({})).toEqual(validateSandboxOptions(undefined))
  })

  it('accepts an object without prototype', () => {
    const input = Object.create(null) as Record<string, unknown>
    input.network = 'host'
    expect(validateSandboxOptions(input).network).toBe('host')
  })
})

describe('validateSandboxOptions: valid values', () => {
  it('accepts hosts with string and array values, lowercases names and drops duplicate IPs', () => {
    const resolved = validateSandboxOptions({
      hosts: {
        'Example.COM': '10.0.0.1',
        db: ['10.0.0.2', 'fd00::2', '10.0.0.2'],
        'api.internal.': '::1',
        under_score: '192.168.1.1',
      },
    })
    expect([...resolved.hosts]).toEqual([
      ['example.com', ['10.0.0.1']],
      ['db', ['10.0.0.2', 'fd00::2']],
      ['api.internal', ['::1']],
      ['under_score', ['192.168.1.1']],
    ])
  })

  it('accepts a host name of exactly 253 characters', () => {
    const name = ['a'.repeat(63), 'b'.repeat(63), 'c'.repeat(63), 'd'.repeat(61)].join('.')
    expect(name).toHaveLength(253)
    expect(validateSandboxOptions({ hosts: { [name]: '10.0.0.1' } }).hosts.get(name)).toEqual(['10.0.0.1'])
  })

  it('accepts an existing hostsFile and returns it normalized, with its content in hostsBase', () => {
    expect(validateSandboxOptions({ hostsFile: file })).toMatchObject({ hostsFile: file, hostsBase: '127.0.0.1 localhost', warnings: [] })
    expect(validateSandboxOptions({ hostsFile: join(dir, '..', 'hosts') }).hostsFile).toBe(file)
  })

  it.each(['a', 'box', 'my-host.example', 'A1', '9lives', 'x'.repeat(63), 'x_y', '_box', 'a.b.c', `${'a'.repeat(31)}.${'b'.repeat(32)}`])('accepts hostname %j', (hostname) => {
    expect(validateSandboxOptions({ hostname }).hostname).toBe(hostname)
  })

  it('accepts a 64-character hostname (the documented maximum, HOST_NAME_MAX on Linux)', () => {
    const hostname = 'h'.repeat(64)
    expect(validateSandboxOptions({ hostname }).hostname).toBe(hostname)
  })

  it('accepts tmpfs directories in addition to the temp dir, strips trailing slashes and removes duplicates', () => {
    expect(validateSandboxOptions({ tmpfs: [dir, `${dir}/`, sibling] }).tmpfs).toEqual([temp, dir, sibling])
  })

  it('resolves symlinked tmpfs targets and kept paths, as mount(2) does', () => {
    expect(validateSandboxOptions({ tmpfs: [link], keep: [link] })).toMatchObject({ tmpfs: [temp, sibling], keep: [sibling] })
  })

  it('accepts tmpfs: false as "no tmpfs", and an empty array as "only the temp dir"', () => {
    expect(validateSandboxOptions({ tmpfs: false }).tmpfs).toEqual([])
    expect(validateSandboxOptions({ tmpfs: [] }).tmpfs).toEqual([temp])
  })

  it.each([
    ['512m', '512m'],
    ['2G', '2g'],
    ['4k', '4k'],
    ['1t', '1t'],
    ['512T', '512t'],
    ['8388607t', '8388607t'],
    ['9223372036854775807', '9223372036854775807'],
    ['4096', '4096'],
    ['50%', '50%'],
    ['1%', '1%'],
    ['100%', '100%'],
    [1048576, '1048576'],
    [4096, '4096'],
    [Number.MAX_SAFE_INTEGER, String(Number.MAX_SAFE_INTEGER)],
  ])('accepts tmpfsSize %j as %j', (tmpfsSize, expected) => {
    expect(validateSandboxOptions({ tmpfsSize }).tmpfsSize).toBe(expected)
  })

  it('accepts keep paths that are files or directories, normalized', () => {
    expect(validateSandboxOptions({ keep: [file, `${nested}/`, join(nested, '..')] }).keep).toEqual([file, nested, dir])
  })

  it('accepts subids false and network host', () => {
    const resolved = validateSandboxOptions({ subids: false, network: 'host' })
    expect(resolved.subids).toBe(false)
    expect(resolved.network).toBe('host')
  })

  it('accepts every option at once', () => {
    const resolved = validateSandboxOptions({
      hosts: { db: '10.0.0.2' },
      hostsFile: file,
      hostname: 'box',
      tmpfs: [dir],
      tmpfsSize: '64M',
      keep: [nested],
      subids: 'auto',
      network: 'egress',
      egress: ['api.example.com', '10.0.0.0/8'],
      hostPorts: [5432, { inside: 6379, host: 32768 }, '32768-60999', 'postgres:5433', 'redis.ci.internal:6380'],
      pidNamespace: false,
      permissions: 'enforce',
      dropEnv: ['NPM_TOKEN', 'AWS_*'],
      writable: ['./out/', '~/.cache/x', '/var/cache/x/', 'a/../b', '~'],
    })
    expect(resolved).toEqual({
      writable: ['out', '~/.cache/x', '/var/cache/x', 'b', '~'],
      hosts: new Map([['db', ['10.0.0.2']]]),
      hostsFile: file,
      hostsBase: '127.0.0.1 localhost',
      hostname: 'box',
      tmpfs: [temp, dir],
      tmpfsSize: '64m',
      keep: [nested],
      subids: 'auto',
      network: 'egress',
      egress: ['api.example.com', '10.0.0.0/8'],
      hostPorts: [{ inside: 5432, host: 5432 }, { inside: 6379, host: 32768 }, { from: 32768, to: 60999 }, { name: 'postgres', port: 5433 }, { name: 'redis.ci.internal', port: 6380 }],
      pidNamespace: false,
      permissions: 'enforce',
      dropEnv: ['NPM_TOKEN', 'AWS_*'],
      warnings: [],
    })
  })

  it('derives the known option keys from the table', () => {
    expect(SANDBOX_OPTION_KEYS).toEqual(Object.keys(SANDBOX_SPECS))
    expect(POOL_OPTION_KEYS).toEqual(Object.keys(OPTION_SPECS))
    // every sandbox option is resolved to a field of its own
    expect(Object.keys(validateSandboxOptions({})).sort()).toEqual([...SANDBOX_OPTION_KEYS, 'warnings'].sort())
  })
})

describe('validateSandboxOptions: invalid values', () => {
  const longLabel = 'a'.repeat(64)
  const longName = Array.from({ length: 4 }, () => 'a'.repeat(63)).join('.') // 255 characters
  const relativePath = relative(process.cwd(), dir) || 'some/dir'

  // [label, input, option, received]
  const cases: Array<[string, unknown, string, unknown]> = [
    ['options a string', 'hosts', 'options', 'hosts'],
    ['options a number', 42, 'options', 42],
    ['options null', null, 'options', null],
    ['options an array', [], 'options', []],
    ['options a Map', new Map(), 'options', new Map()],
    ['hosts a string', { hosts: 'db=10.0.0.1' }, 'hosts', 'db=10.0.0.1'],
    ['hosts an array', { hosts: [['db', '10.0.0.1']] }, 'hosts', [['db', '10.0.0.1']]],
    ['hosts null', { hosts: null }, 'hosts', null],
    ['hosts IP "nope"', { hosts: { db: 'nope' } }, 'hosts', { db: 'nope' }],
    ['hosts IP "999.1.1.1"', { hosts: { db: '999.1.1.1' } }, 'hosts', { db: '999.1.1.1' }],
    ['hosts IP ""', { hosts: { db: '' } }, 'hosts', { db: '' }],
    ['hosts one bad IP in an array', { hosts: { db: ['10.0.0.1', 'nope'] } }, 'hosts', { db: ['10.0.0.1', 'nope'] }],
    ['hosts IP a number', { hosts: { db: 127 } }, 'hosts', { db: 127 }],
    ['hosts empty array of IPs', { hosts: { db: [] } }, 'hosts', { db: [] }],
    ['hosts empty name', { hosts: { '': '10.0.0.1' } }, 'hosts', ''],
    ['hosts name with a space', { hosts: { 'my host': '10.0.0.1' } }, 'hosts', 'my host'],
    ['hosts name longer than 253', { hosts: { [longName]: '10.0.0.1' } }, 'hosts', longName],
    ['hosts label longer than 63', { hosts: { [longLabel]: '10.0.0.1' } }, 'hosts', longLabel],
    ['hostsFile relative', { hostsFile: 'etc/hosts' }, 'hostsFile', 'etc/hosts'],
    ['hostsFile non-existent', { hostsFile: missing }, 'hostsFile', missing],
    ['hostsFile a directory', { hostsFile: dir }, 'hostsFile', dir],
    ['hostsFile a number', { hostsFile: 1 }, 'hostsFile', 1],
    ['hostname empty', { hostname: '' }, 'hostname', ''],
    ['hostname 65 characters', { hostname: 'h'.repeat(65) }, 'hostname', 'h'.repeat(65)],
    ['hostname with "/"', { hostname: 'a/b' }, 'hostname', 'a/b'],
    ['hostname starting with "-"', { hostname: '-box' }, 'hostname', '-box'],
    ['hostname with a space', { hostname: 'my box' }, 'hostname', 'my box'],
    ['hostname "a..."', { hostname: 'a...' }, 'hostname', 'a...'],
    ['hostname with an empty label', { hostname: 'a..b' }, 'hostname', 'a..b'],
    ['hostname starting with "."', { hostname: '.a' }, 'hostname', '.a'],
    ['hostname ending with "."', { hostname: 'a.' }, 'hostname', 'a.'],
    ['hostname ending with "-"', { hostname: 'box-' }, 'hostname', 'box-'],
    ['hostname with NUL', { hostname: 'a\0b' }, 'hostname', 'a\0b'],
    ['hostname 65 bytes in labels', { hostname: `${'a'.repeat(32)}.${'b'.repeat(32)}` }, 'hostname', `${'a'.repeat(32)}.${'b'.repeat(32)}`],
    ['hostname non-ASCII', { hostname: 'bücher' }, 'hostname', 'bücher'],
    ['hostname a number', { hostname: 42 }, 'hostname', 42],
    ['tmpfs a string', { tmpfs: '/tmp' }, 'tmpfs', '/tmp'],
    ['tmpfs true', { tmpfs: true }, 'tmpfs', true],
    ['tmpfs relative path', { tmpfs: [relativePath] }, 'tmpfs', relativePath],
    ['tmpfs non-existent', { tmpfs: [missing] }, 'tmpfs', missing],
    ['tmpfs a file', { tmpfs: [file] }, 'tmpfs', file],
    ['tmpfs "/"', { tmpfs: ['/'] }, 'tmpfs', '/'],
    ['tmpfs a non-string entry', { tmpfs: [dir, 7] }, 'tmpfs', 7],
    ['tmpfsSize 0', { tmpfsSize: 0 }, 'tmpfsSize', 0],
    ['tmpfsSize -1', { tmpfsSize: -1 }, 'tmpfsSize', -1],
    ['tmpfsSize 4095', { tmpfsSize: 4095 }, 'tmpfsSize', 4095],
    ['tmpfsSize "123bogus"', { tmpfsSize: '123bogus' }, 'tmpfsSize', '123bogus'],
    ['tmpfsSize 2**64', { tmpfsSize: 2 ** 64 }, 'tmpfsSize', 2 ** 64],
    ['tmpfsSize 1.5', { tmpfsSize: 1.5 }, 'tmpfsSize', 1.5],
    ['tmpfsSize NaN', { tmpfsSize: Number.NaN }, 'tmpfsSize', Number.NaN],
    ['tmpfsSize "0"', { tmpfsSize: '0' }, 'tmpfsSize', '0'],
    ['tmpfsSize "0%"', { tmpfsSize: '0%' }, 'tmpfsSize', '0%'],
    ['tmpfsSize "101%"', { tmpfsSize: '101%' }, 'tmpfsSize', '101%'],
    ['tmpfsSize "9999999999999999g" (above 2^63-1 bytes)', { tmpfsSize: '9999999999999999g' }, 'tmpfsSize', '9999999999999999g'],
    ['tmpfsSize "8388608t" (2^63 bytes)', { tmpfsSize: '8388608t' }, 'tmpfsSize', '8388608t'],
    ['tmpfsSize "9223372036854775808" (2^63)', { tmpfsSize: '9223372036854775808' }, 'tmpfsSize', '9223372036854775808'],
    ['tmpfsSize "1k" (below 4096)', { tmpfsSize: '1k' }, 'tmpfsSize', '1k'],
    ['tmpfsSize "0512m" (a leading zero)', { tmpfsSize: '0512m' }, 'tmpfsSize', '0512m'],
    ['tmpfsSize "1p" (no p suffix)', { tmpfsSize: '1p' }, 'tmpfsSize', '1p'],
    ['tmpfsSize ""', { tmpfsSize: '' }, 'tmpfsSize', ''],
    ['tmpfsSize true', { tmpfsSize: true }, 'tmpfsSize', true],
    ['keep not an array', { keep: file }, 'keep', file],
    ['keep relative', { keep: ['node_modules'] }, 'keep', 'node_modules'],
    ['keep non-existent', { keep: [missing] }, 'keep', missing],
    ['subids true', { subids: true }, 'subids', true],
    ['subids "yes"', { subids: 'yes' }, 'subids', 'yes'],
    ['subids "false"', { subids: 'false' }, 'subids', 'false'],
    ['network "bridge"', { network: 'bridge' }, 'network', 'bridge'],
    ['network false', { network: false }, 'network', false],
    ['pidNamespace "no"', { pidNamespace: 'no' }, 'pidNamespace', 'no'],
    ['dropEnv not an array', { dropEnv: 'AWS_*' }, 'dropEnv', 'AWS_*'],
    ['dropEnv name with "="', { dropEnv: ['A=B'] }, 'dropEnv', 'A=B'],
    ['dropEnv "*" in the middle', { dropEnv: ['A*B'] }, 'dropEnv', 'A*B'],
    ['tmpfs targets inside each other', { tmpfs: [dir, nested] }, 'tmpfs', [dir, nested]],
    ['tmpfs on /etc (hides the private hosts file)', { tmpfs: ['/etc'] }, 'tmpfs', '/etc'],
    ['tmpfs on /dev', { tmpfs: ['/dev'] }, 'tmpfs', '/dev'],
    ['tmpfs on /proc', { tmpfs: ['/proc'] }, 'tmpfs', '/proc'],
    ['tmpfs on /sys', { tmpfs: ['/sys'] }, 'tmpfs', '/sys'],
    ['tmpfs on /usr', { tmpfs: ['/usr'] }, 'tmpfs', '/usr'],
    ['hostsFile unreadable (EIO)', { hostsFile: '/proc/self/mem' }, 'hostsFile', '/proc/self/mem'],
    ['more than 16 tmpfs targets', { tmpfs: Array.from({ length: 17 }, () => dir) }, 'tmpfs', Array.from({ length: 17 }, () => dir)],
    ['tmpfsSize "1" (bytes, below a page)', { tmpfsSize: '1' }, 'tmpfsSize', '1'],
    ['pidNamespace 0', { pidNamespace: 0 }, 'pidNamespace', 0],
    ['hostPorts a number', { hostPorts: 5432 }, 'hostPorts', 5432],
    ['hostPorts port 0', { hostPorts: [0] }, 'hostPorts', 0],
    ['hostPorts port 65536', { hostPorts: [65536] }, 'hostPorts', 65536],
    ['hostPorts port -1', { hostPorts: [-1] }, 'hostPorts', -1],
    ['hostPorts port "abc"', { hostPorts: ['abc'] }, 'hostPorts', 'abc'],
    ['hostPorts port "5432" (a string)', { hostPorts: ['5432'] }, 'hostPorts', '5432'],
    ['hostPorts port 80.5', { hostPorts: [80.5] }, 'hostPorts', 80.5],
    ['hostPorts a mapping with a bad host port', { hostPorts: [{ inside: 5432, host: 0 }] }, 'hostPorts', { inside: 5432, host: 0 }],
    ['hostPorts a mapping with an unknown key', { hostPorts: [{ inside: 5432, host: 5433, tls: true }] }, 'hostPorts', { inside: 5432, host: 5433, tls: true }],
    ['hostPorts one inside port twice', { hostPorts: [5432, { inside: 5432, host: 15432 }] }, 'hostPorts', [5432, { inside: 5432, host: 15432 }]],
    ['hostPorts with network host', { hostPorts: [5432], network: 'host' }, 'hostPorts', [5432]],
    ['hostPorts a range with FROM > TO', { hostPorts: ['6000-5000'] }, 'hostPorts', '6000-5000'],
    ['hostPorts a range from 0', { hostPorts: ['0-100'] }, 'hostPorts', '0-100'],
    ['hostPorts a range past 65535', { hostPorts: ['60000-70000'] }, 'hostPorts', '60000-70000'],
    ['hostPorts a range over a port', { hostPorts: ['5000-6000', 5432] }, 'hostPorts', ['5000-6000', 5432]],
    ['hostPorts two ranges that overlap', { hostPorts: ['5000-6000', '5999-7000'] }, 'hostPorts', ['5000-6000', '5999-7000']],
    ['hostPorts a range over a service', { hostPorts: ['5000-6000', 'db:5432'] }, 'hostPorts', ['5000-6000', 'db:5432']],
    ['hostPorts 65 ranges (the launcher takes 64)', { hostPorts: Array.from({ length: 65 }, (_, i) => `${1000 + 2 * i}-${1000 + 2 * i}`) }, 'hostPorts', Array.from({ length: 65 }, (_, i) => `${1000 + 2 * i}-${1000 + 2 * i}`)],
    ['hostPorts a service with no port', { hostPorts: ['postgres'] }, 'hostPorts', 'postgres'],
    ['hostPorts a service with port 0', { hostPorts: ['postgres:0'] }, 'hostPorts', 'postgres:0'],
    ['hostPorts a service with port 70000', { hostPorts: ['postgres:70000'] }, 'hostPorts', 'postgres:70000'],
    ['hostPorts a service with a bad name', { hostPorts: ['post gres:5432'] }, 'hostPorts', 'post gres:5432'],
    ['hostPorts two services on one port', { hostPorts: ['db1:5432', 'db2:5432'] }, 'hostPorts', ['db1:5432', 'db2:5432']],
    ['permissions a word of its own', { permissions: 'strict' }, 'permissions', 'strict'],
    ['permissions a boolean', { permissions: true }, 'permissions', true],
    ['writable a string', { writable: './out' }, 'writable', './out'],
    ['writable a number in the list', { writable: ['./out', 1] }, 'writable', ['./out', 1]],
    ['writable an empty path', { writable: [''] }, 'writable', ['']],
    ['writable leaving the project through ".."', { writable: ['../x'] }, 'writable', '../x'],
    ['writable leaving it through "a/../.."', { writable: ['./a/../../x'] }, 'writable', './a/../../x'],
    ['writable leaving the home directory', { writable: ['~/../x'] }, 'writable', '~/../x'],
    ["writable another user's home", { writable: ['~root/x'] }, 'writable', '~root/x'],
    ['writable with tmpfs false (the temp dir would be read-only)', { writable: ['./out'], tmpfs: false }, 'writable', ['./out']],
  ]

  it('covers at least 30 invalid inputs', () => {
    expect(cases.length).toBeGreaterThanOrEqual(30)
  })

  it.each(cases)('rejects %s', (_label, input, option, received) => {
    const error = catchOptionError(() => validateSandboxOptions(input))
    expect(error.name).toBe('RootlessOptionError')
    expect(error.option).toBe(option)
    expect(error.received).toEqual(received)
    expect(error.message).toMatch(/^vitest-pool-rootless: option `/)
    expect(error.message).toContain(`\`${option}\``)
    expect(error.message).toContain(`got ${describeValue(received)}`)
  })

  it('lists the known options when a key is unknown', () => {
    const error = catchOptionError(() => validateSandboxOptions({ bogus: true }))
    for (const key of SANDBOX_OPTION_KEYS) expect(error.message).toContain(key)
  })

  it.each([
    ['hostport', [5432], 'hostPorts'],
    ['tmpFs', ['/tmp'], 'tmpfs'],
    ['pidNamespaces', false, 'pidNamespace'],
    ['hostName', undefined, 'hostname'],
    ['dropenv', ['A'], 'dropEnv'],
    ['hots', {}, 'hosts'],
  ])('asks "did you mean" for a misspelt key: %s', (key, value, meant) => {
    const error = catchOptionError(() => validateSandboxOptions({ network: 'host', [key]: value }))
    expect(error.option).toBe(key)
    expect(error.received).toEqual(value)
    expect(error.message).toBe(`vitest-pool-rootless: \`${key}\` is not an option; did you mean \`${meant}\`? The options are ${SANDBOX_OPTION_KEYS.join(', ')}.`)
  })

  it('names an unknown key once, without "got" and its value, and guesses nothing when nothing is close', () => {
    const error = catchOptionError(() => validatePoolOptions({ foo: true }))
    expect(error.message).toBe(`vitest-pool-rootless: \`foo\` is not an option. The options are ${POOL_OPTION_KEYS.join(', ')}.`)
  })

  it('says a port given twice once, with a single "got"', () => {
    const error = catchOptionError(() => validateSandboxOptions({ hostPorts: [5432, 5432] }))
    expect(error.message).toBe('vitest-pool-rootless: option `hostPorts` expects each port inside the sandbox once (5432 is given twice), got [5432,5432]')
  })

  it('rejects null for subids rather than treating it as the default', () => {
    // every other option rejects null; `subids: null` silently turning into 'auto'
    // (the opposite of "off") would be surprising
    const error = catchOptionError(() => validateSandboxOptions({ subids: null }))
    expect(error.option).toBe('subids')
  })

  it('says which two words permissions takes', () => {
    const error = catchOptionError(() => validateSandboxOptions({ permissions: 'enforced' }))
    expect(error.message).toBe('vitest-pool-rootless: option `permissions` expects one of "bypass", "enforce", got "enforced"')
  })

  it('rejects null for network rather than treating it as the default', () => {
    const error = catchOptionError(() => validateSandboxOptions({ network: null }))
    expect(error.option).toBe('network')
  })
})

describe('validateSandboxOptions: spell', () => {
  it('names hostsFile as the CLI spells it', () => {
    const error = catchOptionError(() => validateSandboxOptions({ hostsFile: 'relative' }, cliSpell))
    expect(error.option).toBe('--hosts-file')
    expect(error.message).toContain('`--hosts-file`')
    expect(error.message).not.toContain('hostsFile')
    expect(error.message).toContain('"relative"')
  })

  it.each([
    [{ tmpfsSize: 'x' }, '--tmpfs-size'],
    [{ hosts: 'x' }, '--hosts'],
    [{ hostname: '' }, '--hostname'],
    [{ tmpfs: ['/'] }, '--tmpfs'],
    [{ keep: [missing] }, '--keep'],
    [{ subids: 'x' }, '--subids'],
    [{ network: 'x' }, '--network'],
  ])('spells %j errors as %s', (input, option) => {
    const error = catchOptionError(() => validateSandboxOptions(input, cliSpell))
    expect(error.option).toBe(option)
    expect(error.message).toContain(`\`${option}\``)
  })

  it('spells the list of known options for an unknown key', () => {
    const error = catchOptionError(() => validateSandboxOptions({ bogus: 1 }, cliSpell))
    expect(error.option).toBe('bogus')
    expect(error.message).toContain('--hosts-file')
    expect(error.message).toContain('--tmpfs-size')
    expect(error.message).not.toContain('hostsFile')
  })

})

describe('validateSandboxOptions: tmpfs adds to the temp dir', () => {
  it('keeps the temp dir private when other paths are hidden (README: "add their directories to tmpfs")', () => {
    const resolved = validateSandboxOptions({ tmpfs: [sibling] })
    expect(resolved.tmpfs).toEqual([temp, sibling])
    expect(resolved.warnings).toEqual([])
  })

  it('deduplicates an entry equal to the temp dir, however it is spelled', () => {
    expect(validateSandboxOptions({ tmpfs: [tmpdir(), `${temp}/`] }).tmpfs).toEqual([temp])
  })

  it('refuses a target inside the temp dir, saying the temp dir always gets a tmpfs', () => {
    const inner = mkdtempSync(join(temp, 'vpr-inner-'))
    try {
      const error = catchOptionError(() => validateSandboxOptions({ tmpfs: [inner] }))
      expect(error.option).toBe('tmpfs')
      expect(error.message).toContain(`${inner} is inside ${temp}`)
      expect(error.message).toContain('the temp dir, which always gets a tmpfs')
    } finally {
      rmSync(inner, { recursive: true, force: true })
    }
  })

  it('warns that the temp dir is shared with the host when tmpfs is false', () => {
    const { warnings } = validateSandboxOptions({ tmpfs: false })
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatch(/^vitest-pool-rootless: no private temp dir/)
    expect(warnings[0]).toContain(`/tmp and the temp dir ${tmpdir()} are shared with the host`)
  })

  /** Validates with TMPDIR set to `dir`. */
  const withTmpdir = <T>(dir: string, body: () => T): T => {
    const saved = process.env.TMPDIR
    process.env.TMPDIR = dir
    try {
      return body()
    } finally {
      if (saved === undefined) delete process.env.TMPDIR
      else process.env.TMPDIR = saved
    }
  }

  it('makes /tmp private as well when TMPDIR is elsewhere (a CI\'s own, $HOME/t)', () => {
    const resolved = withTmpdir(dir, () => validateSandboxOptions({}))
    expect(resolved.tmpfs).toEqual([realpathSync('/tmp'), dir])
    expect(resolved.tmpfsDirs).toBeUndefined()
  })

  it('gives /tmp one tmpfs and makes TMPDIR anew in it when TMPDIR lies inside (libpam-tmpdir), also with tmpfs: [\'/tmp\']', () => {
    const inner = mkdtempSync(join(realpathSync('/tmp'), 'vpr-user-'))
    try {
      for (const input of [{}, { tmpfs: ['/tmp'] }]) {
        const resolved = withTmpdir(inner, () => validateSandboxOptions(input))
        expect(resolved.tmpfs).toEqual([realpathSync('/tmp')])
        expect(resolved.tmpfsDirs).toEqual([inner])
      }
    } finally {
      rmSync(inner, { recursive: true, force: true })
    }
  })

  it.each([
    ['/dev', "don't hide /dev"],
    ['/proc', "don't hide /proc"],
    ['/sys', "don't hide /sys"],
    ['/usr', "don't hide /usr"],
  ])('refuses tmpfs on %s, saying why', (path, message) => {
    const error = catchOptionError(() => validateSandboxOptions({ tmpfs: [path] }))
    expect(error.message).toContain(message)
    expect(error.message).toContain(`got "${path}"`)
  })

  it("takes a tmpfs over the node binary's directory, or one that holds it (nvm's node under $HOME): the directory is kept", () => {
    const home = mkdtempSync(join(root, 'home-'))
    const nvmNode = join(home, '.nvm', 'versions', 'node', 'v22.0.0', 'bin')
    mkdirSync(nvmNode, { recursive: true })
    expect(validateSandboxOptions({ tmpfs: [home] }, cliSpell).tmpfs).toContain(realpathSync(home))
    expect(validateSandboxOptions({ tmpfs: [nvmNode] }, cliSpell).tmpfs).toContain(realpathSync(nvmNode))
    // which is kept is the engine's and the plan's to say: see needs and plan tests
  })

  it("names TMPDIR when the temp dir does not exist, and leaves that to the run (it isn't the options' fault)", () => {
    const saved = process.env.TMPDIR
    process.env.TMPDIR = join(root, 'no-such-tmp')
    try {
      expect(() => resolveTempDir()).toThrow(RootlessEnvironmentError)
      expect(() => resolveTempDir()).toThrow(/^vitest-pool-rootless: TMPDIR=.*no-such-tmp: the temp dir can't be used \(ENOENT/)
      // the run reports it when it opens, where `fallback: 'unsandboxed'` can still act
      expect(validateSandboxOptions({}).tmpfs).toEqual([realpathSync('/tmp'), join(root, 'no-such-tmp')])
      expect(validateSandboxOptions({ tmpfs: false }).tmpfs).toEqual([])
    } finally {
      if (saved === undefined) delete process.env.TMPDIR
      else process.env.TMPDIR = saved
    }
  })
})

describe('validateSandboxOptions: hostsFile is read and checked at config load', () => {
  const write = (name: string, text: string) => {
    const path = join(root, name)
    writeFileSync(path, text)
    return path
  }

  it('keeps entries, comments and blank lines; drops lines that are not "IP name..." with a warning naming file:line', () => {
    const path = write('mixed', '# comment\n127.0.0.1 localhost\n\ngarbage\n10.0.0.1\n999.1.1.1 bad-ip\n10.0.0.2 db # the db\n::1 ip6-localhost ip6-loopback\n10.0.0.3 "quoted"\n')
    const resolved = validateSandboxOptions({ hostsFile: path })
    expect(resolved.hostsBase).toBe('# comment\n127.0.0.1 localhost\n\n10.0.0.2 db # the db\n::1 ip6-localhost ip6-loopback')
    expect(resolved.warnings).toEqual([
      `vitest-pool-rootless: \`hostsFile\` line dropped, not "IP name...": ${path}:4: "garbage"`,
      `vitest-pool-rootless: \`hostsFile\` line dropped, not "IP name...": ${path}:5: "10.0.0.1"`,
      `vitest-pool-rootless: \`hostsFile\` line dropped, not "IP name...": ${path}:6: "999.1.1.1 bad-ip"`,
      `vitest-pool-rootless: \`hostsFile\` line dropped, not "IP name...": ${path}:9: "10.0.0.3 \\"quoted\\""`,
    ])
  })

  it('spells the option as the CLI does in warnings', () => {
    const path = write('one-bad', 'nope\n')
    expect(validateSandboxOptions({ hostsFile: path }, cliSpell).warnings[0]).toContain('`--hosts-file` line dropped')
  })

  it('lists at most 5 dropped lines and counts the rest', () => {
    const path = write('binary', Array.from({ length: 12 }, (_, i) => `\u0000junk${i}`).join('\n'))
    const { warnings, hostsBase } = validateSandboxOptions({ hostsFile: path })
    expect(warnings).toHaveLength(6)
    expect(warnings[5]).toContain(`7 more lines of ${path} dropped`)
    expect(hostsBase).toBe('')
  })

  it('handles CRLF line ends', () => {
    const path = write('crlf', '10.0.0.1 a\r\n10.0.0.2 b\r\n')
    expect(validateSandboxOptions({ hostsFile: path })).toMatchObject({ hostsBase: '10.0.0.1 a\n10.0.0.2 b', warnings: [] })
  })

  it('names the option and the reason when the file cannot be read', () => {
    const error = catchOptionError(() => validateSandboxOptions({ hostsFile: '/proc/self/mem' }, cliSpell))
    expect(error.option).toBe('--hosts-file')
    expect(error.message).toContain('expects a readable file, but reading it failed (EIO')
  })
})

describe('validateSandboxOptions: keep', () => {
  it('warns about a kept path outside every tmpfs target, naming it', () => {
    const { warnings, keep } = validateSandboxOptions({ keep: [sibling] })
    expect(keep).toEqual([sibling])
    expect(warnings).toEqual([`vitest-pool-rootless: \`keep\` path ${sibling} is not under any tmpfs target (${temp}): it is visible in the sandbox anyway, so keeping it does nothing`])
  })

  it('warns about a kept path that is a tmpfs target itself', () => {
    expect(validateSandboxOptions({ tmpfs: [dir], keep: [dir] }).warnings[0]).toContain(`\`keep\` path ${dir} is itself a tmpfs target`)
  })

  it('does not warn about a path under a tmpfs target', () => {
    expect(validateSandboxOptions({ tmpfs: [dir], keep: [nested] }).warnings).toEqual([])
  })

  it('warns when there is no tmpfs at all', () => {
    expect(validateSandboxOptions({ tmpfs: false, keep: [nested] }, cliSpell).warnings).toContain(
      `vitest-pool-rootless: \`--keep\` path ${nested} is not under a tmpfs (there is none): it is visible in the sandbox anyway, so keeping it does nothing`,
    )
  })
})

describe('validatePoolOptions', () => {
  it('resolves warm next to the sandbox options', () => {
    expect(validatePoolOptions({ warm: 3 })).toMatchObject({ warm: 3, tmpfs: [temp], warnings: [] })
    expect(validatePoolOptions({}).warm).toBeUndefined()
  })

  it.each([-1, 65, 1.5, '2', null])('refuses warm %j', (warm) => {
    const error = catchOptionError(() => validatePoolOptions({ warm }))
    expect(error.option).toBe('warm')
    expect(error.message).toContain('expects a whole number of spare workers from 0 to 64')
  })

  it('resolves runnerPorts, on by default', () => {
    expect(validatePoolOptions({}).runnerPorts).toBe(true)
    expect(validatePoolOptions({ runnerPorts: false }).runnerPorts).toBe(false)
    expect(catchOptionError(() => validatePoolOptions({ runnerPorts: 'no' })).message).toContain('option `runnerPorts` expects one of true, false, got "no"')
  })

  it('lists warm among the known options; the CLI path does not take it', () => {
    expect(() => validatePoolOptions({ wram: 1 })).toThrow(/did you mean `warm`\? The options are .*warm/)
    expect(catchOptionError(() => validateSandboxOptions({ warm: 1 })).option).toBe('warm')
  })
})

describe('the option table drives the CLI', () => {
  const flags = Object.values(OPTION_SPECS).flatMap((spec) => ('cli' in spec && spec.cli ? spec.cli.map((f) => f.name) : []))

  it('gives every option a one-line summary, and every CLI option at least one unique flag', () => {
    for (const [key, spec] of Object.entries(OPTION_SPECS)) {
      expect(spec.summary, key).toMatch(/^[^\n]+$/)
      expect('cli' in spec && spec.cli !== undefined, key).toBe((spec.surfaces as readonly string[]).includes('cli'))
    }
    expect(new Set(flags).size).toBe(flags.length)
    expect(CLI_OPTION_KEYS).toEqual(SANDBOX_OPTION_KEYS)
  })

  it('derives the parseArgs config and a usage line for every flag', () => {
    expect(Object.keys(cliParseOptions()).sort()).toEqual([...flags].sort())
    const usage = cliUsageLines()
    for (const flag of flags) expect(usage).toContain(`--${flag}`)
    expect(usage).toContain('--host NAME=IP        add an /etc/hosts entry (repeatable)')
    expect(usage).toMatch(/^ {6}--no-tmpfs {12}no tmpfs, not even on the temp dir/m)
  })

  it('spells each option as its first flag', () => {
    expect(tableSpell('hostsFile')).toBe('--hosts-file')
    expect(tableSpell('subids')).toBe('--no-subids')
    expect(tableSpell('tmpfs')).toBe('--tmpfs')
    expect(tableSpell('warm')).toBe('warm')
  })

  it('maps flags to options input', () => {
    expect(
      cliInput({ host: ['a=10.0.0.1', 'a=::1'], 'hosts-file': '/h', 'no-tmpfs': true, 'no-subids': true, 'no-pid-namespace': true, network: 'host', 'drop-env': ['X'] }),
    ).toEqual({ hosts: { a: ['10.0.0.1', '::1'] }, hostsFile: '/h', tmpfs: false, subids: false, pidNamespace: false, network: 'host', dropEnv: ['X'] })
    expect(cliInput({})).toEqual({})
    expect(cliInput({ 'host-port': ['5432', '6379:32768'] })).toEqual({ hostPorts: [5432, { inside: 6379, host: 32768 }] })
  })

  it('takes --host-port FROM-TO and NAME:PORT as hostPorts takes them', () => {
    expect(validateSandboxOptions(cliInput({ 'host-port': ['32768-60999', 'postgres:5432'] }), tableSpell).hostPorts).toEqual([{ from: 32768, to: 60999 }, { name: 'postgres', port: 5432 }])
  })

  it('refuses a --host-port that is not PORT, INSIDE:HOST, FROM-TO or NAME:PORT, naming the flag and the value', () => {
    for (const flag of ['5432:', ':5432']) {
      expect(catchOptionError(() => cliInput({ 'host-port': [flag] })).message).toContain(`option \`--host-port\` expects PORT, INSIDE:HOST, FROM-TO or NAME:PORT, ports from 1 to 65535, got ${JSON.stringify(flag)}`)
    }
    const expected = {
      abc: "expects a service as NAME:PORT, the port it listens on: 'abc:5432'?",
      '-1': 'expects ports from 1 to 65535',
      '1:2:3': 'expects ports from 1 to 65535',
      '9-1': "expects a range FROM-TO with FROM at most TO, as in '1-9'",
      'db:': 'expects a service as NAME:PORT, with a port from 1 to 65535',
    }
    for (const [flag, words] of Object.entries(expected)) {
      const message = catchOptionError(() => validateSandboxOptions(cliInput({ "host-port": [flag] }), tableSpell)).message
      expect(message).toContain(`option \`--host-port\` ${words}`)
      expect(message).toContain(`got ${JSON.stringify(flag)}`)
    }
    // out of range, in the command line's terms: nothing about `{ inside, host }`
    for (const flag of ['0', '70000', '5432:0', '5432:70000']) {
      expect(catchOptionError(() => cliInput({ 'host-port': [flag] })).message).toBe(`vitest-pool-rootless: option \`--host-port\` expects PORT or INSIDE:HOST, ports from 1 to 65535, got ${JSON.stringify(flag)}`)
    }
    expect(catchOptionError(() => cliInput({ 'host-port': ['5432', '5432:15432'] })).message).toBe(
      'vitest-pool-rootless: option `--host-port` expects each port inside the sandbox once (5432 is given already, by --host-port 5432), got "5432:15432"',
    )
  })

  it('refuses two flags of one option, and a --host without "=" or an IP', () => {
    expect(() => cliInput({ tmpfs: ['/x'], 'no-tmpfs': true })).toThrow(new RootlessUsageError('--tmpfs and --no-tmpfs exclude each other'))
    expect(catchOptionError(() => cliInput({ host: ['nope'] })).message).toBe('vitest-pool-rootless: option `--host` expects NAME=IP, with an IPv4 or IPv6 address, got "nope"')
    expect(catchOptionError(() => cliInput({ host: ['api=nope'] })).message).toBe('vitest-pool-rootless: option `--host` expects NAME=IP, with an IPv4 or IPv6 address, got "api=nope"')
  })

  it('speaks command-line syntax in messages that name another option, and warns no exec about --no-tmpfs', () => {
    expect(catchOptionError(() => validateSandboxOptions(cliInput({ 'host-port': ['80'], network: 'host' }), cliSpell)).message).toContain(
      "can't be used with --network host, where every host port is reachable already; use --network isolated",
    )
    expect(catchOptionError(() => validateSandboxOptions({ hostPorts: [80], network: 'host' })).message).toContain("can't be used with network: 'host'")
    // the runner's own suggestion for files a test chowned is `exec --no-tmpfs -- chown ...`
    expect(validateSandboxOptions(cliInput({ 'no-tmpfs': true }), cliSpell).warnings).toEqual([])
    expect(validateSandboxOptions({ tmpfs: false }).warnings.join('\n')).toContain('no private temp dir (tmpfs: false)')
  })
})
