import { describe, it, expect } from 'vitest'
import { createResetPlan, createSandboxPlan, idMapArgs, launcherArgs, mountPlan } from '../../src/plan/plan.js'
import type { PlanInputs, SandboxPlan } from '../../src/plan/plan.js'
import { createIdMapPlan } from '../../src/plan/idmap.js'
import type { IdMapPlan } from '../../src/plan/idmap.js'
import type { ResolvedSandboxOptions } from '../../src/plan/options.js'

function options(overrides: Partial<ResolvedSandboxOptions> = {}): ResolvedSandboxOptions {
  const defaults: ResolvedSandboxOptions = { hosts: new Map(), hostsFile: undefined, hostsBase: undefined, hostname: undefined, tmpfs: [], tmpfsSize: undefined, keep: [], subids: 'auto', network: 'isolated', egress: [], hostPorts: [], pidNamespace: false, permissions: 'bypass', dropEnv: [], writable: undefined, warnings: [] }
  return { ...defaults, ...overrides } as ResolvedSandboxOptions
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

/** The launcher flags for these inputs. */
function argv(inputs: PlanInputs): string[] {
  return launcherArgs(createSandboxPlan(inputs))
}

/** The values that follow each occurrence of `flag` in args. */
function values(args: string[], flag: string): string[] {
  return args.flatMap((a, i) => (a === flag ? [args[i + 1]!] : []))
}

describe('createSandboxPlan: id maps', () => {
  it('writes uid and gid maps and the helpers for a fresh namespace', () => {
    const args = argv({ options: options(), idMap: subidsMap })
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
    const args = argv({ options: options(), idMap: selfMap })
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
    expect(argv({ options: options(), idMap })).toEqual(['--uid-map', '0:0:65536', '--gid-map', '0:0:65536'])
  })

  it('joins a warm namespace with --userns-fd and writes no maps', () => {
    const args = argv({ options: options(), idMap: subidsMap, usernsFd: 7 })
    expect(args).toEqual(['--userns-fd', '7'])
  })

  it('treats fd 0 as a warm namespace too', () => {
    const args = argv({ options: options(), idMap: subidsMap, usernsFd: 0 })
    expect(args).toEqual(['--userns-fd', '0'])
    expect(args).not.toContain('--uid-map')
    expect(args).not.toContain('--gid-map')
    expect(args).not.toContain('--newuidmap')
    expect(args).not.toContain('--newgidmap')
  })
})

describe('createSandboxPlan: mounts and flags', () => {
  it('adds one --tmpfs per target, and --tmpfs-size when set', () => {
    const args = argv({ options: options({ tmpfs: ['/tmp', '/var/tmp'], tmpfsSize: '512m' }), idMap: selfMap })
    expect(values(args, '--tmpfs')).toEqual(['/tmp', '/var/tmp'])
    expect(values(args, '--tmpfs-size')).toEqual(['512m'])
  })

  it('omits --tmpfs and --tmpfs-size when there are none', () => {
    const args = argv({ options: options(), idMap: selfMap })
    expect(args).not.toContain('--tmpfs')
    expect(args).not.toContain('--tmpfs-size')
  })

  it('keeps option and needed paths that lie under a tmpfs, outermost only, sorted', () => {
    const plan = createSandboxPlan({
      options: options({ tmpfs: ['/tmp'], keep: ['/tmp/cache', '/tmp/proj/node_modules'] }),
      idMap: selfMap,
      needs: ['/tmp/proj', '/home/alice/proj', '/tmp', '/tmpfoo/x', '/tmp/cache'],
    })
    expect(plan.mounts).toEqual([{ tmpfs: '/tmp', keep: ['/tmp/cache', '/tmp/proj'] }])
    expect(values(launcherArgs(plan), '--keep')).toEqual(['/tmp/cache', '/tmp/proj'])
  })

  it('puts each --keep right after the --tmpfs it lies under, targets in the order given', () => {
    const args = argv({
      options: options({ tmpfs: ['/var/tmp', '/tmp'], keep: ['/tmp/b'] }),
      idMap: selfMap,
      needs: ['/var/tmp/x', '/tmp/a'],
    })
    expect(args).toEqual([
      '--uid-map', '0:1000:1', '--gid-map', '0:1001:1',
      '--tmpfs', '/var/tmp', '--keep', '/var/tmp/x',
      '--tmpfs', '/tmp', '--keep', '/tmp/a', '--keep', '/tmp/b',
    ])
  })

  it('passes the rendered hosts file and the hostname', () => {
    const args = argv({
      options: options({ hostname: 'box' }),
      idMap: selfMap,
      hostsFile: '/run/user/1000/vpr/hosts',
    })
    expect(values(args, '--hosts-file')).toEqual(['/run/user/1000/vpr/hosts'])
    expect(values(args, '--hostname')).toEqual(['box'])
  })

  it('passes --hosts-file only for the rendered file given in the inputs', () => {
    const args = argv({ options: options({ hostsFile: '/etc/my-hosts' }), idMap: selfMap })
    expect(args).not.toContain('--hosts-file')
    expect(args).not.toContain('--hostname')
  })

  it('adds --host-network only for network: host', () => {
    expect(argv({ options: options({ network: 'host' }), idMap: selfMap })).toContain('--host-network')
    expect(argv({ options: options({ network: 'isolated' }), idMap: selfMap })).not.toContain('--host-network')
  })

  it('adds --new-session only when asked', () => {
    expect(argv({ options: options(), idMap: selfMap, newSession: true })).toContain('--new-session')
    expect(argv({ options: options(), idMap: selfMap, newSession: false })).not.toContain('--new-session')
    expect(argv({ options: options(), idMap: selfMap })).not.toContain('--new-session')
  })

  it('builds the full plan, and the argv in a fixed order', () => {
    const inputs: PlanInputs = {
      options: options({
        tmpfs: ['/tmp'],
        tmpfsSize: '50%',
        keep: ['/tmp/keep'],
        hostname: 'box',
        network: 'host',
        pidNamespace: true,
      }),
      idMap: selfMap,
      hostsFile: '/run/hosts',
      needs: ['/tmp/proj'],
      usernsFd: 3,
      newSession: true,
      statusFd: 5,
    }
    const plan = createSandboxPlan(inputs)
    expect(plan).toStrictEqual({
      user: { joinFd: 3 },
      mounts: [{ tmpfs: '/tmp', keep: ['/tmp/keep', '/tmp/proj'] }],
      tmpfsSize: '50%',
      hostsFile: '/run/hosts',
      hostname: 'box',
      network: 'host',
      forwards: [],
      newSession: true,
      pidNamespace: true,
      statusFd: 5,
    })
    expect(launcherArgs(plan)).toEqual([
      '--status-fd', '5',
      '--userns-fd', '3',
      '--tmpfs', '/tmp',
      '--keep', '/tmp/keep',
      '--keep', '/tmp/proj',
      '--tmpfs-size', '50%',
      '--hosts-file', '/run/hosts',
      '--hostname', 'box',
      '--host-network',
      '--new-session',
      '--pid-namespace',
    ])
  })

  it('takes a network namespace made ahead from the warm holder\'s socket, where the sandbox has its own network', () => {
    const warm = { idMap: selfMap, usernsFd: 3, networksSocket: '/run/state/networks' }
    const isolated = createSandboxPlan({ options: options(), ...warm })
    expect(isolated.user).toStrictEqual({ joinFd: 3, networksSocket: '/run/state/networks' })
    expect(launcherArgs(isolated).slice(0, 4)).toEqual(['--userns-fd', '3', '--networks', '/run/state/networks'])
    // the host's network: nothing to take
    const host = createSandboxPlan({ options: options({ network: 'host' }), ...warm })
    expect(host.user).toStrictEqual({ joinFd: 3 })
    expect(launcherArgs(host)).not.toContain('--networks')
  })

  it('leaves optional fields out of a minimal plan', () => {
    expect(createSandboxPlan({ options: options(), idMap: selfMap })).toStrictEqual({
      user: { idMap: selfMap },
      mounts: [],
      network: 'isolated',
      forwards: [],
      newSession: false,
      pidNamespace: false,
    })
  })

  it("gives the forwarder the host's channel for later forwards where the sandbox has a network of its own, never on the host's", () => {
    expect(values(argv({ options: options({}), idMap: selfMap, forwardHostFd: 6 }), '--forward-host-fd')).toEqual(['6'])
    expect(argv({ options: options({ network: 'host' }), idMap: selfMap, forwardHostFd: 6 })).not.toContain('--forward-host-fd')
    expect(argv({ options: options({}), idMap: selfMap })).not.toContain('--forward-host-fd')
  })

  it('forwards hostPorts, then runner ports hostPorts leaves free, each once; none on the host network', () => {
    const hostPorts = [{ inside: 5432, host: 5432 }, { inside: 6379, host: 32768 }]
    const plan = createSandboxPlan({ options: options({ hostPorts }), idMap: selfMap, runnerPorts: [41000, 6379, 41000], nsswitchFile: '/run/nsswitch.conf' })
    expect(plan.forwards).toEqual([
      { inside: 5432, host: 5432 },
      { inside: 6379, host: 32768 },
      { inside: 41000, host: 41000 },
    ])
    expect(launcherArgs(plan)).toEqual([...idMapArgs(selfMap), '--nsswitch-file', '/run/nsswitch.conf', '--forward', '5432:5432', '--forward', '6379:32768', '--forward', '41000:41000'])
    // a reused worker's fresh network gets the same forwards
    expect(createResetPlan(plan, '', '/addon').args).toEqual(['--reset', '--new-network', '--forward', '5432:5432', '--forward', '6379:32768', '--forward', '41000:41000'])
    const host = createSandboxPlan({ options: options({ network: 'host' }), idMap: selfMap, runnerPorts: [41000], nsswitchFile: '/run/nsswitch.conf' })
    expect(host.forwards).toEqual([])
    // the host network's DNS works: the host's nsswitch.conf stays
    expect(host.nsswitchFile).toBeUndefined()
  })

  it("forwards fixed hostPorts, then those of this start (services, forwardHostPort's, ranges' served ports), then runner ports; ranges and names themselves are no forwards", () => {
    const hostPorts = [{ inside: 5432, host: 5432 }, { from: 40000, to: 40010 }, { name: 'redis', port: 6379 }]
    const plan = createSandboxPlan({
      options: options({ hostPorts }),
      idMap: selfMap,
      hostForwards: [{ inside: 6379, host: 38001 }, { inside: 5432, host: 9999 }, { inside: 40003, host: 40003 }],
      runnerPorts: [40003, 41000],
    })
    // each port inside once: the first meaning wins
    expect(plan.forwards).toEqual([
      { inside: 5432, host: 5432 },
      { inside: 6379, host: 38001 },
      { inside: 40003, host: 40003 },
      { inside: 41000, host: 41000 },
    ])
  })

  it('passes the ranges themselves (--forward-range) to a sandbox, after its forwards, and none to a reset or on the host network', () => {
    const hostPorts = [{ from: 40000, to: 40010 }, { inside: 5432, host: 5432 }, { from: 50000, to: 50000 }]
    const plan = createSandboxPlan({ options: options({ hostPorts }), idMap: selfMap, hostForwards: [{ inside: 40003, host: 40003 }] })
    expect(launcherArgs(plan).slice(idMapArgs(selfMap).length)).toEqual(['--forward', '5432:5432', '--forward', '40003:40003', '--forward-range', '40000-40010', '--forward-range', '50000-50000'])
    expect(createResetPlan(plan, '', '/addon').args).not.toContain('--forward-range')
    expect(launcherArgs(createSandboxPlan({ options: options({ hostPorts, network: 'host' }), idMap: selfMap }))).not.toContain('--forward-range')
  })

  it('passes --status-fd only when asked, fd 0 not mistaken for none', () => {
    expect(argv({ options: options(), idMap: selfMap })).not.toContain('--status-fd')
    expect(values(argv({ options: options(), idMap: selfMap, statusFd: 6 }), '--status-fd')).toEqual(['6'])
  })

  it('spells a hand-made plan too: the argv is a function of the plan alone', () => {
    const plan: SandboxPlan = {
      user: { idMap: subidsMap },
      mounts: [{ tmpfs: '/srv', keep: ['/srv/x'] }, { tmpfs: '/tmp', keep: [] }],
      network: 'isolated',
      forwards: [],
      newSession: false,
      pidNamespace: false,
    }
    expect(launcherArgs(plan)).toEqual([...idMapArgs(subidsMap), '--tmpfs', '/srv', '--keep', '/srv/x', '--tmpfs', '/tmp'])
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

describe('mountPlan', () => {
  /** The kept paths, whichever tmpfs they went to. */
  const kept = (tmpfs: string[], needs: string[]) => mountPlan(tmpfs, needs).flatMap((m) => m.keep)

  it('keeps only paths strictly under a target', () => {
    expect(mountPlan(['/tmp'], ['/tmp/a', '/home/a', '/tmpx', '/tmp'])).toEqual([{ tmpfs: '/tmp', keep: ['/tmp/a'] }])
  })

  it('drops a path equal to a target, and still lists the target', () => {
    expect(mountPlan(['/tmp', '/var/tmp'], ['/tmp', '/var/tmp'])).toEqual([
      { tmpfs: '/tmp', keep: [] },
      { tmpfs: '/var/tmp', keep: [] },
    ])
  })

  it('keeps the outermost path only', () => {
    expect(kept(['/tmp'], ['/tmp/a/b/c', '/tmp/a', '/tmp/a/b', '/tmp/ab'])).toEqual(['/tmp/a', '/tmp/ab'])
  })

  it('removes duplicates and sorts within each tmpfs', () => {
    expect(mountPlan(['/tmp', '/var/tmp'], ['/var/tmp/z', '/tmp/b', '/tmp/b', '/tmp/a', '/var/tmp/c'])).toEqual([
      { tmpfs: '/tmp', keep: ['/tmp/a', '/tmp/b'] },
      { tmpfs: '/var/tmp', keep: ['/var/tmp/c', '/var/tmp/z'] },
    ])
  })

  it('assigns each path to the tmpfs it lies under, not one that merely shares a prefix', () => {
    expect(mountPlan(['/tmp', '/tmpfoo'], ['/tmpfoo/x', '/tmp/y'])).toEqual([
      { tmpfs: '/tmp', keep: ['/tmp/y'] },
      { tmpfs: '/tmpfoo', keep: ['/tmpfoo/x'] },
    ])
  })

  it('keeps the targets in the order given (the launcher mounts them in that order)', () => {
    expect(mountPlan(['/var/tmp', '/tmp'], []).map((m) => m.tmpfs)).toEqual(['/var/tmp', '/tmp'])
  })

  it('handles a target with a trailing slash', () => {
    expect(mountPlan(['/tmp/'], ['/tmp/a', '/tmp/'])).toEqual([{ tmpfs: '/tmp/', keep: ['/tmp/a'] }])
  })

  it('returns nothing without targets', () => {
    expect(mountPlan([], ['/tmp/a'])).toEqual([])
  })

  it('drops a path equal to a target even when it lies under another target', () => {
    // binding /tmp/x back onto the /tmp tmpfs would put the host's /tmp/x over the
    // /tmp/x tmpfs again, undoing it
    expect(kept(['/tmp', '/tmp/x'], ['/tmp/x'])).toEqual([])
  })

  it('gives a path under nested targets to the innermost one', () => {
    expect(mountPlan(['/tmp', '/tmp/x'], ['/tmp/x/y'])).toEqual([
      { tmpfs: '/tmp', keep: [] },
      { tmpfs: '/tmp/x', keep: ['/tmp/x/y'] },
    ])
  })

  it('leaves its inputs untouched', () => {
    const tmpfs = ['/tmp']
    const needs = ['/tmp/b', '/tmp/a']
    mountPlan(tmpfs, needs)
    expect(needs).toEqual(['/tmp/b', '/tmp/a'])
    expect(tmpfs).toEqual(['/tmp'])
  })
})

describe('createResetPlan', () => {
  it('asks the addon to rebuild the sandbox plan\'s own writable layers, stop left processes and renew the network', () => {
    const plan = createSandboxPlan({
      options: options({ tmpfs: ['/tmp', '/var/tmp'], tmpfsSize: '64m', keep: ['/var/tmp/k'], pidNamespace: true }),
      idMap: selfMap,
      needs: ['/tmp/proj', '/home/me'],
      usernsFd: 4,
    })
    expect(createResetPlan(plan, '127.0.0.1 localhost\n', '/opt/rootless.node')).toStrictEqual({
      addon: '/opt/rootless.node',
      args: ['--reset', '--tmpfs', '/tmp', '--keep', '/tmp/proj', '--tmpfs', '/var/tmp', '--keep', '/var/tmp/k', '--tmpfs-size', '64m', '--kill-others', '--new-network'],
      hosts: '127.0.0.1 localhost\n',
    })
  })

  it('stops no process without a pid namespace of its own, and keeps the host network', () => {
    const plan = createSandboxPlan({ options: options({ pidNamespace: false, network: 'host' }), idMap: selfMap })
    const { args } = createResetPlan(plan, 'h', '/a')
    expect(args).not.toContain('--kill-others')
    expect(args).not.toContain('--new-network')
  })

  it('spells the mounts exactly as the sandbox\'s own launcher flags do, and survives JSON (it travels in an env var)', () => {
    const plan = createSandboxPlan({ options: options({ tmpfs: ['/tmp'] }), idMap: selfMap, needs: ['/tmp/a'] })
    const reset = createResetPlan(plan, 'h', '/l')
    const mountFlags = ['--tmpfs', '--keep', '--tmpfs-size']
    const mounts = launcherArgs(plan).filter((_, i, all) => mountFlags.includes(all[i]!) || mountFlags.includes(all[i - 1]!))
    expect(reset.args.filter((_, i, all) => mountFlags.includes(all[i]!) || mountFlags.includes(all[i - 1]!))).toEqual(mounts)
    expect(JSON.parse(JSON.stringify(reset))).toStrictEqual(reset)
  })
})

describe('createSandboxPlan: a temp dir inside a tmpfs target', () => {
  it('is made anew after the mounts, by the launch and by every reset', () => {
    const plan = createSandboxPlan({ options: options({ tmpfs: ['/tmp'], tmpfsDirs: ['/tmp/user/1000'] }), idMap: selfMap, needs: ['/tmp/user/1000/proj'] })
    const args = launcherArgs(plan)
    expect(values(args, '--tmpfs')).toEqual(['/tmp'])
    expect(values(args, '--keep')).toEqual(['/tmp/user/1000/proj'])
    expect(values(args, '--tmpfs-dir')).toEqual(['/tmp/user/1000'])
    expect(values(createResetPlan(plan, '', '/addon').args, '--tmpfs-dir')).toEqual(['/tmp/user/1000'])
    expect(launcherArgs(createSandboxPlan({ options: options({ tmpfs: ['/tmp'] }), idMap: selfMap }))).not.toContain('--tmpfs-dir')
  })
})

describe('createSandboxPlan: permissions', () => {
  it("drops the permission-bypassing capabilities only for 'enforce', before the pid namespace", () => {
    const args = argv({ options: options({ permissions: 'enforce', pidNamespace: true }), idMap: selfMap })
    expect(args).toContain('--enforce-permissions')
    expect(args.indexOf('--enforce-permissions')).toBeLessThan(args.indexOf('--pid-namespace'))
    expect(argv({ options: options({ permissions: 'bypass' }), idMap: selfMap })).not.toContain('--enforce-permissions')
    // a reset keeps what the launcher dropped: it has no flag for it
    const reset = createResetPlan(createSandboxPlan({ options: options({ permissions: 'enforce' }), idMap: selfMap }), '', '/addon')
    expect(reset.args).not.toContain('--enforce-permissions')
  })
})

describe('createSandboxPlan: pid namespace', () => {
  it('asks for one only when the option is on', () => {
    const idMap = createIdMapPlan({ uid: 1000, gid: 1000, subuid: [], subgid: [], newuidmap: null, newgidmap: null, noNewPrivs: false }, false)
    expect(argv({ options: options({ pidNamespace: true }), idMap })).toContain('--pid-namespace')
    expect(argv({ options: options({ pidNamespace: false }), idMap })).not.toContain('--pid-namespace')
  })
})
