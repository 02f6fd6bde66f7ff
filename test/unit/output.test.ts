import { PassThrough, Writable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { dropRepeatedNotices, pipeInto, unpipeFrom } from '../../src/engine/output.js'
import { ONCE_PER_RUN_MARK } from '../../src/wire/wire.js'

const notice = (name: string) => `vitest-pool-rootless: "${name}" ${ONCE_PER_RUN_MARK}: only the sandbox's hosts file is read. Said once per run.\n`

describe('dropRepeatedNotices', () => {
  it('keeps the first notice of a run and drops the later ones, whatever name they carry', () => {
    const said = new Set<string>()
    expect(dropRepeatedNotices(Buffer.from(`a\n${notice('x.test')}b\n`), said).toString()).toBe(`a\n${notice('x.test')}b\n`)
    expect(dropRepeatedNotices(Buffer.from(`c\n${notice('x.test')}d\n`), said).toString()).toBe('c\nd\n')
    expect(dropRepeatedNotices(Buffer.from(notice('y.test')), said).toString()).toBe('')
  })

  it('drops every repeat in one chunk, keeps the first, and leaves other output byte for byte', () => {
    const said = new Set<string>()
    const other = 'ünïcode ✓ line\nno newline at the end'
    const chunk = Buffer.from(`${notice('a')}${notice('b')}x\n${notice('c')}${other}`)
    expect(dropRepeatedNotices(chunk, said).toString()).toBe(`${notice('a')}x\n${other}`)
  })

  it('returns output without a notice untouched', () => {
    const chunk = Buffer.from('plain output\n')
    expect(dropRepeatedNotices(chunk, new Set())).toBe(chunk)
  })
})

describe('pipeInto', () => {
  it("passes every byte of each process's output, one notice across processes, and leaves the shared stream open", async () => {
    let out = ''
    const to = new Writable({ write: (chunk, _e, done) => ((out += chunk), done()) })
    const [a, b] = [new PassThrough(), new PassThrough()]
    pipeInto(a, to)
    pipeInto(b, to)
    a.write(`from a\n${notice('n1')}`)
    b.write(`from b\n${notice('n2')}`)
    a.end('a done\n')
    b.write('b still here\n')
    unpipeFrom(b, to)
    await new Promise((resolve) => setTimeout(resolve, 10))
    expect(out).toContain('from a\n')
    expect(out).toContain('from b\n')
    expect(out).toContain('a done\n')
    expect(out).toContain('b still here\n')
    expect(out.split(ONCE_PER_RUN_MARK)).toHaveLength(2)
    expect(to.writableEnded).toBe(false)
    expect(to.listenerCount('unpipe')).toBe(0)
  })
})
