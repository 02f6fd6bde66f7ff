import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { findEgressHelper, installedEgressHelpers, resolveEgressAllow } from '../../src/engine/egress.js'
import { renderEgressResolvConf } from '../../src/plan/egress.js'
import { renderNsswitch } from '../../src/plan/hosts.js'
import { validatePoolOptions, validateSandboxOptions } from '../../src/plan/options.js'
import { createResetPlan, createSandboxPlan, launcherArgs } from '../../src/plan/plan.js'
import type { ResolvedSandboxOptions } from '../../src/plan/options.js'

const selfMap = { uidMap: [{ inside: 0, outside: 1000, count: 1 }], gidMap: [{ inside: 0, outside: 1001, count: 1 }], helpers: null, mode: 'self' as const }
const pasta = { kind: 'pasta' as const, path: '/usr/bin/pasta' }

const fakeHosts: string[] = []
afterAll(() => {
  for (const dir of fakeHosts) rmSync(dir, { recursive: true, force: true })
})

/** A PATH directory holding fake helpers of the given names, and a fake tap device. */
function fakeHost(names: string[], tunMode = 0o666): { env: NodeJS.ProcessEnv; tun: string } {
  const dir = mkdtempSync(join(tmpdir(), 'vpr-egress-unit-'))
  fakeHosts.push(dir)
  mkdirSync(join(dir, 'bin'))
  for (const name of names) writeFileSync(join(dir, 'bin', name), '#!/bin/sh\n', { mode: 0o755 })
  const tun = join(dir, 'tun')
  writeFileSync(tun, '')
  chmodSync(tun, tunMode)
  // only the fake directory: the system directories are searched too, so tests that need
  // "none installed" pass a PATH-independent check below
  return { env: { PATH: join(dir, 'bin') }, tun }
}

describe("network: 'egress' options", () => {
  it('takes egress, and names it among the choices of a bad value', () => {
    expect(validatePoolOptions({ network: 'egress' }).network).toBe('egress')
    expect(() => validatePoolOptions({ network: 'outside' })).toThrow('option `network` expects one of "isolated", "egress", "host", got "outside"')
  })

  it('keeps hostPorts with egress and refuses them with host only', () => {
    expect(validateSandboxOptions({ network: 'egress', hostPorts: [5432] }).hostPorts).toEqual([{ inside: 5432, host: 5432 }])
    expect(() => validateSandboxOptions({ network: 'host', hostPorts: [5432] })).toThrow("use network: 'isolated' or network: 'egress'")
  })
})

describe("network: 'egress' plan", () => {
  const options = { ...validateSandboxOptions({ network: 'egress', hostPorts: [5432] }), tmpfs: [] } as ResolvedSandboxOptions

  it('is the isolated network plus the helper: forwards, nsswitch, namespaces made ahead, resolv.conf, --egress', () => {
    const plan = createSandboxPlan({ options, idMap: selfMap, usernsFd: 3, networksSocket: '/s/networks', nsswitchFile: '/s/nsswitch.conf', egress: pasta, resolvFile: '/s/resolv.conf', runnerPorts: [41000] })
    const args = launcherArgs(plan)
    expect(args).toEqual(['--userns-fd', '3', '--networks', '/s/networks', '--nsswitch-file', '/s/nsswitch.conf', '--resolv-file', '/s/resolv.conf', '--forward', '5432:5432', '--forward', '41000:41000', '--egress', 'pasta:/usr/bin/pasta', '--pid-namespace'])
    expect(args).not.toContain('--host-network')
    // a reused worker's fresh network gets its own helper
    expect(createResetPlan(plan, '', '/addon').args).toEqual(['--reset', '--kill-others', '--new-network', '--egress', 'pasta:/usr/bin/pasta', '--forward', '5432:5432', '--forward', '41000:41000'])
  })

  it('refuses to plan egress without its helper', () => {
    expect(() => createSandboxPlan({ options, idMap: selfMap })).toThrow("network: 'egress' planned without its helper")
  })

  it('resolves from the hosts file first, then DNS through the helper', () => {
    expect(renderNsswitch('passwd: files\nhosts: files mdns4_minimal [NOTFOUND=return] dns\n', 'files dns')).toBe('passwd: files\nhosts:          files dns\n')
    expect(renderEgressResolvConf(pasta)).toMatch(/^nameserver 169\.254\.1\.1$/m)
    expect(renderEgressResolvConf({ kind: 'slirp4netns', path: '/usr/bin/slirp4netns' })).toMatch(/^nameserver 10\.0\.2\.3$/m)
  })
})

describe('the egress allow-list (option `egress`)', () => {
  it('takes names, addresses and CIDR ranges; an address is its own /32 or /128, host bits stay for the launcher to clear', () => {
    const options = validatePoolOptions({ egress: ['API.Example.com.', '198.18.0.2', '10.0.0.0/8', 'fd00::/8', '2001:db8::1', '10.1.2.3/16'] })
    expect(options.egress).toEqual(['api.example.com', '198.18.0.2/32', '10.0.0.0/8', 'fd00::/8', '2001:db8::1/128', '10.1.2.3/16'])
  })

  it('implies the egress network, and refuses another network beside it', () => {
    expect(validatePoolOptions({ egress: ['10.0.0.0/8'] }).network).toBe('egress')
    expect(validatePoolOptions({ network: 'egress', egress: ['10.0.0.0/8'] }).network).toBe('egress')
    expect(validatePoolOptions({ network: 'isolated' }).egress).toEqual([])
    expect(() => validatePoolOptions({ network: 'isolated', egress: ['10.0.0.0/8'] })).toThrow(
      "vitest-pool-rootless: option `egress` lists the destinations network: 'egress' reaches, so it can't be used with network: 'isolated'; leave out network (or set network: 'egress'), got [\"10.0.0.0/8\"]",
    )
    expect(() => validateSandboxOptions({ network: 'host', egress: ['10.0.0.0/8'] }, (key) => (key === 'egress' ? '--egress' : key === 'network' ? '--network' : key))).toThrow(
      "option `--egress` lists the destinations --network egress reaches, so it can't be used with --network host",
    )
  })

  it('refuses an entry that is neither a name nor an address or range, an empty list, and a non-list, naming the option', () => {
    for (const bad of ['10.0.0.0/33', 'fd00::/129', '10.0.0', '300.1.1.1', 'has space.com', '10.0.0.0/8/1', '/8', 'a/8', '']) {
      expect(() => validatePoolOptions({ egress: [bad] }), bad).toThrow(`option \`egress\` expects host names, IP addresses or CIDR ranges (e.g. ['api.example.com', '10.0.0.0/8', 'fd00::/8']): a host name, an IPv4 or IPv6 address, or ADDR/LEN`)
    }
    expect(() => validatePoolOptions({ egress: [8080] })).toThrow('option `egress` expects host names')
    expect(() => validatePoolOptions({ egress: [] })).toThrow('option `egress` expects at least one destination; leave it out to reach every destination')
    expect(() => validatePoolOptions({ egress: 'api.example.com' })).toThrow('option `egress` expects an array of host names')
  })

  it("resolves names to every address the host gives them; a name it can't resolve is one error naming the option", () => {
    const asked: string[][] = []
    const lookUp = (names: string[]) => {
      asked.push(names)
      return names.map((name) => (name === 'api.example.com' ? { address: '192.0.2.7', addresses: ['192.0.2.7', '2001:db8::7'] } : name === 'one.test' ? { address: '192.0.2.9' } : { error: 'ENOTFOUND' }))
    }
    expect(resolveEgressAllow(['10.0.0.0/8', 'api.example.com', 'one.test', '192.0.2.7/32'], 'egress', lookUp)).toEqual(['10.0.0.0/8', '192.0.2.7/32', '2001:db8::7/128', '192.0.2.9/32'])
    expect(asked).toEqual([['api.example.com', 'one.test']])
    expect(() => resolveEgressAllow(['nowhere.invalid'], '--egress', lookUp)).toThrow(
      'vitest-pool-rootless: option `--egress` names a destination, but this machine can\'t resolve "nowhere.invalid" (ENOTFOUND): give a name the host resolves, or its address or CIDR range, got "nowhere.invalid"',
    )
    // ranges alone ask the resolver nothing
    expect(resolveEgressAllow([], 'egress', () => { throw new Error('asked') })).toEqual([])
    const many = (names: string[]) => names.map(() => ({ address: '192.0.2.1', addresses: Array.from({ length: 65 }, (_, i) => `192.0.2.${i + 1}`) }))
    expect(() => resolveEgressAllow(['big.test'], 'egress', many)).toThrow('resolves to 65 addresses and ranges, more than the 64 a sandbox takes')
  })

  it('goes to the launcher after --egress, for a sandbox and for a reused worker\'s fresh network', () => {
    const options = { ...validateSandboxOptions({ egress: ['10.0.0.0/8'] }), tmpfs: [] } as ResolvedSandboxOptions
    const plan = createSandboxPlan({ options, idMap: selfMap, egress: pasta, egressAllow: ['10.0.0.0/8', '198.18.0.2/32'] })
    expect(launcherArgs(plan).join(' ')).toContain('--egress pasta:/usr/bin/pasta --egress-allow 10.0.0.0/8 --egress-allow 198.18.0.2/32')
    expect(createResetPlan(plan, '', '/addon').args.join(' ')).toContain('--new-network --egress pasta:/usr/bin/pasta --egress-allow 10.0.0.0/8 --egress-allow 198.18.0.2/32')
    // no list, no flag
    expect(launcherArgs(createSandboxPlan({ options, idMap: selfMap, egress: pasta }))).not.toContain('--egress-allow')
  })
})

describe('findEgressHelper', () => {
  it('takes slirp4netns before pasta, pasta where only it is, and the one the environment names', () => {
    const both = fakeHost(['pasta', 'slirp4netns'])
    expect(installedEgressHelpers(both.env, [])[0]!.kind).toBe('slirp4netns')
    expect(findEgressHelper(both.env, both.tun, []).kind).toBe('slirp4netns')
    expect(findEgressHelper({ ...both.env, VITEST_POOL_ROOTLESS_EGRESS_HELPER: 'pasta' }, both.tun, []).kind).toBe('pasta')
    const only = fakeHost(['pasta'])
    expect(findEgressHelper(only.env, only.tun, [])).toEqual({ kind: 'pasta', path: join(only.env.PATH!, 'pasta') })
  })

  it('says what to install, or which choice is wrong, in one error', () => {
    const none = fakeHost([])
    expect(() => findEgressHelper(none.env, none.tun, [])).toThrow(/neither slirp4netns nor pasta is installed\. Install `slirp4netns` \(slirp4netns\) or `passt` \(pasta\): `sudo apt-get install slirp4netns`/)
    const only = fakeHost(['slirp4netns'])
    expect(() => findEgressHelper({ ...only.env, VITEST_POOL_ROOTLESS_EGRESS_HELPER: 'pasta' }, only.tun, [])).toThrow("names a helper that isn't installed: install `passt`")
    expect(() => findEgressHelper({ ...only.env, VITEST_POOL_ROOTLESS_EGRESS_HELPER: 'vde' }, only.tun, [])).toThrow('VITEST_POOL_ROOTLESS_EGRESS_HELPER=vde expects slirp4netns or pasta')
  })

  // root may open any file: the device's mode only stops other users
  it.skipIf(process.geteuid!() === 0)('names the tap device and its usual mode where this user cannot open it', () => {
    const closed = fakeHost(['pasta'], 0o000)
    expect(() => findEgressHelper(closed.env, closed.tun, [])).toThrow(/needs .*tun, which this user can't open .*`sudo chmod 0666/)
  })
})
