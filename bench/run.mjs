#!/usr/bin/env node
// npm run bench: side-by-side measurements in one run, as ratios (this machine is shared
// and noisy; absolute times mean little). Writes bench/results.json and
// bench/results.svg. Run it as your normal user: that is the rootless case.
//
//   BENCH_RUNS=5 npm run bench      more Vitest runs per variant (default 3; isolate: false
//                                   rows, a second or two each, get five times as many)
//   BENCH_QUICK=1 npm run bench     fewer iterations everywhere, for a smoke test
//   BENCH_PARTS=loop BENCH_LOOP=1500 npm run bench
//                                   only some parts (setup, suites, leaks, vitest3, jest, network, loop, egress), a
//                                   longer start loop; partial runs print and don't write the results
//   egress (bench/egress.mjs): network: 'egress' vs 'isolated' per sandbox, and a download
//                                   through the helper; needs slirp4netns or pasta and the test
//                                   outside up (sudo scripts/outside-network.sh up), else skipped
//                                   with a note
import { spawn, spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createIdMapPlan, holdUserNamespace, readHostFacts, findExecutable, locateLauncher, idMapArgs } from '../dist/chunks/internals.js'
import { renderChart } from './chart.mjs'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const quick = process.env.BENCH_QUICK === '1'
const vitestRuns = Number(process.env.BENCH_RUNS ?? (quick ? 1 : 3))
const setupRuns = quick ? 50 : 500
const loopRuns = Number(process.env.BENCH_LOOP ?? (quick ? 100 : 500))
const parts = new Set((process.env.BENCH_PARTS ?? 'setup,suites,leaks,vitest3,jest,network,loop,egress').split(','))
const launcher = locateLauncher()
const idMap = createIdMapPlan(readHostFacts(), 'auto')
const results = { machine: machine(), user: { uid: process.getuid(), idMap: idMap.mode }, setup: [], suites: [], leaks: [], vitest3: [], jest: [], network: null, loop: null, notes: [] }
if (process.getuid() === 0) results.notes.push('ran as root: run as a normal user with a subuid range for the rootless numbers')
if (idMap.warning) results.notes.push(idMap.warning)

const median = (xs) => quantile(xs, 0.5)
function quantile(xs, q) {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]
}

// ---------------------------------------------------------------- 1. sandbox setup
// as a pool runs them: the holder makes network namespaces ahead, handed out on a socket
const stateDir = mkdtempSync(join(tmpdir(), 'vpr-bench-'))
const warm = await holdUserNamespace(launcher, idMap, join(stateDir, 'networks'))
const WARM_FD = 3
const WARM = ['--userns-fd', String(WARM_FD), '--networks', warm.networksSocket]
const tmp = tmpdir()
const setups = [
  ['launcher, warm user namespace', [launcher, ...WARM, '--tmpfs', tmp, '--', '/bin/true']],
  ['launcher, fresh namespaces', [launcher, ...idMapArgs(idMap), '--tmpfs', tmp, '--', '/bin/true']],
  ['bwrap (user+net+uts+ipc, one uid, tmpfs /tmp)', ['bwrap', '--unshare-user', '--unshare-net', '--unshare-uts', '--unshare-ipc', '--uid', '0', '--gid', '0', '--bind', '/', '/', '--tmpfs', tmp, '/bin/true']],
  // the pool's default adds a pid namespace with an init and its own /proc; compare like with like
  ['launcher, warm + pid namespace (pool default)', [launcher, ...WARM, '--tmpfs', tmp, '--pid-namespace', '--', '/bin/true']],
  ['bwrap + pid namespace and /proc', ['bwrap', '--unshare-user', '--unshare-net', '--unshare-uts', '--unshare-ipc', '--unshare-pid', '--uid', '0', '--gid', '0', '--bind', '/', '/', '--tmpfs', tmp, '--proc', '/proc', '/bin/true']],
  ['unshare -Umn --map-root-user --map-auto', ['unshare', '-Umn', '--map-root-user', '--map-auto', '/bin/true']],
  ['bare exec /bin/true', ['/bin/true']],
]
const hyperfine = findExecutable('hyperfine')
if (!hyperfine) results.notes.push('hyperfine not installed (apt-get install hyperfine): setup timed with a Node spawn loop, which adds its own ~1 ms to every row')
for (const [name, argv] of parts.has('setup') ? setups : []) {
  if (argv[0] !== launcher && argv[0] !== '/bin/true' && !findExecutable(argv[0])) {
    results.notes.push(`${argv[0]} not installed (apt-get install ${argv[0] === 'bwrap' ? 'bubblewrap' : 'util-linux'}): "${name}" skipped`)
    continue
  }
  const probe = spawnSync(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe', warm.fd], cwd: '/', encoding: 'utf8' })
  if (probe.status !== 0) {
    results.notes.push(`"${name}" does not work here (${probe.stderr.trim()}): skipped`)
    continue
  }
  const times = hyperfine ? timeWithHyperfine(argv) : timeWithNode(argv)
  results.setup.push({ name, runs: times.length, medianMs: round(median(times)), p95Ms: round(quantile(times, 0.95)) })
  console.error(`setup: ${name}: median ${round(median(times))} ms`)
}

function timeWithHyperfine(argv) {
  const out = join(tmp, `vpr-bench-${process.pid}.json`)
  const command = argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ')
  const r = spawnSync(hyperfine, ['-N', '--warmup', '20', '--runs', String(setupRuns), '--style', 'none', '--export-json', out, command], {
    stdio: ['ignore', 'ignore', 'inherit', warm.fd],
    cwd: '/',
  })
  if (r.status !== 0) throw new Error(`hyperfine failed for ${command}`)
  const times = JSON.parse(readFileSync(out, 'utf8')).results[0].times.map((s) => s * 1000)
  rmSync(out, { force: true })
  return times
}

function timeWithNode(argv) {
  const times = []
  for (let i = 0; i < setupRuns; i++) {
    const t = performance.now()
    spawnSync(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'ignore', warm.fd], cwd: '/' })
    times.push(performance.now() - t)
  }
  return times
}

// ---------------------------------------------------------------- 2. Vitest suites
const suitesDir = join(root, 'bench', '.suites')
rmSync(suitesDir, { recursive: true, force: true })
const tiny = `it('adds', () => { expect(1 + 1).toBe(2) })`
const suites = [
  // a run's fixed cost (loading the package, the probe, the run's user namespace), as Nx's
  // Atomizer pays it per file: the forks side's config doesn't import the package at all,
  // as a project without it wouldn't; isolate on only, and more runs (under 2 s each)
  { name: 'one file', files: 1, body: tiny, fixedCost: true },
  { name: '100 tiny files', files: 100, body: tiny },
  { name: '40 files awaiting 200 ms', files: 40, body: `it('waits for I/O', async () => { await new Promise((r) => setTimeout(r, 200)); expect(true).toBe(true) })` },
]
/** Writes a suite's project (config and files) under bench/.suites; its directory. */
function makeSuite(suite) {
  const dir = join(suitesDir, suite.name.replace(/\W+/g, '-'))
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, 'vitest.config.mjs'), `import { defineConfig } from 'vitest/config'
import { rootless } from 'vitest-pool-rootless'
export default defineConfig({ test: {
  include: ['*.test.js'],
  pool: process.env.BENCH_POOL === 'rootless' ? rootless({ leaks: process.env.BENCH_LEAKS ?? 'report' }) : 'forks',
  isolate: process.env.BENCH_ISOLATE !== 'false',
} })
`)
  if (suite.fixedCost) writeFileSync(join(dir, 'vitest.forks.config.mjs'), `export default { test: { include: ['*.test.js'], pool: 'forks' } }\n`)
  for (let i = 0; i < suite.files; i++) writeFileSync(join(dir, `f${String(i).padStart(3, '0')}.test.js`), `import { expect, it } from 'vitest'\n${suite.body}\n`)
  return dir
}
for (const suite of suites) suite.dir = makeSuite(suite)
const vitest = join(root, 'node_modules', 'vitest', 'vitest.mjs')
if (parts.has('suites')) await compareVitest(vitest, results.suites, 'vitest', (suite) => suite.dir)

// ---------------------------------------------------------------- 2a. what looking for leaks costs
// the 100 tiny files under rootless(), leaks: 'report' (the default) against 'ignore',
// alternating; pair by pair, so the machine's drift cancels out of each ratio
if (parts.has('leaks')) {
  const suite = suites.find((s) => s.name === '100 tiny files')
  for (const isolate of [true, false]) {
    const runs = isolate ? vitestRuns * 2 : vitestRuns * 5
    const { times, ratios } = await alternate(runs, ['report', 'ignore'], (leaks) => timeVitest(vitest, suite.dir, 'rootless', isolate, { env: { BENCH_LEAKS: leaks } }))
    const row = {
      suite: suite.name,
      isolate,
      runs,
      reportMedianS: round(median(times.report) / 1000),
      ignoreMedianS: round(median(times.ignore) / 1000),
      ratio: round(median(ratios)),
      ratioMin: round(Math.min(...ratios)),
      ratioMax: round(Math.max(...ratios)),
    }
    results.leaks.push(row)
    console.error(`leaks: ${suite.name}, isolate ${isolate}: report/ignore = ${row.ratio} (pairs ${row.ratioMin}..${row.ratioMax})`)
  }
}

// ---------------------------------------------------------------- 2b. Vitest 3.2
// the same suites through a Vitest 3.2 install of the packed package (Vitest 3 takes the
// pool as a module path), in a project of its own under bench/.suites
if (parts.has('vitest3')) {
  const project = join(suitesDir, 'vitest3-install')
  mkdirSync(project, { recursive: true })
  const packed = spawnSync('npm', ['pack', '--ignore-scripts', '--pack-destination', project], { cwd: root, encoding: 'utf8' })
  if (packed.status !== 0) throw new Error(`npm pack failed:\n${packed.stderr}`)
  const tarball = join(project, readdirSync(project).find((f) => f.endsWith('.tgz')))
  writeFileSync(join(project, 'package.json'), JSON.stringify({ private: true, type: 'module', devDependencies: { vitest: '~3.2.4', 'vitest-pool-rootless': `file:${tarball}` } }))
  const installed = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: project, encoding: 'utf8' })
  if (installed.status !== 0) throw new Error(`npm install of Vitest 3.2 failed:\n${installed.stderr}`)
  const dirs = new Map()
  for (const suite of suites) {
    // inside the Vitest 3 project, so the configs resolve its packages
    const dir = join(project, suite.name.replace(/\W+/g, '-'))
    mkdirSync(dir, { recursive: true })
    // files only: the Vitest 4 runs leave a cache under node_modules/ there
    for (const entry of readdirSync(suite.dir, { withFileTypes: true })) {
      if (entry.isFile()) writeFileSync(join(dir, entry.name), readFileSync(join(suite.dir, entry.name)))
    }
    dirs.set(suite, dir)
  }
  await compareVitest(join(project, 'node_modules', 'vitest', 'vitest.mjs'), results.vitest3, 'vitest 3.2', (suite) => dirs.get(suite))
}

/** Runs each suite under forks and rootless, alternating, isolate on and off: one row per pair. */
async function compareVitest(bin, rows, label, dirOf) {
  for (const suite of suites) {
    for (const isolate of suite.fixedCost ? [true] : [true, false]) {
      // an isolate: false run takes a second or two, where the machine's noise is a tenth:
      // more of them, for a median worth comparing
      const runs = isolate && !suite.fixedCost ? vitestRuns : vitestRuns * 5
      const { times } = await alternate(runs, ['forks', 'rootless'], (pool) => timeVitest(bin, dirOf(suite), pool, isolate, { args: suite.fixedCost && pool === 'forks' ? ['--config', 'vitest.forks.config.mjs'] : [] }))
      const row = {
        suite: suite.name,
        isolate,
        runs,
        forksMedianS: round(median(times.forks) / 1000),
        rootlessMedianS: round(median(times.rootless) / 1000),
        ratio: round(median(times.rootless) / median(times.forks)),
      }
      rows.push(row)
      console.error(`${label}: ${suite.name}, isolate ${isolate}: rootless/forks = ${row.ratio}`)
    }
  }
}

/**
 * Times variants `a` and `b` in turn, `runs` times each, swapping which goes first, so
 * drift in the machine's load hits both alike: each one's times, and a/b pair by pair.
 */
async function alternate(runs, [a, b], time) {
  const times = { [a]: [], [b]: [] }
  const ratios = []
  for (let run = 0; run < runs; run++) {
    for (const variant of run % 2 === 0 ? [a, b] : [b, a]) times[variant].push(await time(variant))
    ratios.push(times[a].at(-1) / times[b].at(-1))
  }
  return { times, ratios }
}

function timeVitest(bin, dir, pool, isolate, { env = {}, args = [] } = {}) {
  return new Promise((resolveTime, reject) => {
    const t = performance.now()
    const child = spawn(process.execPath, [bin, 'run', '--root', dir, '--reporter=dot', ...args], {
      cwd: dir,
      env: { ...process.env, BENCH_POOL: pool, BENCH_ISOLATE: String(isolate), NO_COLOR: '1', ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    let stderr = ''
    child.stderr.on('data', (d) => (stderr += d))
    child.once('close', (code) => (code === 0 ? resolveTime(performance.now() - t) : reject(new Error(`vitest (${pool}, isolate ${isolate}) failed in ${dir}:\n${stderr}`))))
  })
}

// ---------------------------------------------------------------- 3. Jest suites
// Jest's own runner vs the rootless one, both at maxWorkers 2 (this machine's cores);
// .cjs files: this repo's package.json says "type": "module"
const jestBin = join(root, 'node_modules', 'jest', 'bin', 'jest.js')
const jestWorkers = 2
for (const suite of parts.has('jest') ? suites.filter((s) => !s.fixedCost) : []) {
  const dir = join(suitesDir, `jest-${suite.name.replace(/\W+/g, '-')}`)
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, 'jest.config.cjs'), `module.exports = {
  runner: process.env.BENCH_RUNNER === 'rootless' ? 'vitest-pool-rootless/jest' : 'jest-runner',
  testMatch: ['**/*.test.cjs'],
  maxWorkers: ${jestWorkers},
  cacheDirectory: ${JSON.stringify(join(dir, '.cache'))},
}
`)
  for (let i = 0; i < suite.files; i++) writeFileSync(join(dir, `f${String(i).padStart(3, '0')}.test.cjs`), `${suite.body.replace(/^it\(/, 'test(')}\n`)
  const times = { default: [], rootless: [] }
  // one run each first: the transform cache is warm for both, as on a developer's machine
  for (const runner of ['default', 'rootless']) await timeJest(dir, runner)
  for (let run = 0; run < vitestRuns; run++) {
    const order = run % 2 === 0 ? ['default', 'rootless'] : ['rootless', 'default']
    for (const runner of order) times[runner].push(await timeJest(dir, runner))
  }
  const row = {
    suite: suite.name,
    maxWorkers: jestWorkers,
    runs: vitestRuns,
    defaultMedianS: round(median(times.default) / 1000),
    rootlessMedianS: round(median(times.rootless) / 1000),
    ratio: round(median(times.rootless) / median(times.default)),
  }
  results.jest.push(row)
  console.error(`jest: ${suite.name}: rootless/default = ${row.ratio}`)
}

function timeJest(dir, runner) {
  return new Promise((resolveTime, reject) => {
    const t = performance.now()
    const child = spawn(process.execPath, [jestBin, '--ci', '--silent'], {
      cwd: dir,
      env: { ...process.env, BENCH_RUNNER: runner, NO_COLOR: '1' },
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    let stderr = ''
    child.stderr.on('data', (d) => (stderr += d))
    child.once('close', (code) => (code === 0 ? resolveTime(performance.now() - t) : reject(new Error(`jest (${runner}) failed in ${dir}:\n${stderr}`))))
  })
}

// ---------------------------------------------------------------- 3b. forwarded ports
// One host server (a process of its own), one client inside a sandbox: with the host's
// network (`network: 'host'`, direct) or its own with the port forwarded (`hostPorts`):
// connects redirected to the host (the default), or every byte through the relay
// (`--relay-only`, the path where a redirect can't be made). Only the path between them
// differs. Alternating runs, medians.
const NET_BYTES = quick ? 128 * 1024 * 1024 : 1024 * 1024 * 1024
const NET_TRIPS = quick ? 2000 : 10_000
const NET_SERVER = `
const net = require('net')
const server = net.createServer((socket) => {
  let mode = null, bytes = 0
  socket.on('data', (chunk) => {
    if (mode === null) { mode = chunk[0]; chunk = chunk.subarray(1) }
    // 's': a stream, counted and answered at its end; 'e': echo, for round trips
    if (mode === 0x65) socket.write(chunk)
    else bytes += chunk.length
  })
  socket.on('end', () => socket.end(mode === 0x73 ? String(bytes) : undefined))
}).listen(0, '127.0.0.1', () => console.log(server.address().port))`
const NET_CLIENT = `
const net = require('net')
const [what, port, amount] = process.argv.slice(1)
if (what === 'connects') connects()
else {
const socket = net.connect(Number(port), '127.0.0.1')
socket.setNoDelay(true)
socket.once('connect', what === 'stream' ? () => stream(socket) : () => trips(socket))
}
// new connections to a server of the sandbox's own: what a connect costs when every
// connect(2) asks the forwarder first (forwarded) or doesn't (relay)
function connects() {
  const own = net.createServer((c) => c.end()).listen(7100, '127.0.0.1', async () => {
    const one = () => new Promise((resolve, reject) => net.connect(7100, '127.0.0.1').once('connect', function () { this.destroy(); resolve() }).once('error', reject))
    for (let i = 0; i < 200; i++) await one()
    const start = process.hrtime.bigint()
    for (let i = 0; i < Number(amount); i++) await one()
    console.log(JSON.stringify({ us: Number(process.hrtime.bigint() - start) / 1e3 / Number(amount) }))
    own.close()
  })
}
function stream(socket) {
  const chunk = Buffer.alloc(1024 * 1024, 1)
  let left = Number(amount), reply = ''
  const start = process.hrtime.bigint()
  socket.write('s')
  socket.setEncoding('utf8').on('data', (d) => (reply += d)).on('end', () => {
    if (Number(reply) !== Number(amount)) throw new Error('short stream: ' + reply)
    console.log(JSON.stringify({ ms: Number(process.hrtime.bigint() - start) / 1e6 }))
  })
  const pump = () => { while (left > 0) { left -= chunk.length; if (!socket.write(chunk)) return socket.once('drain', pump) } socket.end() }
  pump()
}
function trips(socket) {
  const times = [], message = Buffer.alloc(64, 2)
  let n = Number(amount) + 500, start
  socket.write('e')
  const next = () => { start = process.hrtime.bigint(); socket.write(message) }
  let got = 0
  socket.on('data', (d) => {
    got += d.length
    if (got < message.length) return
    got -= message.length
    const us = Number(process.hrtime.bigint() - start) / 1e3
    if (--n < Number(amount)) times.push(us) // the first 500 warm up
    if (n > 0) return next()
    times.sort((a, b) => a - b)
    console.log(JSON.stringify({ p50: times[Math.floor(times.length / 2)], p99: times[Math.floor(times.length * 0.99)] }))
    socket.end()
  })
  next()
}`
if (parts.has('network')) {
  const server = spawn(process.execPath, ['-e', NET_SERVER], { stdio: ['ignore', 'pipe', 'inherit'] })
  const port = Number(await new Promise((resolve) => server.stdout.once('data', (d) => resolve(String(d)))))
  // with a pid namespace, as the pools run sandboxes (direct connects need one)
  const modes = { direct: ['--host-network', '--pid-namespace'], forwarded: ['--forward', `${port}:${port}`, '--pid-namespace'], relay: ['--forward', `${port}:${port}`, '--pid-namespace', '--relay-only'] }
  const ports = { direct: port, forwarded: port, relay: port }
  // for scale, where socat is installed: a classic user-space relay on the host (read/write)
  const socatBin = findExecutable('socat')
  let socat
  if (socatBin) {
    const free = await new Promise((resolve) => {
      const probe = createServer().listen(0, '127.0.0.1', () => {
        const { port: p } = probe.address()
        probe.close(() => resolve(p))
      })
    })
    socat = spawn(socatBin, [`TCP-LISTEN:${free},bind=127.0.0.1,reuseaddr,fork`, `TCP:127.0.0.1:${port}`], { stdio: 'ignore' })
    await new Promise((resolve) => setTimeout(resolve, 300))
    modes.socat = ['--host-network', '--pid-namespace']
    ports.socat = free
  } else {
    results.notes.push('socat not installed (apt-get install socat): no user-space relay row for scale')
  }
  const runClient = (mode, what, amount) => {
    const r = spawnSync(launcher, [...WARM, '--tmpfs', tmp, ...modes[mode], '--', process.execPath, '-e', NET_CLIENT, what, String(ports[mode]), String(amount)], {
      stdio: ['ignore', 'pipe', 'inherit', warm.fd],
      cwd: '/',
      encoding: 'utf8',
    })
    if (r.status !== 0) throw new Error(`network bench client (${mode}, ${what}) failed: exit ${r.status}`)
    return JSON.parse(r.stdout)
  }
  const runs = Object.fromEntries(Object.keys(modes).map((mode) => [mode, { ms: [], p50: [], p99: [], connectUs: [] }]))
  for (let i = 0; i < Math.max(3, vitestRuns); i++) {
    const order = Object.keys(modes)
    for (const mode of i % 2 ? order.reverse() : order) {
      runs[mode].ms.push(runClient(mode, 'stream', NET_BYTES).ms)
      const { p50, p99 } = runClient(mode, 'trips', NET_TRIPS)
      runs[mode].p50.push(p50)
      runs[mode].p99.push(p99)
      if (mode === 'forwarded' || mode === 'relay') runs[mode].connectUs.push(runClient(mode, 'connects', NET_TRIPS / 5).us)
    }
  }
  server.kill()
  socat?.kill()
  const mbps = (mode) => round(NET_BYTES / 1024 / 1024 / (median(runs[mode].ms) / 1000))
  results.network = {
    bytes: NET_BYTES,
    roundTrips: NET_TRIPS,
    directMBps: mbps('direct'),
    forwardedMBps: mbps('forwarded'),
    throughputRatio: round(mbps('forwarded') / mbps('direct')),
    directP50Us: round(median(runs.direct.p50)),
    forwardedP50Us: round(median(runs.forwarded.p50)),
    directP99Us: round(median(runs.direct.p99)),
    forwardedP99Us: round(median(runs.forwarded.p99)),
    relayMBps: mbps('relay'),
    relayThroughputRatio: round(mbps('relay') / mbps('direct')),
    relayP50Us: round(median(runs.relay.p50)),
    // a connect(2) to anything else pays a round trip to the forwarder (direct connects)
    ownConnectUs: round(median(runs.relay.connectUs)),
    ownConnectAddedUs: round(median(runs.forwarded.connectUs) - median(runs.relay.connectUs)),
  }
  results.network.addedP50Us = round(results.network.forwardedP50Us - results.network.directP50Us)
  if (socat) {
    results.network.socatMBps = mbps('socat')
    results.network.socatThroughputRatio = round(mbps('socat') / mbps('direct'))
    results.network.socatP50Us = round(median(runs.socat.p50))
  }
  console.error(`network: ${JSON.stringify(results.network)}`)
}

// ---------------------------------------------------------------- 4. start loop
const mountsBefore = mounts()
const perHundred = []
let failures = 0
for (let block = 0; block < (parts.has('loop') ? loopRuns / 100 : 0); block++) {
  const times = []
  for (let i = 0; i < 100; i++) {
    const t = performance.now()
    const r = spawnSync(launcher, [...WARM, '--tmpfs', tmp, '--pid-namespace', '--', '/bin/true'], { stdio: ['ignore', 'ignore', 'ignore', warm.fd], cwd: '/' })
    times.push(performance.now() - t)
    if (r.status !== 0) failures++
  }
  perHundred.push(round(quantile(times, 0.95)))
}
warm.close()
rmSync(stateDir, { recursive: true, force: true })
await new Promise((r) => setTimeout(r, 500))
results.loop = {
  starts: loopRuns,
  failures,
  p95MsPerHundred: perHundred,
  leftoverProcesses: leftovers().length,
  leftoverMounts: mounts().filter((m) => !mountsBefore.includes(m)).length,
}
rmSync(suitesDir, { recursive: true, force: true })

function mounts() {
  return readFileSync('/proc/self/mountinfo', 'utf8').trim().split('\n').map((l) => l.split(' ').slice(3, 5).join(' '))
}

function leftovers() {
  return readdirSync('/proc').filter((p) => /^\d+$/.test(p) && Number(p) !== process.pid).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(launcher)
    } catch {
      return false
    }
  })
}

// ---------------------------------------------------------------- 7. egress
// its own script (it holds namespaces with and without helpers); folded in here so one
// `npm run bench` has every row
if (parts.has('egress')) {
  const outside = await fetch('http://198.18.0.2:8080/', { signal: AbortSignal.timeout(2000) }).then(() => true, () => false)
  if (!outside) {
    results.notes.push("egress rows skipped: the test outside (198.18.0.2:8080) isn't up; `sudo scripts/outside-network.sh up` first")
  } else {
    const egress = spawnSync(process.execPath, [join(root, 'bench', 'egress.mjs')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, BENCH_EGRESS_RUNS: process.env.BENCH_EGRESS_RUNS ?? String(quick ? 20 : 100) } })
    if (egress.status === 0) results.egress = JSON.parse(egress.stdout)
    else results.notes.push(`egress rows failed (exit ${egress.status}); run node bench/egress.mjs for its words`)
  }
}

// ---------------------------------------------------------------- report
const by = (name) => results.setup.find((r) => r.name.startsWith(name))?.medianMs
const ratio = (a, b) => (a && b ? round(a / b) : null)
const suite = (name, isolate) => results.suites.find((r) => r.suite === name && r.isolate === isolate)?.ratio ?? null
const jestSuite = (name) => results.jest.find((r) => r.suite === name)?.ratio ?? null
const leaks = (isolate) => results.leaks.find((r) => r.isolate === isolate)?.ratio ?? null
const v3 = (name, isolate) => results.vitest3.find((r) => r.suite === name && r.isolate === isolate)?.ratio ?? null
results.targets = [
  { what: 'warm setup / bwrap', ratio: ratio(by('launcher, warm user namespace'), by('bwrap (user')), target: 0.5 },
  // like for like with the pool's default; no target was set for it
  { what: 'warm setup / bwrap, both with a pid namespace', ratio: ratio(by('launcher, warm + pid'), by('bwrap + pid')), target: null },
  { what: 'fresh setup / unshare --map-auto', ratio: ratio(by('launcher, fresh'), by('unshare')), target: 1.0 },
  { what: 'one-file project (fixed cost of a run): rootless / forks', ratio: suite('one file', true), target: 1.05 },
  { what: '100 tiny files, isolate on: rootless / forks', ratio: suite('100 tiny files', true), target: 1.02 },
  { what: '40 I/O-bound files, isolate on: rootless / forks', ratio: suite('40 files awaiting 200 ms', true), target: 0.8 },
  { what: '100 tiny files, isolate off: rootless / forks', ratio: suite('100 tiny files', false), target: 1.05 },
  { what: '40 I/O-bound files, isolate off: rootless / forks', ratio: suite('40 files awaiting 200 ms', false), target: 1.05 },
  { what: "100 tiny files, isolate on: leaks 'report' / 'ignore'", ratio: leaks(true), target: 1.02 },
  { what: "100 tiny files, isolate off: leaks 'report' / 'ignore'", ratio: leaks(false), target: 1.02 },
  { what: 'Vitest 3.2, 100 tiny files, isolate on: rootless / forks', ratio: v3('100 tiny files', true), target: 1.02 },
  { what: 'Vitest 3.2, 40 I/O-bound files, isolate on: rootless / forks', ratio: v3('40 files awaiting 200 ms', true), target: 0.8 },
  { what: 'Vitest 3.2, 100 tiny files, isolate off: rootless / forks', ratio: v3('100 tiny files', false), target: 1.05 },
  { what: 'Vitest 3.2, 40 I/O-bound files, isolate off: rootless / forks', ratio: v3('40 files awaiting 200 ms', false), target: 1.05 },
  { what: 'Jest, 100 tiny files: rootless / default runner', ratio: jestSuite('100 tiny files'), target: 1.05 },
  { what: 'Jest, 40 I/O-bound files: rootless / default runner', ratio: jestSuite('40 files awaiting 200 ms'), target: 0.9 },
  // higher is better for this one: a share of the direct throughput
  { what: '1 GB through a forwarded port: throughput / direct', ratio: results.network?.throughputRatio ?? null, target: 0.8, better: 'higher' },
]
for (const t of results.targets) t.met = t.target == null ? null : t.ratio != null && (t.better === 'higher' ? t.ratio >= t.target : t.ratio <= t.target)
const complete = ['setup', 'suites', 'leaks', 'vitest3', 'jest', 'network', 'loop'].every((part) => parts.has(part))
if (complete) {
  mkdirSync(join(root, 'bench'), { recursive: true })
  writeFileSync(join(root, 'bench', 'results.json'), `${JSON.stringify(results, null, 2)}\n`)
  writeFileSync(join(root, 'bench', 'results.svg'), renderChart(results))
}

console.log('\nSandbox setup -> /bin/true (median / p95, ms)')
console.table(Object.fromEntries(results.setup.map((r) => [r.name, { median: r.medianMs, p95: r.p95Ms, runs: r.runs }])))
console.log('Vitest wall time, rootless vs forks (median of alternating runs)')
console.table(Object.fromEntries(results.suites.map((r) => [`${r.suite}, isolate ${r.isolate ? 'on' : 'off'}`, { forks_s: r.forksMedianS, rootless_s: r.rootlessMedianS, ratio: r.ratio }])))
console.log("What looking for leaks costs: leaks 'report' (the default) vs 'ignore', rootless (median of pair ratios)")
console.table(Object.fromEntries(results.leaks.map((r) => [`${r.suite}, isolate ${r.isolate ? 'on' : 'off'}`, { report_s: r.reportMedianS, ignore_s: r.ignoreMedianS, ratio: r.ratio, pairs: `${r.ratioMin}..${r.ratioMax}`, runs: r.runs }])))
console.log('Vitest 3.2 wall time, rootless vs forks (median of alternating runs)')
console.table(Object.fromEntries(results.vitest3.map((r) => [`${r.suite}, isolate ${r.isolate ? 'on' : 'off'}`, { forks_s: r.forksMedianS, rootless_s: r.rootlessMedianS, ratio: r.ratio }])))
console.log(`Jest wall time, rootless vs default runner, maxWorkers ${jestWorkers} (median of alternating runs)`)
console.table(Object.fromEntries(results.jest.map((r) => [r.suite, { default_s: r.defaultMedianS, rootless_s: r.rootlessMedianS, ratio: r.ratio }])))
if (results.egress) {
  console.log("network: 'egress' vs 'isolated', per sandbox (median ms; target: at most +5 ms)")
  console.table(Object.fromEntries(results.egress.setup.map((r) => [`${r.helper}, ${r.pauseMs} ms between starts`, { isolated_ms: r.isolatedMs, egress_ms: r.egressMs, added_ms: r.addedMs }])))
  console.table(Object.fromEntries(results.egress.download.map((r) => [`${r.mb} MB download, ${r.helper}`, { host_MBps: r.hostMBps, sandbox_MBps: r.sandboxMBps, ratio: r.ratio }])))
}
if (results.network) {
  const n = results.network
  console.log(`Forwarded port vs direct (network: 'host'), median of alternating runs`)
  const relay = (value) => (n.socatMBps ? { 'socat relay (for scale)': value } : {})
  console.table({
    [`${n.bytes / 1024 / 1024} MB stream, MB/s`]: { direct: n.directMBps, forwarded: n.forwardedMBps, 'forwarded / direct': n.throughputRatio, 'our relay only': n.relayMBps, ...relay(n.socatMBps) },
    [`${n.roundTrips} round trips, p50 µs`]: { direct: n.directP50Us, forwarded: n.forwardedP50Us, 'forwarded - direct': n.addedP50Us, 'our relay only': n.relayP50Us, ...relay(n.socatP50Us) },
    [`${n.roundTrips} round trips, p99 µs`]: { direct: n.directP99Us, forwarded: n.forwardedP99Us, 'forwarded - direct': round(n.forwardedP99Us - n.directP99Us) },
  })
  console.log(`added p50 latency ${n.addedP50Us} µs (target <= 50 µs): ${n.addedP50Us <= 50 ? 'met' : 'NOT met'}`)
  console.log(`a new connection to a server of the sandbox's own: ${n.ownConnectUs} µs, +${n.ownConnectAddedUs} µs where ports are forwarded (each TCP connect(2) asks the forwarder first)`)
}
console.log('Targets')
console.table(Object.fromEntries(results.targets.map((t) => [t.what, { ratio: t.ratio, target: t.target == null ? 'none' : `${t.better === 'higher' ? '>=' : '<='} ${t.target}`, met: t.met ?? '-' }])))
if (results.loop) console.log(`Start loop: ${results.loop.starts} starts, ${results.loop.failures} failures, p95 per 100 = ${results.loop.p95MsPerHundred.join(', ')} ms; leftover processes ${results.loop.leftoverProcesses}, mounts ${results.loop.leftoverMounts}`)
for (const note of results.notes) console.log(`note: ${note}`)
console.log(complete ? '\nwrote bench/results.json and bench/results.svg' : '\npartial run (BENCH_PARTS): nothing written')

function round(x) {
  return Math.round(x * 100) / 100
}

function machine() {
  return { cpus: readFileSync('/proc/cpuinfo', 'utf8').split('\n').filter((l) => l.startsWith('processor')).length, kernel: readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(), node: process.version }
}
