import { describe, it, expect } from 'vitest'
import { parseSubidFile, findSubidRanges, freeSubidRange, SubidFileError, usedSubidRanges } from '../../src/plan/subid.js'
import type { SubidEntry } from '../../src/plan/subid.js'

/** Runs fn, expects a SubidFileError, returns it for further assertions. */
function catchSubidError(fn: () => unknown): SubidFileError {
  try {
    fn()
  } catch (error) {
    expect(error).toBeInstanceOf(SubidFileError)
    return error as SubidFileError
  }
  throw new Error('expected a SubidFileError, nothing was thrown')
}

describe('parseSubidFile', () => {
  it('parses a single entry with its 1-based line number', () => {
    expect(parseSubidFile('alice:100000:65536\n')).toEqual([{ owner: 'alice', start: 100000, count: 65536, line: 1 }])
  })

  it('returns no entries for an empty file', () => {
    expect(parseSubidFile('')).toEqual([])
    expect(parseSubidFile('\n\n')).toEqual([])
  })

  it('skips comments and blank lines but keeps real line numbers', () => {
    const text = [
      '# subordinate uids',
      '',
      '   ',
      'alice:100000:65536',
      '  # indented comment',
      '\t',
      'bob:165536:65536',
    ].join('\n')
    expect(parseSubidFile(text)).toEqual([
      { owner: 'alice', start: 100000, count: 65536, line: 4 },
      { owner: 'bob', start: 165536, count: 65536, line: 7 },
    ])
  })

  it('keeps several ranges for the same owner, in file order', () => {
    const text = 'alice:300000:10\nalice:100000:65536\nalice:200000:5\n'
    expect(parseSubidFile(text)).toEqual([
      { owner: 'alice', start: 300000, count: 10, line: 1 },
      { owner: 'alice', start: 100000, count: 65536, line: 2 },
      { owner: 'alice', start: 200000, count: 5, line: 3 },
    ])
  })

  it('accepts owners given by name and by numeric uid', () => {
    const entries = parseSubidFile('alice:100000:65536\n1000:165536:65536\n')
    expect(entries.map((e) => e.owner)).toEqual(['alice', '1000'])
    // the owner stays a string, as written: matching by uid is done by findSubidRanges
    expect(typeof entries[1]!.owner).toBe('string')
  })

  it('tolerates surrounding whitespace and CRLF line endings', () => {
    expect(parseSubidFile('  alice:100000:65536  \r\nbob:200000:10\r\n')).toEqual([
      { owner: 'alice', start: 100000, count: 65536, line: 1 },
      { owner: 'bob', start: 200000, count: 10, line: 2 },
    ])
  })

  it('accepts a range that ends exactly at 2^32 - 1', () => {
    const start = 4294967295 - 10
    expect(parseSubidFile(`alice:${start}:10`)).toEqual([{ owner: 'alice', start, count: 10, line: 1 }])
  })

  it.each([
    ['two fields', 'alice:100000'],
    ['four fields', 'alice:100000:65536:1'],
    ['empty owner', ':100000:65536'],
    ['non-numeric start', 'alice:abc:65536'],
    ['non-numeric count', 'alice:100000:lots'],
    ['negative start', 'alice:-1:65536'],
    ['hexadecimal start', 'alice:0x10:65536'],
    ['decimal fraction', 'alice:1.5:10'],
    ['space inside a field', 'alice:100000 :65536'],
    ['empty count', 'alice:100000:'],
    ['no separator at all', 'alice'],
    ['start with 11 digits', 'alice:12345678901:1'],
  ])('rejects a malformed line (%s), naming file and line', (_label, bad) => {
    const text = `# header\nalice:100000:65536\n${bad}\n`
    const error = catchSubidError(() => parseSubidFile(text, '/etc/subgid'))
    expect(error.file).toBe('/etc/subgid')
    expect(error.line).toBe(3)
    expect(error.name).toBe('SubidFileError')
    expect(error.message).toContain('/etc/subgid:3:')
    expect(error.message).toContain(JSON.stringify(bad.trim()))
  })

  it('defaults the file name in messages to /etc/subuid', () => {
    const error = catchSubidError(() => parseSubidFile('garbage'))
    expect(error.file).toBe('/etc/subuid')
    expect(error.line).toBe(1)
    expect(error.message).toContain('/etc/subuid:1:')
  })

  it('rejects a zero count, naming the line', () => {
    const error = catchSubidError(() => parseSubidFile('\n\nalice:100000:0', '/etc/subuid'))
    expect(error.line).toBe(3)
    expect(error.message).toContain('/etc/subuid:3:')
    expect(error.message).toContain('100000:0')
  })

  it('rejects a range that ends past 2^32 - 1', () => {
    // 4294967295 - 10 + 11 = 2^32: one id too many
    const error = catchSubidError(() => parseSubidFile(`alice:${4294967295 - 10}:11`))
    expect(error.line).toBe(1)
    expect(error.message).toContain('4294967295')
  })

  it('rejects a 10-digit start beyond 2^32', () => {
    const error = catchSubidError(() => parseSubidFile('alice:9999999999:1'))
    expect(error.line).toBe(1)
  })
})

describe('findSubidRanges', () => {
  const entry = (owner: string, start: number, count: number, line: number): SubidEntry => ({ owner, start, count, line })

  it('returns nothing when no entry belongs to the user', () => {
    expect(findSubidRanges([entry('bob', 100000, 65536, 1)], { name: 'alice', id: 1000 })).toEqual([])
    expect(findSubidRanges([], { name: 'alice', id: 1000 })).toEqual([])
  })

  it('matches by user name', () => {
    const entries = [entry('bob', 100000, 65536, 1), entry('alice', 165536, 65536, 2)]
    expect(findSubidRanges(entries, { name: 'alice', id: 1000 })).toEqual([{ start: 165536, count: 65536 }])
  })

  it('matches by numeric uid', () => {
    const entries = [entry('1001', 100000, 65536, 1), entry('1000', 165536, 65536, 2)]
    expect(findSubidRanges(entries, { name: 'alice', id: 1000 })).toEqual([{ start: 165536, count: 65536 }])
  })

  it('matches by numeric uid when the user has no name', () => {
    const entries = [entry('alice', 100000, 65536, 1), entry('1000', 165536, 65536, 2)]
    expect(findSubidRanges(entries, { id: 1000 })).toEqual([{ start: 165536, count: 65536 }])
  })

  it('does not match a name that merely looks like the uid of someone else', () => {
    expect(findSubidRanges([entry('10000', 100000, 10, 1)], { name: 'alice', id: 1000 })).toEqual([])
  })

  it('combines name and uid matches and sorts them by start', () => {
    const entries = [
      entry('alice', 300000, 100, 1),
      entry('1000', 100000, 100, 2),
      entry('bob', 150000, 100, 3),
      entry('alice', 200000, 100, 4),
    ]
    expect(findSubidRanges(entries, { name: 'alice', id: 1000 })).toEqual([
      { start: 100000, count: 100 },
      { start: 200000, count: 100 },
      { start: 300000, count: 100 },
    ])
  })

  it('removes exact duplicates (same start and count), including by-name/by-uid pairs', () => {
    const entries = [
      entry('alice', 100000, 65536, 1),
      entry('1000', 100000, 65536, 2),
      entry('alice', 100000, 65536, 3),
      entry('alice', 200000, 10, 4),
    ]
    expect(findSubidRanges(entries, { name: 'alice', id: 1000 })).toEqual([
      { start: 100000, count: 65536 },
      { start: 200000, count: 10 },
    ])
  })

  it('accepts ranges that touch without overlapping', () => {
    const entries = [entry('alice', 100010, 5, 1), entry('alice', 100000, 10, 2)]
    expect(findSubidRanges(entries, { name: 'alice', id: 1000 })).toEqual([
      { start: 100000, count: 10 },
      { start: 100010, count: 5 },
    ])
  })

  it('accepts a range that ends right before the own uid, or starts right after it', () => {
    const entries = [entry('alice', 990, 10, 1), entry('alice', 1001, 10, 2)]
    expect(findSubidRanges(entries, { name: 'alice', id: 1000 })).toEqual([
      { start: 990, count: 10 },
      { start: 1001, count: 10 },
    ])
  })

  it('rejects a range containing the user\'s own uid, naming file and line', () => {
    const entries = [entry('alice', 200000, 10, 1), entry('alice', 0, 65536, 5)]
    const error = catchSubidError(() => findSubidRanges(entries, { name: 'alice', id: 1000 }, '/etc/subuid'))
    expect(error.file).toBe('/etc/subuid')
    expect(error.line).toBe(5)
    expect(error.message).toContain('/etc/subuid:5:')
    expect(error.message).toContain('0:65536')
    expect(error.message).toContain('1000')
  })

  it('rejects a range whose last id is the own uid', () => {
    const error = catchSubidError(() => findSubidRanges([entry('1000', 991, 10, 2)], { id: 1000 }, '/etc/subgid'))
    expect(error.line).toBe(2)
    expect(error.message).toContain('/etc/subgid:2:')
  })

  it('rejects overlapping ranges, naming the later line and the earlier one', () => {
    const entries = [entry('alice', 100000, 65536, 3), entry('alice', 150000, 100, 7)]
    const error = catchSubidError(() => findSubidRanges(entries, { name: 'alice', id: 1000 }, '/etc/subuid'))
    expect(error.line).toBe(7)
    expect(error.message).toContain('/etc/subuid:7:')
    expect(error.message).toContain('150000:100')
    expect(error.message).toContain('100000:65536')
    expect(error.message).toContain('line 3')
  })

  it('rejects ranges with the same start but different counts as overlapping', () => {
    const entries = [entry('alice', 100000, 10, 1), entry('1000', 100000, 20, 2)]
    expect(() => findSubidRanges(entries, { name: 'alice', id: 1000 })).toThrow(SubidFileError)
  })

  it('finds an overlap between entries that are not adjacent in the file', () => {
    const entries = [entry('alice', 100000, 1000, 1), entry('alice', 500000, 10, 2), entry('alice', 100500, 10, 3)]
    const error = catchSubidError(() => findSubidRanges(entries, { name: 'alice', id: 1000 }))
    expect(error.line).toBe(3)
  })

  it('ignores overlaps and own-id problems in other users\' ranges', () => {
    const entries = [entry('bob', 0, 65536, 1), entry('bob', 100, 10, 2), entry('alice', 100000, 10, 3)]
    expect(findSubidRanges(entries, { name: 'alice', id: 1000 })).toEqual([{ start: 100000, count: 10 }])
  })

  it('works end to end with parseSubidFile', () => {
    const text = '# users\nalice:165536:65536\nbob:231072:65536\n1000:100000:65536\n'
    expect(findSubidRanges(parseSubidFile(text), { name: 'alice', id: 1000 })).toEqual([
      { start: 100000, count: 65536 },
      { start: 165536, count: 65536 },
    ])
  })
})

describe('parseSubidFile: only one owner', () => {
  it("skips other users' lines, even broken ones, and still checks the owner's", () => {
    const text = 'bob:100000:0\nmallory:not:numbers\nalice:200000:65536\n'
    expect(parseSubidFile(text, '/etc/subuid', { name: 'alice', id: 1000 })).toEqual([{ owner: 'alice', start: 200000, count: 65536, line: 3 }])
    expect(() => parseSubidFile('alice:1:0\n', '/etc/subuid', { name: 'alice', id: 1000 })).toThrow('/etc/subuid:1:')
    // without `only`, every line is checked
    expect(() => parseSubidFile(text, '/etc/subuid')).toThrow('/etc/subuid:1:')
  })
})

describe('freeSubidRange: a range to propose', () => {
  it('starts at 100000 on an empty machine', () => {
    expect(freeSubidRange([])).toEqual({ start: 100000, count: 65536 })
  })
  it('skips every block that overlaps a used range, in either file', () => {
    expect(freeSubidRange([{ start: 100000, count: 65536 }])).toEqual({ start: 165536, count: 65536 })
    expect(freeSubidRange([{ start: 200000, count: 1 }, { start: 100000, count: 65536 }])).toEqual({ start: 231072, count: 65536 })
  })
  it('reads every owner\'s lines, skipping comments and junk', () => {
    expect(usedSubidRanges('# c\nbob:100000:65536\n1001:165536:65536\nbroken line\n')).toEqual([
      { start: 100000, count: 65536 },
      { start: 165536, count: 65536 },
    ])
  })
})
