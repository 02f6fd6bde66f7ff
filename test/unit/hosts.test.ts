import { describe, it, expect } from 'vitest'
import { renderHostsFile, renderNsswitch } from '../../src/plan/hosts.js'

const HEADER = '# written by vitest-pool-rootless for this sandbox only'

/** The non-comment, non-blank lines, as [ip, ...names]. */
function entries(text: string): string[][] {
  return text
    .split('\n')
    .filter((line) => line.trim() !== '' && !line.startsWith('#'))
    .map((line) => line.split(/\s+/))
}

describe('renderHostsFile', () => {
  it('maps localhost to IPv4 and IPv6 loopback by default', () => {
    expect(renderHostsFile(new Map())).toBe(`${HEADER}\n127.0.0.1\tlocalhost\n::1\tlocalhost\n`)
  })

  it('adds the hostname on loopback, lowercased, after localhost', () => {
    const text = renderHostsFile(new Map(), { hostname: 'Box' })
    expect(entries(text)).toEqual([
      ['127.0.0.1', 'localhost'],
      ['::1', 'localhost'],
      ['127.0.0.1', 'box'],
      ['::1', 'box'],
    ])
  })

  it('never puts two names on one line (the first would become the canonical name)', () => {
    const text = renderHostsFile(new Map([['db', ['10.0.0.2']], ['cache', ['10.0.0.2']]]), { hostname: 'box' })
    for (const line of entries(text)) expect(line).toHaveLength(2)
  })

  it('lets a user entry replace the default localhost', () => {
    const text = renderHostsFile(new Map([['localhost', ['10.0.0.9']]]))
    expect(entries(text)).toEqual([['10.0.0.9', 'localhost']])
    expect(text).not.toContain('127.0.0.1')
    expect(text).not.toContain('::1')
  })

  it('lets a user entry replace the hostname default', () => {
    const text = renderHostsFile(new Map([['box', ['10.0.0.5']]]), { hostname: 'BOX' })
    expect(entries(text)).toEqual([
      ['10.0.0.5', 'box'],
      ['127.0.0.1', 'localhost'],
      ['::1', 'localhost'],
    ])
  })

  it('writes one line per name and address, user entries first, in insertion order', () => {
    const text = renderHostsFile(
      new Map([
        ['db', ['10.0.0.2', 'fd00::2']],
        ['cache', ['10.0.0.2']],
      ]),
    )
    expect(entries(text)).toEqual([
      ['10.0.0.2', 'db'],
      ['fd00::2', 'db'],
      ['10.0.0.2', 'cache'],
      ['127.0.0.1', 'localhost'],
      ['::1', 'localhost'],
    ])
  })

  it('separates address and names with a tab and ends with a newline', () => {
    const text = renderHostsFile(new Map([['db', ['10.0.0.2']]]))
    expect(text).toContain('\n10.0.0.2\tdb\n')
    expect(text.endsWith('\n')).toBe(true)
    expect(text.endsWith('\n\n')).toBe(false)
    expect(text.startsWith(`${HEADER}\n`)).toBe(true)
  })

  it('uses the base file instead of the defaults: it answers for localhost when it names it, and user entries win over it', () => {
    const base = '127.0.0.1\tlocalhost\n10.0.0.1\tdb db.internal\n\n\n'
    const text = renderHostsFile(new Map([['db', ['10.9.9.9']]]), { base })
    expect(text).toBe(`${HEADER}\n10.9.9.9\tdb\n\n# from hostsFile\n127.0.0.1\tlocalhost\n10.0.0.1\tdb.internal\n`)
  })

  it('keeps localhost on IPv4 and IPv6 loopback when the base file lacks it', () => {
    const text = renderHostsFile(new Map(), { base: '192.168.0.1 router' })
    expect(entries(text)).toEqual([
      ['127.0.0.1', 'localhost'],
      ['::1', 'localhost'],
      ['192.168.0.1', 'router'],
    ])
  })

  it("lets the base file's own addresses for localhost and the hostname stand, with no default before them", () => {
    const text = renderHostsFile(new Map(), { hostname: 'box', base: '10.1.1.1 localhost\n# the Debian way\n127.0.1.1 Box' })
    expect(entries(text)).toEqual([
      ['10.1.1.1', 'localhost'],
      ['127.0.1.1', 'Box'],
    ])
  })

  it('still lets a user entry replace localhost when there is a base file, dropping a base line left with no name', () => {
    const text = renderHostsFile(new Map([['localhost', ['10.0.0.9']]]), { base: '127.0.0.1 localhost\n192.168.0.1 router' })
    expect(entries(text)).toEqual([
      ['10.0.0.9', 'localhost'],
      ['192.168.0.1', 'router'],
    ])
  })

  it('puts the hostname on loopback when the base file does not name it', () => {
    const text = renderHostsFile(new Map(), { hostname: 'box', base: '192.168.0.1 router' })
    expect(text).toBe(`${HEADER}\n127.0.0.1\tlocalhost\n::1\tlocalhost\n127.0.0.1\tbox\n::1\tbox\n\n# from hostsFile\n192.168.0.1 router\n`)
  })

  it('handles an empty base file', () => {
    const text = renderHostsFile(new Map(), { base: '' })
    expect(text).toBe(`${HEADER}\n127.0.0.1\tlocalhost\n::1\tlocalhost\n\n# from hostsFile\n\n`)
  })

  it('does not modify the entries map it was given', () => {
    const input = new Map([['db', ['10.0.0.2']]])
    renderHostsFile(input, { hostname: 'box' })
    expect([...input]).toEqual([['db', ['10.0.0.2']]])
  })
})

describe('renderNsswitch', () => {
  it("keeps the host's databases and resolves hosts from files alone", () => {
    const host = '# comment\npasswd:         files systemd\nhosts:          files mdns4_minimal [NOTFOUND=return] dns\nnetworks:       files\n'
    expect(renderNsswitch(host)).toBe('# comment\npasswd:         files systemd\nhosts:          files\nnetworks:       files\n')
  })

  it('adds the hosts line to a file without one, and never comments it (glibc would read a source name)', () => {
    expect(renderNsswitch('passwd: files\n')).toBe('passwd: files\nhosts:          files\n')
    expect(renderNsswitch('')).toBe('hosts:          files\n')
    expect(renderNsswitch('  hosts: dns\n')).not.toContain('#')
  })
})
