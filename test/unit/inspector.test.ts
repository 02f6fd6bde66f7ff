import { describe, expect, it } from 'vitest'
import { checkInspector } from '../../src/pool/inspector.js'

describe('debugger flags under an isolated network', () => {
  const run = (argv: string[], network: 'isolated' | 'host' = 'isolated') => {
    const said: string[] = []
    checkInspector(['node', 'vitest', ...argv], network, (m) => said.push(m))
    return said
  }

  it('refuses --inspect-brk and --inspect-wait, which would wait forever for a debugger nobody can reach', () => {
    expect(() => run(['--inspect-brk'])).toThrow(/option `network` can't be used with --inspect-brk: .*unreachable from the host.*network: 'host'/)
    expect(() => run(['--inspect-wait=9230'])).toThrow(/--inspect-wait=9230/)
  })

  it('warns once about --inspect, and runs', () => {
    const said = run(['--inspect=0.0.0.0:9229'])
    expect(said).toHaveLength(1)
    expect(said[0]).toContain("a debugger on the host can't connect")
  })

  it('says nothing without a debugger flag or with the host network', () => {
    expect(run(['run', '--reporter=verbose'])).toEqual([])
    expect(run(['--inspect-brk'], 'host')).toEqual([])
  })
})
