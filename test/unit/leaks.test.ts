import { describe, expect, it } from 'vitest'
import { LeakTally, leakLine, leakWatchEnv } from '../../src/engine/leak-report.js'
import { parseBoundSockets } from '../../src/engine/listening-ports.js'
import { leftProcesses, parseStat, type ProcessEntry } from '../../src/inside/leak-watch.js'
import { LEAKS_ENV } from '../../src/wire/wire.js'

describe('what a test file left', () => {
  it('reads /proc/PID/stat, whatever the command name holds', () => {
    expect(parseStat('14 (sleep) S 1 14 14 0 -1 4194560 ...')).toEqual({ pid: 14, ppid: 1, session: 14, zombie: false })
    expect(parseStat('9 (a) Z (b) Z 2 9 0 0 -1')).toEqual({ pid: 9, ppid: 2, session: 0, zombie: true })
    expect(parseStat('garbage')).toBeUndefined()
  })

  it("reads the addon's list of listening TCP and bound UDP sockets", () => {
    expect(parseBoundSockets('tcp 127.0.0.1 3000 4242\ntcp ::1 4567 5151\nudp 0.0.0.0 5353 6161\n')).toEqual([
      { protocol: 'tcp', address: '127.0.0.1', port: 3000, inode: '4242' },
      { protocol: 'tcp', address: '::1', port: 4567, inode: '5151' },
      { protocol: 'udp', address: '0.0.0.0', port: 5353, inode: '6161' },
    ])
    expect(parseBoundSockets('')).toEqual([])
  })

  // init 1, the worker 2 (session 0: its leader is outside the namespace), a pool child
  // and its child in the session, a detached one, and an orphan init took over
  const procs: ProcessEntry[] = [
    { pid: 1, ppid: 0, session: 0, zombie: false },
    { pid: 2, ppid: 1, session: 0, zombie: false },
    { pid: 10, ppid: 2, session: 0, zombie: false },
    { pid: 11, ppid: 10, session: 0, zombie: false },
    { pid: 12, ppid: 2, session: 12, zombie: false },
    { pid: 13, ppid: 1, session: 0, zombie: false },
    { pid: 14, ppid: 2, session: 0, zombie: true },
  ]

  it("charges a reused worker's file with what left its session or was orphaned, not the worker's own children", () => {
    expect(leftProcesses(procs, 2, true).map((p) => p.pid)).toEqual([12, 13])
  })

  it('charges a file whose worker ends with it with every live process but init and the worker', () => {
    expect(leftProcesses(procs, 2, false).map((p) => p.pid)).toEqual([10, 11, 12, 13])
  })
})

describe('the leak report', () => {
  it('names the file relative to the project and each thing it left', () => {
    expect(leakLine('/p/tests/b.test.ts', ['sleep 517 (pid 14)', 'a server on 127.0.0.1:3000'], '/p')).toBe(
      'vitest-pool-rootless: tests/b.test.ts left: sleep 517 (pid 14), a server on 127.0.0.1:3000',
    )
    expect(leakLine('/elsewhere/x.test.ts', ['a mount on /mnt'], '/p')).toBe('vitest-pool-rootless: /elsewhere/x.test.ts left: a mount on /mnt')
  })

  it('counts leaking files for the summary; none: no summary', () => {
    const tally = new LeakTally('report')
    expect(tally.add('/p/a.test.ts', undefined, '/p')).toBeUndefined()
    expect(tally.summary()).toBeUndefined()
    expect(tally.add('/p/b.test.ts', ['x (pid 3)', 'y (pid 4)'], '/p')).toBe('vitest-pool-rootless: b.test.ts left: x (pid 3), y (pid 4)')
    tally.add('/p/c.test.ts', ['a mount on /mnt'], '/p')
    expect(tally.summary()).toBe("vitest-pool-rootless: 3 things left running by 2 test files, named above; leaks: 'fail' fails such files, leaks: 'ignore' stops looking")
    const ignoring = new LeakTally('ignore')
    expect(ignoring.add('/p/b.test.ts', ['x (pid 3)'], '/p')).toBeUndefined()
    expect(ignoring.summary()).toBeUndefined()
  })

  it("tells the worker to look only where the sandbox's pids and network are its own, and not at all for 'ignore'", () => {
    expect(leakWatchEnv('ignore', { pidNamespace: true, network: 'isolated' })).toEqual({})
    expect(JSON.parse(leakWatchEnv('report', { pidNamespace: false, network: 'isolated' })[LEAKS_ENV]!)).toEqual({ fail: false, processes: false, sockets: true })
    expect(JSON.parse(leakWatchEnv('fail', { pidNamespace: true, network: 'host' })[LEAKS_ENV]!)).toEqual({ fail: true, processes: true, sockets: false })
  })
})
