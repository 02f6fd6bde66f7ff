import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { holdUserNamespace } from '../../src/engine/holder.js'
import type { IdMapPlan } from '../../src/plan/idmap.js'

const idMap: IdMapPlan = { uidMap: [{ inside: 0, outside: 0, count: 1 }], gidMap: [{ inside: 0, outside: 0, count: 1 }], helpers: null, mode: 'self' }

const made: string[] = []
afterAll(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true })
})

/** A temp dir of this file's, gone after its tests. */
function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  made.push(dir)
  return dir
}

/** A stand-in launcher in --hold mode: prints what it is given, then waits for stdin to close. */
function fakeHolder(script: string): string {
  const dir = tempDir('vpr-holder-')
  const path = join(dir, 'launcher')
  writeFileSync(path, `#!/bin/sh\n${script}\ncat >/dev/null\n`)
  chmodSync(path, 0o755)
  return path
}

describe('the warm user namespace holder', () => {
  it('is ready only when the launcher says exactly "ready"', async () => {
    const userns = await holdUserNamespace(fakeHolder("printf 'rea'; sleep 0.1; printf 'dy\\n'"), idMap)
    expect(userns.fd).toBeGreaterThan(2)
    userns.close()
  })

  it('with a networks socket, stays for the run and ends at close(); without one, is gone before it resolves', async () => {
    const dir = tempDir('vpr-holder-run-')
    // says what it was given, and when its stdin ended
    const launcher = fakeHolder(`echo "$@" > ${dir}/args; printf 'ready\\n'; cat >/dev/null; echo ended > ${dir}/ended; exit 0`)
    const ended = () => existsSync(join(dir, 'ended'))
    const serving = await holdUserNamespace(launcher, idMap, join(dir, 'networks'))
    expect(serving.networksSocket).toBe(join(dir, 'networks'))
    expect(readFileSync(join(dir, 'args'), 'utf8')).toMatch(/--hold --networks \S+\/networks\n$/)
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(ended()).toBe(false)
    serving.close()
    for (let i = 0; i < 100 && !ended(); i++) await new Promise((resolve) => setTimeout(resolve, 20))
    expect(ended()).toBe(true)

    rmSync(join(dir, 'ended'))
    const plain = await holdUserNamespace(launcher, idMap)
    expect(plain.networksSocket).toBeUndefined()
    expect(readFileSync(join(dir, 'args'), 'utf8')).toMatch(/--hold\n$/)
    expect(ended()).toBe(true)
    plain.close()
  })

  it('refuses any other first output, with what it said', async () => {
    await expect(holdUserNamespace(fakeHolder("echo 'something else'"), idMap)).rejects.toThrow(/can't create the warm user namespace.*said "something else\\n" instead of "ready"/s)
  })
})
