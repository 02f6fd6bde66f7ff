import { spawn } from 'node:child_process'
import { createServer, type AddressInfo, type Server } from 'node:net'
import { afterAll, describe, expect, it } from 'vitest'
import { listeningSockets, ownListeningPorts } from '../../src/engine/listening-ports.js'

const listen = (host?: string) =>
  new Promise<Server>((resolve) => {
    const server = createServer()
    server.listen(0, host, () => resolve(server))
  })
const portOf = (server: Server) => (server.address() as AddressInfo).port

describe('ownListeningPorts', () => {
  const servers: Server[] = []
  afterAll(() => servers.forEach((s) => s.close()))

  it("finds this process's listening ports, IPv4 and IPv6, and not another process's", async () => {
    const v4 = await listen('127.0.0.1')
    const any = await listen()
    servers.push(v4, any)
    const child = spawn(process.execPath, ['-e', "const s = require('net').createServer().listen(0, '127.0.0.1', () => console.log(s.address().port))"], { stdio: ['ignore', 'pipe', 'inherit'] })
    try {
      const foreign = Number(await new Promise<string>((resolve) => child.stdout!.once('data', (d) => resolve(String(d)))))
      const ports = ownListeningPorts()
      expect(ports).toContain(portOf(v4))
      expect(ports).toContain(portOf(any))
      expect(ports).not.toContain(foreign)
      expect([...ports].sort((a, b) => a - b)).toEqual(ports)
    } finally {
      child.kill()
    }
  })

  it('forgets a port once its server closes', async () => {
    const server = await listen('127.0.0.1')
    const port = portOf(server)
    expect(ownListeningPorts()).toContain(port)
    await new Promise((resolve) => server.close(resolve))
    expect(ownListeningPorts()).not.toContain(port)
  })
})

describe('listeningSockets', () => {
  it('reads the LISTEN rows of a /proc/net/tcp table, port from hex', () => {
    const table = [
      '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
      '   0: 0100007F:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000   105        0 31337 1 0000000000000000 100 0 0 10 0',
      '   1: 0100007F:A1B2 0100007F:1538 01 00000000:00000000 00:00000000 00000000  1001        0 4242 1 0000000000000000 20 4 30 10 -1',
      '   0: 00000000000000000000000001000000:18EB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1001        0 777 1 0000000000000000 100 0 0 10 0',
      '',
    ].join('\n')
    expect(listeningSockets(table)).toEqual([
      { port: 5432, inode: '31337' },
      { port: 6379, inode: '777' },
    ])
    expect(listeningSockets('')).toEqual([])
  })
})
