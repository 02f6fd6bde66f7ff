import { describe, it, expect } from 'vitest'
import { createSandboxPlan, keptPaths } from '../../src/ns/plan.js'
import type { PlanInputs } from '../../src/ns/plan.js'
import { createIdMapPlan } from '../../src/ns/idmap.js'
import type { IdMapPlan } from '../../src/ns/idmap.js'
import type { ResolvedSandboxOptions } from '../../src/ns/options.js'

function options(overrides: Partial<ResolvedSandboxOptions> = {}): ResolvedSandboxOptions {
  return { hosts: new Map(), tmpfs: [], keep: [], subids: 'auto', network: 'isolated', pidNamespace: false, dropEnv: [], ...overrides }
}

const subidsMap: IdMapPlan = {
  uidMap: [
    { inside: 0, outside: 1000, count: 1 },
    { inside: 1, outside: 100000, count: 65536 },
  ],
  gidMap: [
    { inside: 0, outside: 1001, count: 1 },
    { inside: 1, outside: 200000, count: 65536 },
  ],
  helpers: { newuidmap: '/usr/bin/newuidmap', newgidmap: '/usr/bin/newgidmap' },
  mode: 'subids',
}

const selfMap: IdMapPlan = {
  uidMap: [{ inside: 0, outside: 1000, count: 1 }],
  gidMap: [{ inside: 0, outside: 1001, count: 1 }],
  helpers: null,
  mode: 'self',
}

/** The values that follow each occurrence of `flag` in args. */
function values(args: string[], flag: string): string[] {
  return args.flatMap((a, i) => (a === flag ? [args[i + 1]!] : []))
}

describe('createSandboxPlan: id maps', () => {
  it('writes uid and gid maps and the helpers for a fresh namespace', () => {
    const { args } = createSandboxPlan({ options: options(), idMap: subidsMap })
    expect(args).toEqual([
      '--uid-map', '0:1000:1',
      '--uid-map', '1:100000:65536',
      '--gid-map', '0:1001:1',
      '--gid-map', '1:200000:65536',
      '--newuidmap', '/usr/bin/newuidmap',
      '--newgidmap', '/usr/bin/newgidmap',
    ])
  })

  it('passes no helpers when the map is written directly', () => {
    const { args } = createSandboxPlan({ options: options(), idMap: selfMap })
    expect(args).toEqual(['--uid-map', '0:1000:1', '--gid-map', '0:1001:1'])
  })

  it('takes the map from createIdMapPlan as is', () => {
    const idMap = createIdMapPlan(
      {
        uid: 0, gid: 0, userName: 'root', subuid: [], subgid: [],
        newuidmap: null, newgidmap: null, noNewPrivs: false,
      },
      'auto',
    )
    expect(createSandboxPlan({ options: options(), idMap }).args).toEqual(['--uid-map', '0:0:65536', '--gid-map', '0:0:65536'])
  })

  it('joins a warm namespace with --userns-fd and writes no maps', () => {
    const { args } = createSandboxPlan({ options: options(), idMap: subidsMap, usernsFd: 7 })
    expect(args).toEqual(['--userns-fd', '7'])
  })

  it('treats fd 0 as a warm namespace too', () => {
    const { args } = createSandboxPlan({ options: options(), idMap: subidsMap, usernsFd: 0 })
    expect(args).toEqual(['--userns-fd', '0'])
    expect(args).not.toContain('--uid-map')
    expect(args).not.toContain('--gid-map')
    expect(args).not.toContain('--newuidmap')
    expect(args).not.toContain('--newgidmap')
  })
})

describe('createSandboxPlan: mounts and flags', () => {
  it('adds one --tmpfs per target, and --tmpfs-size when set', () => {
    const { args } = createSandboxPlan({ options: options({ tmpfs: ['/tmp', '/var/tmp'], tmpfsSize: '512m' }), idMap: selfMap })
    expect(values(args, '--tmpfs')).toEqual(['/tmp', '/var/tmp'])
    expect(values(args, '--tmpfs-size')).toEqual(['512m'])
  })

  it('omits --tmpfs and --tmpfs-size when there are none', () => {
    const { args } = createSandboxPlan({ options: options(), idMap: selfMap })
    expect(args).not.toContain('--tmpfs')
    expect(args).not.toContain('--tmpfs-size')
  })

  it('keeps option and needed paths that lie under a tmpfs, outermost only, sorted', () => {
    const plan = createSandboxPlan({
      options: options({ tmpfs: ['/tmp'], keep: ['/tmp/cache', '/tmp/proj/node_modules'] }),
      idMap: selfMap,
      needs: ['/tmp/proj', '/home/alice/proj', '/tmp', '/tmpfoo/x', '/tmp/cache'],
    })
    expect(plan.keep).toEqual(['/tmp/cache', '/tmp/proj'])
    expect(values(plan.args, '--keep')).toEqual(['/tmp/cache', '/tmp/proj'])
  })

  it('passes the rendered hosts file and the hostname', () => {
    const { args } = createSandboxPlan({
      options: options({ hostname: 'box' }),
      idMap: selfMap,
      hostsFile: '/run/user/1000/vpr/hosts',
    })
    expect(values(args, '--hosts-file')).toEqual(['/run/user/1000/vpr/hosts'])
    expect(values(args, '--hostname')).toEqual(['box'])
  })

  it('passes --hosts-file only for the rendered file given in the inputs', () => {
    const { args } = createSandboxPlan({ options: options({ hostsFile: '/etc/my-hosts' }), idMap: selfMap })
    expect(args).not.toContain('--hosts-file')
    expect(args).not.toContain('--hostname')
  })

  it('adds --host-network only for network: host', () => {
    expect(createSandboxPlan({ options: options({ network: 'host' }), idMap: selfMap }).args).toContain('--host-network')
    expect(createSandboxPlan({ options: options({ network: 'isolated' }), idMap: selfMap }).args).not.toContain('--host-network')
  })

  it('adds --new-session only when asked', () => {
    expect(createSandboxPlan({ options: options(), idMap: selfMap, newSession: true }).args).toContain('--new-session')
    expect(createSandboxPlan({ options: options(), idMap: selfMap, newSession: false }).args).not.toContain('--new-session')
    expect(createSandboxPlan({ options: options(), idMap: selfMap }).args).not.toContain('--new-session')
  })

  it('builds the full argv in a fixed order', () => {
    const inputs: PlanInputs = {
      options: options({
        tmpfs: ['/tmp'],
        tmpfsSize: '50%',
        keep: ['/tmp/keep'],
        hostname: 'box',
        network: 'host',
      }),
      idMap: selfMap,
      hostsFile: '/run/hosts',
      needs: ['/tmp/proj'],
      usernsFd: 3,
      newSession: true,
    }
    expect(createSandboxPlan(inputs)).toEqual({
      args: [
        '--userns-fd', '3',
        '--tmpfs', '/tmp',
        '--tmpfs-size', '50%',
        '--keep', '/tmp/keep',
        '--keep', '/tmp/proj',
        '--hosts-file', '/run/hosts',
        '--hostname', 'box',
        '--host-network',
        '--new-session',
      ],
      keep: ['/tmp/keep', '/tmp/proj'],
    })
  })

  it('is pure: same inputs give the same argv and the inputs are untouched', () => {
    const inputs: PlanInputs = {
      options: options({ tmpfs: ['/tmp'], keep: ['/tmp/b', '/tmp/a'] }),
      idMap: subidsMap,
      needs: ['/tmp/c'],
    }
    const first = createSandboxPlan(inputs)
    const second = createSandboxPlan(inputs)
    expect(second).toEqual(first)
    expect(inputs.options.keep).toEqual(['/tmp/b', '/tmp/a'])
    expect(inputs.needs).toEqual(['/tmp/c'])
  })
})

describe('keptPaths', () => {
  it('keeps only paths strictly under a target', () => {
    expect(keptPaths(['/tmp'], ['/tmp/a', '/home/a', '/tmpx', '/tmp'])).toEqual(['/tmp/a'])
  })

  it('drops a path equal to a target', () => {
    expect(keptPaths(['/tmp', '/var/tmp'], ['/tmp', '/var/tmp'])).toEqual([])
  })

  it('keeps the outermost path only', () => {
    expect(keptPaths(['/tmp'], ['/tmp/a/b/c', '/tmp/a', '/tmp/a/b', '/tmp/ab'])).toEqual(['/tmp/a', '/tmp/ab'])
  })

  it('removes duplicates and sorts', () => {
    expect(keptPaths(['/tmp', '/var/tmp'], ['/var/tmp/z', '/tmp/b', '/tmp/b', '/tmp/a'])).toEqual(['/tmp/a', '/tmp/b', '/var/tmp/z'])
  })

  it('handles a target with a trailing slash', () => {
    expect(keptPaths(['/tmp/'], ['/tmp/a', '/tmp/'])).toEqual(['/tmp/a'])
  })

  it('returns nothing without targets', () => {
    expect(keptPaths([], ['/tmp/a'])).toEqual([])
  })

  it('drops a path equal to a target even when it lies under another target', () => {
    // tmpfs on /tmp and on /tmp/x: binding /tmp/x back (the launcher binds every keep
    // path under each tmpfs it mounts, including one equal to the target) would undo
    // the /tmp/x tmpfs, which the doc comment says is why such paths are dropped
    expect(keptPaths(['/tmp', '/tmp/x'], ['/tmp/x'])).toEqual([])
  })
})

describe('createSandboxPlan: pid namespace', () => {
  it('asks for one only when the option is on', () => {
    const idMap = createIdMapPlan({ uid: 1000, gid: 1000, subuid: [], subgid: [], newuidmap: null, newgidmap: null, noNewPrivs: false }, false)
    expect(createSandboxPlan({ options: options({ pidNamespace: true }), idMap }).args).toContain('--pid-namespace')
    expect(createSandboxPlan({ options: options({ pidNamespace: false }), idMap }).args).not.toContain('--pid-namespace')
  })
})
