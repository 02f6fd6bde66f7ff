import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { connect } from 'node:net'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, expect, it } from 'vitest'

// Redis doesn't mind root: the file's own redis-server on 127.0.0.1:6379, no persistence
let server: ChildProcess
let redis: Redis
beforeAll(async () => {
  if (spawnSync('sh', ['-c', 'command -v redis-server']).status !== 0) throw new Error('no redis-server: install Redis (Debian/Ubuntu: apt-get install redis-server)')
  server = spawn('redis-server', ['--port', '6379', '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
  await waitForPort(6379)
  redis = new Redis({ host: '127.0.0.1', port: 6379 })
})
afterAll(async () => {
  redis?.disconnect()
  server?.kill()
})

it('starts empty and keeps what this file writes', async () => {
  expect(await redis.dbsize()).toBe(0)
  await redis.set('session:1', 'ada')
  expect(await redis.get('session:1')).toBe('ada')
})

async function waitForPort(port: number): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const up = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1')
      socket.once('connect', () => (socket.destroy(), resolve(true)))
      socket.once('error', () => resolve(false))
    })
    if (up) return
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`nothing listens on 127.0.0.1:${port} after 5 s`)
}
