import { describe, it, expect } from 'vitest'
import { createIdMapPlan } from '../../src/plan/idmap.js'
import type { IdentityFacts } from '../../src/plan/idmap.js'
import type { SubidEntry } from '../../src/plan/subid.js'

const entry = (owner: string, start: number, count: number, line = 1): SubidEntry => ({ owner, start, count, line })

/** An unprivileged user with one subuid/subgid range and both helpers installed. */
function facts(overrides: Partial<IdentityFacts> = {}): IdentityFacts {
  return {
    uid: 1000,
    gid: 1001,
    userName: 'alice',
    subuid: [entry('alice', 100000, 65536)],
    subgid: [entry('alice', 200000, 65536)],
    newuidmap: '/usr/bin/newuidmap',
    newgidmap: '/usr/bin/newgidmap',
    noNewPrivs: false,
    ...overrides,
  }
}

const selfUid = [{ inside: 0, outside: 1000, count: 1 }]
const selfGid = [{ inside: 0, outside: 1001, count: 1 }]

describe('createIdMapPlan: unprivileged', () => {
  it('maps own id to 0 and stacks the subordinate range at 1, through the helpers', () => {
    const plan = createIdMapPlan(facts(), 'auto')
    expect(plan).toEqual({
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
    })
    expect(plan.warning).toBeUndefined()
  })

  it('stacks several ranges at 1, 1+count0, 1+count0+count1, in start order', () => {
    const plan = createIdMapPlan(
      facts({
        subuid: [entry('alice', 300000, 50, 1), entry('alice', 100000, 10, 2), entry('1000', 200000, 20, 3)],
        subgid: [entry('alice', 500000, 7, 1), entry('1000', 400000, 3, 2)],
      }),
      'auto',
    )
    expect(plan.mode).toBe('subids')
    expect(plan.uidMap).toEqual([
      { inside: 0, outside: 1000, count: 1 },
      { inside: 1, outside: 100000, count: 10 },
      { inside: 11, outside: 200000, count: 20 },
      { inside: 31, outside: 300000, count: 50 },
    ])
    expect(plan.gidMap).toEqual([
      { inside: 0, outside: 1001, count: 1 },
      { inside: 1, outside: 400000, count: 3 },
      { inside: 4, outside: 500000, count: 7 },
    ])
  })

  it('matches ranges by uid when the user has no name', () => {
    const plan = createIdMapPlan(
      facts({ userName: undefined, subuid: [entry('1000', 100000, 10)], subgid: [entry('1000', 100000, 10)] }),
      'auto',
    )
    expect(plan.mode).toBe('subids')
    expect(plan.uidMap[1]).toEqual({ inside: 1, outside: 100000, count: 10 })
  })

  it('falls back to the own id with a warning when /etc/subuid has no range', () => {
    const plan = createIdMapPlan(facts({ subuid: [entry('bob', 100000, 65536)] }), 'auto')
    expect(plan.uidMap).toEqual(selfUid)
    expect(plan.gidMap).toEqual(selfGid)
    expect(plan.helpers).toBeNull()
    expect(plan.mode).toBe('self')
    expect(plan.warning).toMatch(/^vitest-pool-rootless: /)
    expect(plan.warning).toContain('/etc/subuid')
    expect(plan.warning).toMatch(/^vitest-pool-rootless: \/etc\/subuid has no range for alice \(uid 1000\)/)
    expect(plan.warning).toContain('usermod')
    expect(plan.warning).toContain('alice')
    expect(plan.warning).toContain('uid 1000')
  })

  it('names only /etc/subgid when just the gid range is missing', () => {
    const plan = createIdMapPlan(facts({ subgid: [] }), 'auto')
    expect(plan.mode).toBe('self')
    expect(plan.warning).toMatch(/^vitest-pool-rootless: \/etc\/subgid has no range/)
    expect(plan.warning).toContain('usermod')
  })

  it('names both files when both are missing, and uses the uid when there is no name', () => {
    const plan = createIdMapPlan(facts({ userName: undefined, subuid: [], subgid: [] }), 'auto')
    expect(plan.mode).toBe('self')
    expect(plan.warning).toMatch(/^vitest-pool-rootless: \/etc\/subuid and \/etc\/subgid have no range for uid 1000\./)
    expect(plan.warning).toContain('usermod')
    expect(plan.warning).toContain('1000:100000:65536')
  })

  it('falls back with a warning naming the uidmap package when newuidmap is missing', () => {
    const plan = createIdMapPlan(facts({ newuidmap: null }), 'auto')
    expect(plan.uidMap).toEqual(selfUid)
    expect(plan.gidMap).toEqual(selfGid)
    expect(plan.helpers).toBeNull()
    expect(plan.mode).toBe('self')
    expect(plan.warning).toContain('newuidmap')
    expect(plan.warning).toContain('uidmap')
    expect(plan.warning).toMatch(/apt-get install uidmap/)
  })

  it('falls back with the same warning when only newgidmap is missing', () => {
    const plan = createIdMapPlan(facts({ newgidmap: null }), 'auto')
    expect(plan.mode).toBe('self')
    expect(plan.helpers).toBeNull()
    expect(plan.warning).toMatch(/apt-get install uidmap/)
  })

  it('falls back with a warning naming NoNewPrivs when no_new_privs is set', () => {
    const plan = createIdMapPlan(facts({ noNewPrivs: true }), 'auto')
    expect(plan.uidMap).toEqual(selfUid)
    expect(plan.gidMap).toEqual(selfGid)
    expect(plan.helpers).toBeNull()
    expect(plan.mode).toBe('self')
    expect(plan.warning).toContain('NoNewPrivs')
  })

  it('maps only the own id, without a warning, when subids is false', () => {
    const plan = createIdMapPlan(facts({ subuid: [], subgid: [], newuidmap: null, noNewPrivs: true }), false)
    expect(plan).toEqual({ uidMap: selfUid, gidMap: selfGid, helpers: null, mode: 'self' })
    expect('warning' in plan).toBe(false)
  })

  it('ignores even broken subid files when subids is false', () => {
    // own uid inside the range would throw with 'auto'
    const plan = createIdMapPlan(facts({ subuid: [entry('alice', 0, 65536)] }), false)
    expect(plan.mode).toBe('self')
  })

  it('falls back, naming the line, when a range contains the own uid', () => {
    const plan = createIdMapPlan(facts({ subuid: [entry('alice', 0, 65536, 4)] }), 'auto')
    expect(plan.mode).toBe('self')
    expect(plan.helpers).toBeNull()
    expect(plan.warning).toContain('/etc/subuid:4:')
    expect(plan.warning).toContain('contains alice')
  })

  it('names /etc/subgid when the gid ranges overlap', () => {
    const plan = createIdMapPlan(facts({ subgid: [entry('alice', 200000, 10, 2), entry('alice', 200005, 10, 9)] }), 'auto')
    expect(plan.mode).toBe('self')
    expect(plan.warning).toContain('/etc/subgid:9:')
  })

  it('falls back with the reason when the own subid lines could not be read', () => {
    const plan = createIdMapPlan(facts({ subidProblem: '/etc/subuid:3: expected "name:start:count", got "alice:x:1"' }), 'auto')
    expect(plan.mode).toBe('self')
    expect(plan.warning).toContain('/etc/subuid:3:')
    // and with subids: false the problem is not even mentioned
    expect(createIdMapPlan(facts({ subidProblem: 'broken' }), false).warning).toBeUndefined()
  })
})

describe('createIdMapPlan: real root', () => {
  const root = (overrides: Partial<IdentityFacts> = {}): IdentityFacts =>
    facts({ uid: 0, gid: 0, userName: 'root', subuid: [], subgid: [], newuidmap: null, newgidmap: null, ...overrides })

  it('maps ids 0..65535 onto themselves without subid ranges, no helpers, no warning', () => {
    const plan = createIdMapPlan(root(), 'auto')
    expect(plan).toEqual({
      uidMap: [{ inside: 0, outside: 0, count: 65536 }],
      gidMap: [{ inside: 0, outside: 0, count: 65536 }],
      helpers: null,
      mode: 'root',
    })
    expect(plan.warning).toBeUndefined()
  })

  it('stacks root\'s own subid ranges when it has them, without helpers', () => {
    const plan = createIdMapPlan(
      root({
        subuid: [entry('root', 100000, 65536)],
        subgid: [entry('0', 300000, 10), entry('root', 200000, 20)],
        newuidmap: '/usr/bin/newuidmap',
        newgidmap: '/usr/bin/newgidmap',
      }),
      'auto',
    )
    expect(plan).toEqual({
      uidMap: [
        { inside: 0, outside: 0, count: 1 },
        { inside: 1, outside: 100000, count: 65536 },
      ],
      gidMap: [
        { inside: 0, outside: 0, count: 1 },
        { inside: 1, outside: 200000, count: 20 },
        { inside: 21, outside: 300000, count: 10 },
      ],
      helpers: null,
      mode: 'root',
    })
  })

  it('uses the identity map when only one of subuid/subgid has a range', () => {
    const plan = createIdMapPlan(root({ subuid: [entry('root', 100000, 65536)] }), 'auto')
    expect(plan.uidMap).toEqual([{ inside: 0, outside: 0, count: 65536 }])
    expect(plan.gidMap).toEqual([{ inside: 0, outside: 0, count: 65536 }])
    expect(plan.mode).toBe('root')
  })

  it('is not affected by NoNewPrivs (no setuid helpers needed)', () => {
    const plan = createIdMapPlan(root({ noNewPrivs: true }), 'auto')
    expect(plan.mode).toBe('root')
    expect(plan.warning).toBeUndefined()
  })

  it('maps root alone when subids is false, even with ranges', () => {
    const plan = createIdMapPlan(root({ subuid: [entry('root', 100000, 65536)], subgid: [entry('root', 100000, 65536)] }), false)
    expect(plan).toEqual({
      uidMap: [{ inside: 0, outside: 0, count: 1 }],
      gidMap: [{ inside: 0, outside: 0, count: 1 }],
      helpers: null,
      mode: 'root',
    })
  })
})

describe('createIdMapPlan: already inside a user namespace (unprivileged)', () => {
  const full = [{ inside: 0, outside: 0, count: 4294967295 }]

  it('falls back to its own id when the namespace maps only that id (unshare --map-current-user, rootless containers)', () => {
    const plan = createIdMapPlan(facts({ ownUidMap: [{ inside: 1000, outside: 1000, count: 1 }], ownGidMap: [{ inside: 1001, outside: 1001, count: 1 }] }), 'auto')
    expect(plan.mode).toBe('self')
    expect(plan.uidMap).toEqual(selfUid)
    expect(plan.gidMap).toEqual(selfGid)
    expect(plan.helpers).toBeNull()
    expect(plan.warning).toContain("doesn't map your /etc/subuid and /etc/subgid ranges")
    expect(plan.warning).toContain('subids: false')
  })

  it('uses the subordinate ranges when the namespace maps them (pieced together from several lines)', () => {
    const ownUidMap = [
      { inside: 0, outside: 0, count: 1001 },
      { inside: 100000, outside: 500000, count: 30000 },
      { inside: 130000, outside: 700000, count: 40000 },
    ]
    const plan = createIdMapPlan(facts({ ownUidMap, ownGidMap: full }), 'auto')
    expect(plan.mode).toBe('subids')
    expect(plan.warning).toBeUndefined()
  })

  it('falls back when the subgid range is only partly mapped', () => {
    const plan = createIdMapPlan(facts({ ownUidMap: full, ownGidMap: [{ inside: 200000, outside: 200000, count: 100 }] }), 'auto')
    expect(plan.mode).toBe('self')
  })
})

describe('createIdMapPlan: the range proposed to a user without one', () => {
  it('is free in both files: not a range another user already has', () => {
    const usedSubids = [
      { start: 100000, count: 65536 },
      { start: 165536, count: 65536 },
      { start: 250000, count: 10 },
    ]
    const plan = createIdMapPlan(facts({ subuid: [], subgid: [], usedSubids }), 'auto')
    expect(plan.warning).toContain('sudo usermod --add-subuids 296608-362143 --add-subgids 296608-362143 alice')
    expect(plan.warning).toContain('"alice:296608:65536"')
  })
})
