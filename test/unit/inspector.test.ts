import { createServer, type Server } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { checkInspector } from '../../src/pool/inspector.js'

describe('debugger flags under an isolated network', () => {
  let server: Server | undefined
  afterEach(() => void server?.close())
  /** A port something on the host listens on. */
  const taken = () =>
    new Promise<number>((resolve) => {
      server = createServer().listen({ host: '127.0.0.1', port: 0 }, () => resolve((server!.address() as { port: number }).port))
    })
  /** A port nothing listens on (a moment ago). */
  const free = async () => {
    const port = await taken()
    await new Promise((resolve) => server!.close(resolve))
    return port
  }

  it('takes --inspect-brk and --inspect at an address the host can listen on', async () => {
    const port = await free()
    expect(() => checkInspector(['node', 'vitest', `--inspect-brk=127.0.0.1:${port}`], 'isolated')).not.toThrow()
    expect(() => checkInspector(['node', 'vitest', `--inspect=${port}`], 'isolated')).not.toThrow()
  })

  it('refuses, with one error naming the flag and the address, a port something on the host listens on', async () => {
    const port = await taken()
    expect(() => checkInspector(['node', 'vitest', `--inspect-brk=127.0.0.1:${port}`], 'isolated')).toThrow(
      `option \`--inspect-brk\` expects an address the host can listen on, where the sandboxed worker's inspector is published; something on the host already listens on 127.0.0.1:${port}: stop it, or give another port (--inspect-brk=127.0.0.1:${port + 1}), got "127.0.0.1:${port}"`,
    )
    expect(() => checkInspector(['node', 'vitest', `--inspect=${port}`], 'isolated')).toThrow(/option `--inspect` .*127\.0\.0\.1:\d+/)
  })

  it('checks nothing without a debugger flag, or with the host network', async () => {
    const port = await taken()
    expect(() => checkInspector(['node', 'vitest', 'run', '--reporter=verbose', String(port)], 'isolated')).not.toThrow()
    expect(() => checkInspector(['node', 'vitest', `--inspect-brk=127.0.0.1:${port}`], 'host')).not.toThrow()
  })
})
