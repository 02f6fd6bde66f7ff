import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { createWarmUserNamespace } from '../../src/engine/holder.js'
import type { IdMapPlan } from '../../src/ns/idmap.js'

const idMap: IdMapPlan = { uidMap: [{ inside: 0, outside: 0, count: 1 }], gidMap: [{ inside: 0, outside: 0, count: 1 }], helpers: null, mode: 'self' }

/** A stand-in launcher in --hold mode: prints what it is given, then waits for stdin to close. */
function fakeHolder(script: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'vpr-holder-'))
  const path = join(dir, 'launcher')
  writeFileSync(path, `#!/bin/sh\n${script}\ncat >/dev/null\n`)
  chmodSync(path, 0o755)
  return path
}

describe('the warm user namespace holder', () => {
  it('is ready only when the launcher says exactly "ready"', async () => {
    const userns = await createWarmUserNamespace(fakeHolder("printf 'rea'; sleep 0.1; printf 'dy\\n'"), idMap)
    expect(userns.fd).toBeGreaterThan(2)
    userns.close()
  })

  it('refuses any other first output, with what it said', async () => {
    await expect(createWarmUserNamespace(fakeHolder("echo 'something else'"), idMap)).rejects.toThrow(/can't create the warm user namespace.*said "something else\\n" instead of "ready"/s)
  })
})
