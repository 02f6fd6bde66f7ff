import { spawnSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { CLI } from '../support/sandbox.js'

function cli(...args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 20_000 })
}

function cliWithEnv(env: Record<string, string>, ...args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 20_000, env: { ...process.env, ...env } })
}

const EXEC_SYNOPSIS = 'vitest-pool-rootless exec [OPTIONS] -- CMD [ARGS...]'
const DOCTOR_SYNOPSIS = 'vitest-pool-rootless doctor [--json]'

describe('vitest-pool-rootless exec: bad input', () => {
  it.each([
    [['exec', 'id', '-u'], 'put the command after "--", as in: vitest-pool-rootless exec [OPTIONS] -- id ...'],
    [['exec', 'id'], 'put the command after "--"'],
    [['exec', '--no-subids', 'ls', '-la', '--tmpfs'], 'put the command after "--", as in: vitest-pool-rootless exec [OPTIONS] -- ls ...'],
    [['exec', '-u', 'id'], "Unknown option '-u'"],
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
    [['doctor', '--jsn'], "vitest-pool-rootless doctor: Unknown option '--jsn'"],
    [['doctor', '--bogus'], "vitest-pool-rootless doctor: Unknown option '--bogus'"],
    [['doctor', 'extra'], "vitest-pool-rootless doctor: Unexpected argument 'extra'"],
    [['exec', '--frobnicate', '--', 'true'], "vitest-pool-rootless exec: Unknown option '--frobnicate'"],
    [['exec', 'id', '-u'], 'vitest-pool-rootless exec: put the command after "--"'],
  ])('%j names its subcommand and prints that subcommand\'s usage only', (args, message) => {
    const r = cli(...args)
    expect(r.status).toBe(2)
    expect(r.stderr.split('\n')[0]).toBe(r.stderr.split('\n')[0]!.trim())
    expect(r.stderr).toContain(message)
    const [own, other] = args[0] === 'doctor' ? [DOCTOR_SYNOPSIS, EXEC_SYNOPSIS] : [EXEC_SYNOPSIS, DOCTOR_SYNOPSIS]
    expect(r.stderr).toContain(own)
    expect(r.stderr).not.toContain(other)
  })

  it.each([
    [['exec', '--help'], EXEC_SYNOPSIS, DOCTOR_SYNOPSIS],
    [['exec', '-h'], EXEC_SYNOPSIS, DOCTOR_SYNOPSIS],
    [['exec', '--tmpfs', '/tmp', '--help', '--', 'true'], EXEC_SYNOPSIS, DOCTOR_SYNOPSIS],
    [['doctor', '--help'], DOCTOR_SYNOPSIS, EXEC_SYNOPSIS],
    [['doctor', '-h'], DOCTOR_SYNOPSIS, EXEC_SYNOPSIS],
    [['help', 'doctor'], DOCTOR_SYNOPSIS, EXEC_SYNOPSIS],
  ])('%j prints that subcommand\'s usage and exits 0', (args, own, other) => {
    const r = cli(...args)
    expect(r.status).toBe(0)
    expect(r.stderr).toBe('')
    expect(r.stdout).toContain(own)
    expect(r.stdout).not.toContain(other)
  })

  it('lists every exec flag in its usage', () => {
    const usage = cli('exec', '--help').stdout
    for (const flag of ['--host NAME=IP', '--hosts-file PATH', '--hostname NAME', '--tmpfs PATH', '--no-tmpfs', '--tmpfs-size SIZE', '--keep PATH', '--no-subids', '--network MODE', '--no-pid-namespace', '--drop-env NAME', '--writable PATH']) {
      expect(usage).toContain(flag)
    }
  })

  it.each([['--help'], ['-h']])('%s prints the whole usage and exits 0', (flag) => {
    const r = cli(flag)
    expect(r.status).toBe(0)
    expect(r.stdout).toContain(EXEC_SYNOPSIS)
    expect(r.stdout).toContain(DOCTOR_SYNOPSIS)
  })

  it.each([['--version'], ['-v'], ['exec', '--version'], ['doctor', '-v']])('%j prints the version', (...args) => {
    const r = cli(...args)
    expect(r.status).toBe(0)
    expect(r.stdout).toMatch(/^\d+\.\d+\.\d+\n$/)
  })

  it.each([
    [['doctor']],
    [['doctor', '--json']],
    [['exec', '--', 'true']],
    [['exec', '--no-tmpfs', '--', 'true']],
  ])('TMPDIR=/nonexistent %j: one line naming TMPDIR, exit 2, no stack trace', (args) => {
    const r = cliWithEnv({ TMPDIR: '/nonexistent' }, ...args)
    expect(r.status).toBe(2)
    const lines = r.stderr.trim().split('\n')
    expect(lines.at(-1)).toBe(`vitest-pool-rootless ${args[0]}: TMPDIR=/nonexistent: the temp dir can't be used (ENOENT: no such file or directory); set TMPDIR to an existing directory`)
    expect(r.stderr).not.toMatch(/^\s+at /m)
    expect(r.stdout).toBe('')
  })

  it.each([
    [['--hosts-file', 'relative/hosts'], 'option `--hosts-file` expects an absolute path, got "relative/hosts"'],
    [['--hosts-file', '/nonexistent/hosts'], 'option `--hosts-file` expects an existing file, but nothing is there, got "/nonexistent/hosts"'],
    [['--hostname', 'a/b'], 'option `--hostname` expects 1 to 64 letters'],
    [['--tmpfs', '/nonexistent-dir'], 'option `--tmpfs` expects an existing directory, but nothing is there, got "/nonexistent-dir"'],
    [['--tmpfs-size', '123bogus'], 'option `--tmpfs-size` expects a size like "512m", "2g", "50%" or a number of bytes of at least 4096, got "123bogus"'],
    [['--host', 'api.test=nope'], 'option `--host` expects NAME=IP, with an IPv4 or IPv6 address, got "api.test=nope"'],
    [['--host', 'no-equals-sign'], 'option `--host` expects NAME=IP, with an IPv4 or IPv6 address, got "no-equals-sign"'],
    [['--host-port', '70000'], 'option `--host-port` expects PORT or INSIDE:HOST, ports from 1 to 65535, got "70000"'],
    [['--host-port', '5432:0'], 'option `--host-port` expects PORT or INSIDE:HOST, ports from 1 to 65535, got "5432:0"'],
    [['--host-port', '80', '--network', 'host'], "option `--host-port` can't be used with --network host, where every host port is reachable already; use --network isolated"],
    [['--network', 'bridge'], 'option `--network` expects one of "isolated", "egress", "host", got "bridge"'],
    [['--hostname', 'a...'], 'option `--hostname` expects 1 to 64 letters'],
    [['--hosts-file', '/proc/self/mem'], 'option `--hosts-file` expects a readable file, but reading it failed (EIO: i/o error), got "/proc/self/mem"'],
    [['--tmpfs', '/proc'], 'option `--tmpfs` expects directories that don\'t hide /proc'],
    [['--tmpfs', '/dev'], 'option `--tmpfs` expects directories that don\'t hide /dev'],
    [['--tmpfs-size', '9999999999999999g'], 'option `--tmpfs-size` expects at most 2^63-1 bytes'],
    [['--tmpfs-size', '1k'], 'option `--tmpfs-size` expects at least 4096 bytes'],
  ])('%j names the subcommand, the option and the value', (flags, message) => {
    const r = cli('exec', ...flags, '--', 'true')
    expect(r.status).toBe(1)
    expect(r.stderr.trim()).toMatch(/^vitest-pool-rootless exec: option `/)
    expect(r.stderr.trim()).toContain(message)
    expect(r.stderr.trim().split('\n')).toHaveLength(1)
    // the command line's words, not the config's
    expect(r.stderr).not.toMatch(/\{ inside, host \}|network: '/)
  })

  it.each([
    [['--keep', '--', 'true'], '--keep is missing its value: --keep PATH, before "--"'],
    [['--keep'], '--keep is missing its value: --keep PATH, before "--"'],
    [['--tmpfs', '--keep', '/x', '--', 'true'], '--tmpfs is missing its value: --tmpfs PATH, before "--"'],
    [['--host-ports', '80', '--', 'true'], "Unknown option '--host-ports'; did you mean --host-port?"],
    [['--tmpfs-sise', '1g', '--', 'true'], "Unknown option '--tmpfs-sise'; did you mean --tmpfs-size?"],
  ])('%j says what is wrong with the flags, not where the command goes', (args, message) => {
    const r = cli('exec', ...args)
    expect(r.status).toBe(2)
    expect(r.stderr.split('\n')[0]).toBe(`vitest-pool-rootless exec: ${message}`)
    expect(r.stderr).not.toContain('put the command after')
  })
})
