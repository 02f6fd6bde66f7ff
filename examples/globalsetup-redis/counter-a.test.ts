import Redis from 'ioredis'
import { expect, inject, test } from 'vitest'

test.skipIf(!inject('redisPort'))('reaches the Redis globalSetup spawned, from a sandbox of its own', async () => {
  const redis = new Redis({ host: '127.0.0.1', port: inject('redisPort') })
  try {
    expect(await redis.incr('example:visits')).toBeGreaterThanOrEqual(1)
  } finally {
    redis.disconnect()
  }
})
