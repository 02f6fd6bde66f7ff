import { spawnSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { CLI } from '../support/sandbox.js'

function cli(...args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 20_000 })
}

describe('vitest-pool-rootless exec: bad input', () => {
  it.each([
    [['exec', 'id', '-u'], 'Unknown option \'-u\''],
    [['exec', 'id'], 'put the command after "--"'],
    [['exec', '--'], 'missing the command to run after "--"'],
    [['exec', '--tmpfs', '/tmp', '--no-tmpfs', '--', 'true'], '--tmpfs and --no-tmpfs exclude each other'],
    [['exec', '--frobnicate', '--', 'true'], "Unknown option '--frobnicate'"],
    [['nonsense'], 'unknown command "nonsense"'],
  ])('%j is refused with usage help', (args, message) => {
    const r = cli(...args)
    expect(r.status).toBe(2)
    expect(r.stderr).toContain(message)
    expect(r.stderr).toContain('Usage:')
  })

  it.each([
    [['--hosts-file', 'relative/hosts'], 'option `--hosts-file` expects an absolute path, got "relative/hosts"'],
    [['--hosts-file', '/nonexistent/hosts'], 'option `--hosts-file` expects an existing file, but nothing is there, got "/nonexistent/hosts"'],
    [['--hostname', 'a/b'], 'option `--hostname` expects 1 to 64 letters'],
    [['--tmpfs', '/nonexistent-dir'], 'option `--tmpfs` expects an existing directory, but nothing is there, got "/nonexistent-dir"'],
    [['--tmpfs-size', '123bogus'], 'option `--tmpfs-size` expects a size like "512m", "2g", "50%" or a number of bytes of at least 4096, got "123bogus"'],
    [['--host', 'api.test=nope'], 'option `--host` expects "api.test" to map to an IPv4/IPv6 address'],
    [['--host', 'no-equals-sign'], 'option `--host` expects NAME=IP, got "no-equals-sign"'],
    [['--network', 'bridge'], 'option `--network` expects one of "isolated", "host", got "bridge"'],
  ])('%j names the option and the value', (flags, message) => {
    const r = cli('exec', ...flags, '--', 'true')
    expect(r.status).toBe(1)
    expect(r.stderr.trim()).toContain(message)
  })

  it('prints the version', () => {
    const r = cli('--version')
    expect(r.stdout).toMatch(/^\d+\.\d+\.\d+\n$/)
  })
})
