// The first module of every sandboxed process the engine starts: it loads what the
// sandbox itself adds to the process, then the runner's entry (the argument after this
// file's path, which it takes out of argv). Not a `--import` preload: worker threads
// inherit the process's execArgv, and a test's threads must look as under the default
// pool, with nothing of ours loaded in them.
import { pathToFileURL } from 'node:url'
import { FORWARDED_PORTS_ENV, INSPECT_ENV, type InspectRequest } from '../wire/wire.js'

const [entry] = process.argv.splice(2, 1)
if (!entry) throw new Error('vitest-pool-rootless: the sandbox entry needs the runner entry to load after it')
// as if the runner's entry had been started itself
process.argv[1] = entry
// a debugger on the host reaches this inspector at the port the engine publishes
const inspect = process.env[INSPECT_ENV]
if (inspect !== undefined) {
  delete process.env[INSPECT_ENV]
  const { port, wait } = JSON.parse(inspect) as InspectRequest
  const inspector = await import('node:inspector')
  // one an IDE's bootloader (NODE_OPTIONS) opened already serves
  if (inspector.url() === undefined) inspector.open(port, '127.0.0.1', wait)
}
// words for what the sandbox's own network causes (isolated or egress), where it has one
if (process.env[FORWARDED_PORTS_ENV] !== undefined) await import('./network-notices.js')
await import(pathToFileURL(entry).href)
