import { describe, it, expect, afterAll } from 'vitest'
import { mkdtempSync, mkdirSync, writeFileSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { validateSandboxOptions, SANDBOX_OPTION_KEYS } from '../../src/ns/options.js'
import { RootlessOptionError, describe as describeValue } from '../../src/ns/errors.js'

// Real paths, created at collection time so it.each tables can use them.
const root = mkdtempSync(join(tmpdir(), 'vpr-options-'))
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
    expect(resolved.tmpfs).toEqual([tmpdir()])
    expect(resolved.subids).toBe('auto')
    expect(resolved.network).toBe('isolated')
    expect(resolved.keep).toEqual([])
    expect(resolved.hosts).toBeInstanceOf(Map)
    expect(resolved.hosts.size).toBe(0)
    expect(resolved.hostsFile).toBeUndefined()
    expect(resolved.hostname).toBeUndefined()
    expect(resolved.tmpfsSize).toBeUndefined()
    expect(resolved.pidNamespace).toBe(true)
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

  it('accepts an existing hostsFile and returns it normalized', () => {
    expect(validateSandboxOptions({ hostsFile: file }).hostsFile).toBe(file)
    expect(validateSandboxOptions({ hostsFile: join(dir, '..', 'hosts') }).hostsFile).toBe(file)
  })

  it.each(['a', 'box', 'my-host.example', 'A1', '9lives', 'x'.repeat(63)])('accepts hostname %j', (hostname) => {
    expect(validateSandboxOptions({ hostname }).hostname).toBe(hostname)
  })

  it('accepts a 64-character hostname (the documented maximum, HOST_NAME_MAX on Linux)', () => {
    const hostname = 'h'.repeat(64)
    expect(validateSandboxOptions({ hostname }).hostname).toBe(hostname)
  })

  it('accepts tmpfs directories, strips trailing slashes and removes duplicates', () => {
    expect(validateSandboxOptions({ tmpfs: [dir, `${dir}/`, sibling] }).tmpfs).toEqual([dir, sibling])
  })

  it('resolves symlinked tmpfs targets and kept paths, as mount(2) does', () => {
    expect(validateSandboxOptions({ tmpfs: [link], keep: [link] })).toMatchObject({ tmpfs: [sibling], keep: [sibling] })
  })

  it('accepts tmpfs: false and an empty array as "no tmpfs"', () => {
    expect(validateSandboxOptions({ tmpfs: false }).tmpfs).toEqual([])
    expect(validateSandboxOptions({ tmpfs: [] }).tmpfs).toEqual([])
  })

  it.each([
    ['512m', '512m'],
    ['2G', '2g'],
    ['1k', '1k'],
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
      network: 'isolated',
      pidNamespace: false,
      dropEnv: ['NPM_TOKEN', 'AWS_*'],
    })
    expect(resolved).toEqual({
      hosts: new Map([['db', ['10.0.0.2']]]),
      hostsFile: file,
      hostname: 'box',
      tmpfs: [dir],
      tmpfsSize: '64m',
      keep: [nested],
      subids: 'auto',
      network: 'isolated',
      pidNamespace: false,
      dropEnv: ['NPM_TOKEN', 'AWS_*'],
    })
  })

  it('exports the known option keys', () => {
    expect([...SANDBOX_OPTION_KEYS].sort()).toEqual(['hosts', 'hostsFile', 'hostname', 'tmpfs', 'tmpfsSize', 'keep', 'subids', 'network', 'pidNamespace', 'dropEnv'].sort())
  })
})

describe('validateSandboxOptions: invalid values', () => {
  const longLabel = 'a'.repeat(64)
  const longName = Array.from({ length: 4 }, () => 'a'.repeat(63)).join('.') // 255 characters
  const relativePath = relative(process.cwd(), dir) || 'some/dir'

  // [label, input, option, received]
  const cases: Array<[string, unknown, string, unknown]> = [
    ['unknown key', { foo: 1 }, 'foo', 1],
    ['unknown key next to valid ones', { network: 'host', tmpFs: ['/tmp'] }, 'tmpFs', ['/tmp']],
    ['misspelled key with undefined value', { hostName: undefined }, 'hostName', undefined],
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
    ['tmpfsSize "512t"', { tmpfsSize: '512t' }, 'tmpfsSize', '512t'],
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
    ['more than 16 tmpfs targets', { tmpfs: Array.from({ length: 17 }, () => dir) }, 'tmpfs', Array.from({ length: 17 }, () => dir)],
    ['tmpfsSize "1" (bytes, below a page)', { tmpfsSize: '1' }, 'tmpfsSize', '1'],
    ['pidNamespace 0', { pidNamespace: 0 }, 'pidNamespace', 0],
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

  it('rejects null for subids rather than treating it as the default', () => {
    // every other option rejects null; `subids: null` silently turning into 'auto'
    // (the opposite of "off") would be surprising
    const error = catchOptionError(() => validateSandboxOptions({ subids: null }))
    expect(error.option).toBe('subids')
  })

  it('rejects null for network rather than treating it as the default', () => {
    const error = catchOptionError(() => validateSandboxOptions({ network: null }))
    expect(error.option).toBe('network')
  })
})

describe('validateSandboxOptions: spell and allowedKeys', () => {
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

  it('rejects keys outside allowedKeys, listing only the allowed ones', () => {
    const error = catchOptionError(() => validateSandboxOptions({ hostname: 'box' }, undefined, ['hosts', 'network']))
    expect(error.option).toBe('hostname')
    expect(error.message).toContain('hosts, network')
    expect(validateSandboxOptions({ network: 'host' }, undefined, ['hosts', 'network']).network).toBe('host')
  })
})
