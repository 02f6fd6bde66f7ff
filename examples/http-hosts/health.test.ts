import { createServer, type Server } from 'node:http'
import { hostname } from 'node:os'
import { afterAll, beforeAll, expect, it } from 'vitest'

let server: Server
const seenHosts: (string | undefined)[] = []

beforeAll(async () => {
  server = createServer((req, res) => {
    seenHosts.push(req.headers.host)
    if (req.url === '/health') {
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ status: 'ok', host: hostname() }))
    } else {
      res.statusCode = 404
      res.end()
    }
  })
  // port 80 needs root (or CAP_NET_BIND_SERVICE) on a normal machine
  await new Promise<void>((ok, fail) => server.once('error', fail).listen(80, '127.0.0.1', ok))
})

afterAll(async () => {
  server.closeAllConnections()
  await new Promise((ok) => server.close(ok))
})

it('fetches http://api.example.test/health through the hosts option', async () => {
  const res = await fetch('http://api.example.test/health')
  expect(res.status).toBe(200)
  expect(await res.json()).toEqual({ status: 'ok', host: 'ci-box' })
  expect(seenHosts).toEqual(['api.example.test'])
})

it('runs on the hostname from the config', () => {
  expect(hostname()).toBe('ci-box')
})
