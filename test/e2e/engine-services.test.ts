import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type AddressInfo, type Server } from 'node:net'
import { join } from 'node:path'
import { afterAll, expect, it } from 'vitest'
import { markRunConfigured, registerHostPort } from '../../src/engine/forwarded-at-run-time.js'
import { exitOf, launcherDeps, SandboxRun } from '../../src/engine/run.js'
import type { LookUp } from '../../src/engine/services.js'
import { validateSandboxOptions, type SandboxOptions } from '../../src/plan/options.js'
import { describeSandbox, ROOT } from '../support/sandbox.js'

// What a sandbox reaches of the host that is known only when the run is under way: the
// runner's children's servers, the served ports of a range, forwardHostPort()'s, and
// named services -- with the real launcher, through the engine every runner uses.
describeSandbox('the engine: ports known at run time', () => {
  const scratch = mkdtempSync(join(ROOT, '.e2e-services-'))
  const servers: Server[] = []
  afterAll(() => {
    for (const server of servers) server.close()
    rmSync(scratch, { recursive: true, force: true })
  })

  /** A server on the host that greets with `hello PORT`; `port` 0 for any free one. */
  const serve = (host: string, port = 0) =>
    new Promise<number>((resolve, reject) => {
      const server = createServer((socket) => socket.end(`hello ${(server.address() as AddressInfo).port}`))
      server.once('error', reject)
      server.listen(port, host, () => resolve((server.address() as AddressInfo).port))
      servers.push(server)
    })

  /** A free port P with P + 1 free too: a range can end at P with P + 1 just outside it. */
  async function twoPorts(): Promise<[number, number]> {
    for (;;) {
      const port = await serve('127.0.0.1')
      if (port < 65535 && (await serve('127.0.0.1', port + 1).then(() => true, () => false))) return [port, port + 1]
    }
  }

  /** Connects from inside a sandbox to each `host:port`; what each answered, or its error code. */
  async function reachFromInside(options: SandboxOptions, targets: string[], deps = launcherDeps, runnerPorts = false): Promise<Record<string, string>> {
    const file = join(scratch, 'probe.cjs')
    writeFileSync(
      file,
      `const net = require('node:net')
const probe = (target) => new Promise((resolve) => {
  const [host, port] = target.split(':')
  let got = ''
  const socket = net.connect(Number(port), host)
  socket.on('data', (d) => (got += d)).on('end', () => resolve(got)).on('error', (e) => resolve(e.code))
})
Promise.all(JSON.parse(process.env.TARGETS).map(probe)).then((answers) => process.send(answers, () => process.exit(0)))
`,
    )
    const run = new SandboxRun(validateSandboxOptions(options), { heldUserNamespace: true, runnerPorts }, deps)
    try {
      const child = await run.launch({ entrypoint: file, execArgv: [], env: { ...process.env, TARGETS: JSON.stringify(targets) }, needs: [scratch], reusable: false }, 0)
      const answers = await new Promise<string[]>((resolve, reject) => {
        child.once('message', (m) => resolve(m as string[]))
        void exitOf(child).then((exit) => reject(new Error(`the probe ended without a word: ${JSON.stringify(exit)}`)))
      })
      return Object.fromEntries(targets.map((target, i) => [target, answers[i]!]))
    } finally {
      await run.close()
    }
  }

  it("reaches a server the runner's child started, on a port known only then (runnerPorts)", async () => {
    const server = "const s = require('net').createServer((c) => c.end('hello child')).listen(0, '127.0.0.1', () => console.log(s.address().port))"
    const child = spawn(process.execPath, ['-e', server], { stdio: ['ignore', 'pipe', 'inherit'] })
    try {
      const port = Number(await new Promise<string>((resolve) => child.stdout!.once('data', (d) => resolve(String(d)))))
      expect(await reachFromInside({}, [`127.0.0.1:${port}`], launcherDeps, true)).toEqual({ [`127.0.0.1:${port}`]: 'hello child' })
      // and without runnerPorts, not
      expect(await reachFromInside({}, [`127.0.0.1:${port}`], launcherDeps, false)).toEqual({ [`127.0.0.1:${port}`]: 'ECONNREFUSED' })
    } finally {
      child.kill()
    }
  })

  it('reaches a served port of a hostPorts range, and not the port just outside it', async () => {
    const [inRange, outside] = await twoPorts()
    const answers = await reachFromInside({ hostPorts: [`${inRange - 10}-${inRange}` as `${number}-${number}`] }, [`127.0.0.1:${inRange}`, `127.0.0.1:${outside}`])
    expect(answers).toEqual({ [`127.0.0.1:${inRange}`]: `hello ${inRange}`, [`127.0.0.1:${outside}`]: 'ECONNREFUSED' })
  })

  it('reaches a port registered with forwardHostPort, and no other', async () => {
    const [registered, other] = await twoPorts()
    markRunConfigured()
    registerHostPort(registered, () => false)
    const answers = await reachFromInside({}, [`127.0.0.1:${registered}`, `127.0.0.1:${other}`])
    expect(answers).toEqual({ [`127.0.0.1:${registered}`]: `hello ${registered}`, [`127.0.0.1:${other}`]: 'ECONNREFUSED' })
  })

  it('reaches a named service by its name, also where the host reaches it off its 127.0.0.1 (through a relay)', async () => {
    // 127.0.0.2: a loopback address the forwarder itself doesn't connect to, as a CI
    // service container's address isn't; the host resolves the names (injected here)
    const offLoopback = await serve('127.0.0.2')
    const onLoopback = await serve('127.0.0.1')
    const lookUp: LookUp = (names) => names.map((name) => ({ 'db.ci.test': { address: '127.0.0.2' }, 'cache.ci.test': { address: '127.0.0.1' } })[name] ?? { error: 'ENOTFOUND' })
    const answers = await reachFromInside({ hostPorts: [`db.ci.test:${offLoopback}`, `cache.ci.test:${onLoopback}`] }, [`db.ci.test:${offLoopback}`, `cache.ci.test:${onLoopback}`, `unknown.ci.test:${onLoopback}`], { ...launcherDeps, lookUp })
    expect(answers).toEqual({ [`db.ci.test:${offLoopback}`]: `hello ${offLoopback}`, [`cache.ci.test:${onLoopback}`]: `hello ${onLoopback}`, [`unknown.ci.test:${onLoopback}`]: 'ENOTFOUND' })
  })

  it("stops the run at its start, naming hostPorts, where the host can't resolve a service's name", () => {
    const run = new SandboxRun(validateSandboxOptions({ hostPorts: ['nosuch.invalid:5432'] }), { heldUserNamespace: true, runnerPorts: false })
    expect(() => run.open()).toThrow(/option `hostPorts` names a service, but this machine can't resolve "nosuch.invalid" \(ENOTFOUND\).*got "nosuch.invalid:5432"/s)
  })
})
