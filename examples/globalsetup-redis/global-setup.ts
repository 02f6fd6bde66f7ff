import { spawn, spawnSync } from 'node:child_process'
import { createServer, type AddressInfo } from 'node:net'
import type { TestProject } from 'vitest/node'

declare module 'vitest' {
  export interface ProvidedContext {
    redisPort: number
  }
}

const freePort = () =>
  new Promise<number>((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo
      server.close(() => resolve(port))
    })
  })

// One Redis for the whole run, a child process of Vitest on the host, as suites start
// one with redis-memory-server or a spawn of their own. The test files run in sandboxes
// with networks of their own, and still reach it at 127.0.0.1:PORT (runnerPorts).
export default async function setup(project: TestProject) {
  // no npm package ships redis-server itself: this example needs the system's
  if (spawnSync('sh', ['-c', 'command -v redis-server']).status !== 0) {
    console.warn('globalsetup-redis skipped: no redis-server on the PATH (Debian/Ubuntu: apt-get install redis-server; Fedora: dnf install redis)')
    project.provide('redisPort', 0)
    return
  }
  const port = await freePort()
  const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'inherit'] })
  await new Promise<void>((resolve, reject) => {
    redis.once('error', reject)
    redis.stdout!.on('data', (chunk) => String(chunk).includes('Ready to accept connections') && resolve())
  })
  project.provide('redisPort', port)
  return () => {
    redis.kill()
  }
}
