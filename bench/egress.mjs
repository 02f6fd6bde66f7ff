#!/usr/bin/env node
// The 'egress' rows, side by side in one run (npm run build first; run it as your normal
// user, with the outside of scripts/outside-network.sh up):
//   node bench/egress.mjs
// 1. per-sandbox cost of network: 'egress' vs 'isolated': launcher -> /bin/true as a pool
//    starts it (warm user namespace, network namespaces made ahead by the holder --
//    with egress, each with its helper already running), alternating, medians; once
//    back to back and once with a pause between starts, as test files that take time give
// 2. a 100 MB download from the outside server: from the host, and inside a sandbox
//    through the helper (curl, median of 3 each)
//   BENCH_EGRESS_RUNS=200   sandboxes per variant (default 100)
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { installedEgressHelpers, holdUserNamespace, readHostFacts, locateLauncher, egressArg, createIdMapPlan } from '../dist/chunks/internals.js'

const runs = Number(process.env.BENCH_EGRESS_RUNS ?? 100)
const OUTSIDE = 'http://198.18.0.2:8080'
const MB = 100
const launcher = locateLauncher()
const idMap = createIdMapPlan(readHostFacts(), 'auto')
const tmp = tmpdir()
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const round = (x, d = 2) => Math.round(x * 10 ** d) / 10 ** d
const out = { user: process.getuid(), helpers: installedEgressHelpers().map((h) => h.kind), setup: [], download: [] }

for (const helper of installedEgressHelpers()) {
  const state = mkdtempSync(join(tmp, 'vpr-bench-egress-'))
  const isolated = await holdUserNamespace(launcher, idMap, join(state, 'isolated'))
  const egress = await holdUserNamespace(launcher, idMap, join(state, 'egress'), helper)
  const argv = (held, extra) => [launcher, '--userns-fd', '3', '--networks', held.networksSocket, ...extra, '--tmpfs', tmp, '--pid-namespace', '--', '/bin/true']
  const time = (held, extra) => {
    const t = process.hrtime.bigint()
    const r = spawnSync(argv(held, extra)[0], argv(held, extra).slice(1), { stdio: ['ignore', 'ignore', 'pipe', held.fd], cwd: '/' })
    if (r.status !== 0) throw new Error(`${extra.join(' ')}: ${r.stderr}`)
    return Number(process.hrtime.bigint() - t) / 1e6
  }
  for (const pauseMs of [0, 50]) {
    const times = { isolated: [], egress: [] }
    for (let i = 0; i < runs; i++) {
      times.isolated.push(time(isolated, []))
      if (pauseMs) await new Promise((r) => setTimeout(r, pauseMs))
      times.egress.push(time(egress, ['--egress', egressArg(helper)]))
      if (pauseMs) await new Promise((r) => setTimeout(r, pauseMs))
    }
    const row = { helper: helper.kind, pauseMs, runs, isolatedMs: round(median(times.isolated)), egressMs: round(median(times.egress)) }
    row.addedMs = round(row.egressMs - row.isolatedMs)
    out.setup.push(row)
    console.error(`setup (${helper.kind}, ${pauseMs} ms between starts): isolated ${row.isolatedMs} ms, egress ${row.egressMs} ms, +${row.addedMs} ms`)
  }
  // the download, through this helper
  const curl = ['curl', '-sS', '-o', '/dev/null', '-w', '%{speed_download}', `${OUTSIDE}/bytes/${MB * 1024 * 1024}`]
  const speeds = { host: [], sandbox: [] }
  for (let i = 0; i < 3; i++) {
    speeds.host.push(Number(spawnSync(curl[0], curl.slice(1), { encoding: 'utf8' }).stdout) / 1e6)
    const r = spawnSync(launcher, ['--userns-fd', '3', '--networks', egress.networksSocket, '--egress', egressArg(helper), '--tmpfs', tmp, '--pid-namespace', '--', ...curl], { stdio: ['ignore', 'pipe', 'pipe', egress.fd], cwd: '/', encoding: 'utf8' })
    speeds.sandbox.push(Number(r.stdout) / 1e6)
  }
  const row = { helper: helper.kind, mb: MB, hostMBps: round(median(speeds.host), 1), sandboxMBps: round(median(speeds.sandbox), 1) }
  row.ratio = round(row.sandboxMBps / row.hostMBps)
  out.download.push(row)
  console.error(`${MB} MB download (${helper.kind}): host ${row.hostMBps} MB/s, sandbox ${row.sandboxMBps} MB/s (${row.ratio})`)
  isolated.close()
  egress.close()
  rmSync(state, { recursive: true, force: true })
}
console.log(JSON.stringify(out, null, 2))
