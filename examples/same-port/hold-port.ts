import { createServer } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { expect, it } from 'vitest'

/** Listens on port 3000 as the app would, holds it for about a second, and checks that the server answering on 3000 is this file's own. */
export function holdsPort3000(name: string): void {
  it(`${name}: listens on port 3000 and keeps it for a second`, async () => {
    const server = createServer((_req, res) => res.end(name))
    await new Promise<void>((ok, fail) => server.once('error', fail).listen(3000, ok))
    try {
      expect(await (await fetch('http://127.0.0.1:3000/')).text()).toBe(name)
      await sleep(1000)
      expect(await (await fetch('http://127.0.0.1:3000/')).text()).toBe(name)
    } finally {
      server.closeAllConnections()
      await new Promise((ok) => server.close(ok))
    }
  })
}
