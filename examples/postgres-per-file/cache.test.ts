import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { connect } from 'node:net'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

// No npm package ships redis-server itself: this file needs the system's. Where there is
// none it is skipped, saying which package to install -- the rest of the example runs.
const hasRedis = spawnSync('sh', ['-c', 'command -v redis-server']).status === 0
if (!hasRedis) console.warn('cache.test.ts skipped: no redis-server on the PATH (Debian/Ubuntu: apt-get install redis-server; Fedora: dnf install redis)')

// Redis doesn't mind root: the file's own redis-server on 127.0.0.1:6379, no persistence
describe.skipIf(!hasRedis)('a Redis of its own', () => {
  let server: ChildProcess
  let redis: Redis
  beforeAll(async () => {
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
