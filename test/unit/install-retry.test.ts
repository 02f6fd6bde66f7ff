import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { install } from '../support/install.js'

// The e2e consumers' installs (test/support/install.ts): a registry that lists a version
// before it serves it fails one install and not the next; anything else fails at once.

describe('the e2e installs', () => {
  let dir: string
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'vpr-install-retry-'))
  })
  afterEach(() => rmSync(dir, { recursive: true, force: true }))

  /** A package manager that fails its first `failures` runs, saying `said`, and counts runs. */
  const manager = (failures: number, said: string) => {
    const script = join(dir, 'pm.sh')
    writeFileSync(
      script,
      `n=$(cat "${dir}/runs" 2>/dev/null || echo 0); n=$((n + 1)); echo $n > "${dir}/runs"\n` +
        `echo "prefer-online=\${npm_config_prefer_online:-}" >> "${dir}/seen"\n` +
        `if [ $n -le ${failures} ]; then echo '${said}' >&2; exit 1; fi; echo installed\n`,
    )
    return script
  }
  const runs = () => Number(readFileSync(join(dir, 'runs'), 'utf8'))

  it('tries again when the registry listed a version it did not serve yet, asking the registry rather than the cache', () => {
    const r = install('sh', [manager(1, 'npm error code ETARGET\nnpm error notarget No matching version found for tldts-core@^7.6.6.')], { cwd: dir, waits: [10, 10] })
    expect(r.status).toBe(0)
    expect(r.stdout).toBe('installed\n')
    expect(runs()).toBe(2)
    expect(readFileSync(join(dir, 'seen'), 'utf8')).toBe('prefer-online=\nprefer-online=true\n')
  })

  it('gives up after the third try, with what the last one said', () => {
    const r = install('sh', [manager(5, 'ERR_PNPM_NO_MATCHING_VERSION No matching version found for x@1')], { cwd: dir, waits: [10, 10] })
    expect(r.status).toBe(1)
    expect(r.stderr).toContain('ERR_PNPM_NO_MATCHING_VERSION')
    expect(runs()).toBe(3)
  })

  it('does not try again on a failure of its own', () => {
    const r = install('sh', [manager(1, 'npm error code EACCES')], { cwd: dir, waits: [10, 10] })
    expect(r.status).toBe(1)
    expect(runs()).toBe(1)
  })
})
