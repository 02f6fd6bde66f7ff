import type { ChildProcess } from 'node:child_process'
import { EventEmitter } from 'node:events'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import type { LaunchSpec } from '../../src/engine/run.js'
import { SPARE_IDLE_MS, SparePool } from '../../src/engine/spares.js'

/** A handle that remembers whether it keeps the event loop alive. */
class FakeHandle {
  refed = true
  ref() {
    this.refed = true
  }
  unref() {
    this.refed = false
  }
}

/** What SparePool sees of a ChildProcess: exit state, kill, ref/unref, its handles, events. */
class FakeChild extends EventEmitter {
  exitCode: number | null = null
  signalCode: NodeJS.Signals | null = null
  readonly kills: Array<NodeJS.Signals | number | undefined> = []
  refed = true
  readonly channel = new FakeHandle()
  readonly stdin = new FakeHandle()
  readonly stdout = new FakeHandle()
  readonly stderr = new FakeHandle()
  constructor(readonly id: number) {
    super()
  }
  kill(signal?: NodeJS.Signals | number): boolean {
    this.kills.push(signal)
    return true
  }
  ref() {
    this.refed = true
  }
  unref() {
    this.refed = false
  }
  /** Exits as a process does: state first, then the event. */
  die(code: number | null, signal: NodeJS.Signals | null = null): void {
    this.exitCode = code
    this.signalCode = signal
    this.emit('exit', code, signal)
  }
  /** Every handle SparePool should ref/unref, with its state. */
  refs(): boolean[] {
    return [this.refed, this.channel.refed, this.stdin.refed, this.stdout.refed, this.stderr.refed]
  }
}

const spec = (over: Partial<LaunchSpec> = {}): LaunchSpec => ({
  entrypoint: '/x/vitest/dist/workers/forks.js',
  execArgv: ['--conditions=node'],
  env: { VITEST: 'true' },
  needs: ['/project'],
  reusable: false,
  ...over,
})

/** A SparePool whose start() makes FakeChildren, recording each call's spec. */
function pool(startImpl?: (s: LaunchSpec, n: number) => FakeChild) {
  const started: FakeChild[] = []
  const specs: LaunchSpec[] = []
  const start = vi.fn((s: LaunchSpec) => {
    specs.push(s)
    const child = startImpl ? startImpl(s, started.length) : new FakeChild(started.length)
    started.push(child)
    return child as unknown as ChildProcess
  })
  const spares = new SparePool(start)
  const take = (s: LaunchSpec) => spares.take(s) as unknown as FakeChild | undefined
  return { spares, start, started, specs, take }
}

describe('SparePool', () => {
  const pools: SparePool[] = []
  beforeEach(() => {
    vi.useFakeTimers()
  })
  afterEach(() => {
    for (const p of pools.splice(0)) p.killAll()
    vi.useRealTimers()
  })
  const tracked = (p: ReturnType<typeof pool>) => {
    pools.push(p.spares)
    return p
  }

  it('fill starts spares with the spec until `count` wait, and tops up only what is missing', () => {
    const p = tracked(pool())
    const s = spec()
    p.spares.fill(s, 2)
    expect(p.start).toHaveBeenCalledTimes(2)
    expect(p.specs).toEqual([s, s])
    p.spares.fill(s, 2)
    expect(p.start).toHaveBeenCalledTimes(2)
    p.spares.fill(s, 3)
    expect(p.start).toHaveBeenCalledTimes(3)
  })

  it('fill with a count of 0 or less starts nothing', () => {
    const p = tracked(pool())
    p.spares.fill(spec(), 0)
    p.spares.fill(spec(), -1)
    expect(p.start).not.toHaveBeenCalled()
    expect(p.take(spec())).toBeUndefined()
  })

  it('take hands out each spare once, oldest first, then nothing; a taken spare is replaced by the next fill', () => {
    const p = tracked(pool())
    p.spares.fill(spec(), 2)
    expect(p.take(spec())).toBe(p.started[0])
    expect(p.take(spec())).toBe(p.started[1])
    expect(p.take(spec())).toBeUndefined()
    p.spares.fill(spec(), 1)
    expect(p.start).toHaveBeenCalledTimes(3)
    expect(p.take(spec())).toBe(p.started[2])
  })

  it('take with an empty pool gives undefined and starts nothing', () => {
    const p = tracked(pool())
    expect(p.take(spec())).toBeUndefined()
    expect(p.start).not.toHaveBeenCalled()
  })

  it.each([
    ['entrypoint', { entrypoint: '/other/entry.js' }],
    ['execArgv', { execArgv: ['--inspect'] }],
    ['env', { env: { VITEST: 'true', EXTRA: '1' } }],
    ['needs', { needs: ['/project', '/elsewhere'] }],
    ['reusable', { reusable: true }],
    ['serialization', { serialization: 'json' }],
    ['greeting', { greeting: { key: 'run-2', message: { type: 'setup' } } }],
  ] as Array<[string, Partial<LaunchSpec>]>)('a spare is only handed out for the same spec (%s differs)', (_field, over) => {
    const p = tracked(pool())
    p.spares.fill(spec(), 1)
    expect(p.take(spec(over))).toBeUndefined()
    // still there for its own spec, with an equal (not identical) object
    expect(p.take(spec())).toBe(p.started[0])
  })

  it("matches greetings by key, not by message (a greeting can be large)", () => {
    const p = tracked(pool())
    p.spares.fill(spec({ greeting: { key: 'run-1', message: { big: 'a' } } }), 1)
    expect(p.take(spec({ greeting: { key: 'run-1', message: { big: 'b' } } }))).toBe(p.started[0])
  })

  it('keeps separate spares per spec', () => {
    const p = tracked(pool())
    const other = spec({ reusable: true })
    p.spares.fill(spec(), 1)
    p.spares.fill(other, 1)
    expect(p.specs).toEqual([spec(), other])
    expect(p.take(other)).toBe(p.started[1])
    expect(p.take(spec())).toBe(p.started[0])
  })

  it('spares are unref\'d (process, IPC channel, stdio) while they wait and ref\'d when taken', () => {
    const p = tracked(pool())
    p.spares.fill(spec(), 1)
    const child = p.started[0]!
    expect(child.refs()).toEqual([false, false, false, false, false])
    expect(p.take(spec())).toBe(child)
    expect(child.refs()).toEqual([true, true, true, true, true])
  })

  it('tolerates a child without channel or stdio handles', () => {
    const p = tracked(
      pool((_s, n) => {
        const child = new FakeChild(n)
        for (const key of ['channel', 'stdin', 'stdout', 'stderr'] as const) Object.defineProperty(child, key, { value: null })
        return child
      }),
    )
    p.spares.fill(spec(), 1)
    expect(p.started[0]!.refed).toBe(false)
    expect(p.take(spec())?.refed).toBe(true)
  })

  it(`stops a spare nobody took for SPARE_IDLE_MS (${SPARE_IDLE_MS} ms): SIGKILL, and it is no longer handed out`, () => {
    const p = tracked(pool())
    p.spares.fill(spec(), 1)
    const child = p.started[0]!
    vi.advanceTimersByTime(SPARE_IDLE_MS - 1)
    expect(child.kills).toEqual([])
    vi.advanceTimersByTime(1)
    expect(child.kills).toEqual(['SIGKILL'])
    expect(p.take(spec())).toBeUndefined()
    // gone from the pool: a fill starts a new one
    p.spares.fill(spec(), 1)
    expect(p.start).toHaveBeenCalledTimes(2)
  })

  it('each spare has its own idle time, counted from when it was started', () => {
    const p = tracked(pool())
    p.spares.fill(spec(), 1)
    vi.advanceTimersByTime(SPARE_IDLE_MS / 2)
    p.spares.fill(spec(), 2)
    vi.advanceTimersByTime(SPARE_IDLE_MS / 2)
    expect(p.started[0]!.kills).toEqual(['SIGKILL'])
    expect(p.started[1]!.kills).toEqual([])
    expect(p.take(spec())).toBe(p.started[1])
  })

  it('a taken spare is never stopped by its idle timer', () => {
    const p = tracked(pool())
    p.spares.fill(spec(), 1)
    vi.advanceTimersByTime(SPARE_IDLE_MS - 1)
    const child = p.take(spec())!
    vi.advanceTimersByTime(SPARE_IDLE_MS * 2)
    expect(child.kills).toEqual([])
    expect(vi.getTimerCount()).toBe(0)
  })

  it('skips a spare that exited while waiting (exit event) and hands out the next live one', () => {
    const p = tracked(pool())
    p.spares.fill(spec(), 2)
    p.started[0]!.die(1)
    expect(p.take(spec())).toBe(p.started[1])
    expect(p.take(spec())).toBeUndefined()
    // the dead one is not killed again, and its idle timer is gone
    vi.advanceTimersByTime(SPARE_IDLE_MS)
    expect(p.started[0]!.kills).toEqual([])
  })

  it('a spare that died is replaced by the next fill', () => {
    const p = tracked(pool())
    p.spares.fill(spec(), 1)
    p.started[0]!.die(null, 'SIGSEGV')
    p.spares.fill(spec(), 1)
    expect(p.start).toHaveBeenCalledTimes(2)
    expect(p.take(spec())).toBe(p.started[1])
  })

  it.each([
    ['exitCode', (c: FakeChild) => (c.exitCode = 0)],
    ['signalCode', (c: FakeChild) => (c.signalCode = 'SIGKILL')],
  ] as Array<[string, (c: FakeChild) => unknown]>)('skips a spare whose %s is set before its exit event arrived', (_what, kill) => {
    const p = tracked(pool())
    p.spares.fill(spec(), 2)
    kill(p.started[0]!)
    expect(p.take(spec())).toBe(p.started[1])
    // the dead one is dropped, not handed out later
    expect(p.take(spec())).toBeUndefined()
  })

  it("drops a spare that emits 'error' (e.g. spawn EAGAIN) without crashing, and does not kill it", () => {
    const p = tracked(pool())
    p.spares.fill(spec(), 2)
    // with no listener, EventEmitter would throw the error
    expect(() => p.started[0]!.emit('error', new Error('spawn EAGAIN'))).not.toThrow()
    expect(p.started[0]!.kills).toEqual([])
    expect(p.take(spec())).toBe(p.started[1])
    expect(p.take(spec())).toBeUndefined()
  })

  it('a start() that throws leaves no spare and does not throw; later fills try again', () => {
    let fail = true
    const p = tracked(
      pool((_s, n) => {
        if (fail) throw new Error('spawn ENOENT')
        return new FakeChild(n)
      }),
    )
    expect(() => p.spares.fill(spec(), 2)).not.toThrow()
    // gives up at the first failure this time
    expect(p.start).toHaveBeenCalledTimes(1)
    expect(p.take(spec())).toBeUndefined()
    fail = false
    p.spares.fill(spec(), 1)
    expect(p.take(spec())).toBeInstanceOf(FakeChild)
  })

  it('keeps the spares started before start() threw', () => {
    const p = tracked(
      pool((_s, n) => {
        if (n === 1) throw new Error('spawn EAGAIN')
        return new FakeChild(n)
      }),
    )
    p.spares.fill(spec(), 3)
    expect(p.start).toHaveBeenCalledTimes(2)
    const first = p.take(spec())
    expect(first).toBeInstanceOf(FakeChild)
    expect(first?.id).toBe(0)
    expect(p.take(spec())).toBeUndefined()
  })

  it('killAll SIGKILLs every waiting spare of every spec, leaves taken ones alone, and empties the pool', () => {
    const p = tracked(pool())
    p.spares.fill(spec(), 2)
    p.spares.fill(spec({ reusable: true }), 1)
    const taken = p.take(spec())!
    p.spares.killAll()
    expect(taken.kills).toEqual([])
    expect(p.started.slice(1).map((c) => c.kills)).toEqual([['SIGKILL'], ['SIGKILL']])
    expect(p.take(spec())).toBeUndefined()
    expect(p.take(spec({ reusable: true }))).toBeUndefined()
    // their idle timers went with them: nothing is killed twice
    expect(vi.getTimerCount()).toBe(0)
    vi.advanceTimersByTime(SPARE_IDLE_MS)
    expect(p.started.slice(1).map((c) => c.kills)).toEqual([['SIGKILL'], ['SIGKILL']])
  })

  it('a spare killed by killAll that then exits is not touched again', () => {
    const p = tracked(pool())
    p.spares.fill(spec(), 1)
    p.spares.killAll()
    p.started[0]!.die(null, 'SIGKILL')
    p.spares.killAll()
    expect(p.started[0]!.kills).toEqual(['SIGKILL'])
  })

  it('idle timers do not keep the process alive (unref\'d)', () => {
    const unref = vi.fn()
    const real = globalThis.setTimeout
    const spy = vi.spyOn(globalThis, 'setTimeout').mockImplementation(((fn: () => void, ms?: number) => {
      const t = real(fn, ms)
      const orig = t.unref.bind(t)
      t.unref = () => {
        unref(ms)
        return orig()
      }
      return t
    }) as typeof setTimeout)
    try {
      const p = tracked(pool())
      p.spares.fill(spec(), 1)
      expect(unref).toHaveBeenCalledWith(SPARE_IDLE_MS)
    } finally {
      spy.mockRestore()
    }
  })
})
