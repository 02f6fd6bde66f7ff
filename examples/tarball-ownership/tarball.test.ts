import { execFileSync, spawnSync } from 'node:child_process'
import { chmodSync, chownSync, mkdirSync, mkdtempSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'

/** What the archive must carry for each entry: owner, group and permission bits. */
const entries = [
  { path: 'app', uid: 1000, gid: 1000, mode: 0o755, dir: true },
  { path: 'app/app.conf', uid: 1000, gid: 1000, mode: 0o640 },
  { path: 'app/run.sh', uid: 0, gid: 0, mode: 0o755 },
  { path: 'db', uid: 54321, gid: 54321, mode: 0o750, dir: true },
  { path: 'db/data.dbf', uid: 54321, gid: 54321, mode: 0o600 },
]

/** A directory others may enter (mkdtemp makes 0700 ones). */
function openDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  chmodSync(dir, 0o755)
  return dir
}

function owned(file: string, uid: number, gid: number, mode: number, content = `${file}\n`): string {
  writeFileSync(file, content)
  chownSync(file, uid, gid)
  chmodSync(file, mode)
  return file
}

describe('a tarball keeps owners and modes', () => {
  const src = openDir('src-')
  const dest = openDir('dest-')
  const archive = join(tmpdir(), 'release.tar')

  it('packs files owned by 1000 and 54321 with the system tar', () => {
    for (const e of entries) {
      const path = join(src, e.path)
      if (e.dir) {
        mkdirSync(path)
        chownSync(path, e.uid, e.gid)
        chmodSync(path, e.mode)
      } else {
        owned(path, e.uid, e.gid, e.mode)
      }
    }
    execFileSync('tar', ['-C', src, '--numeric-owner', '-cf', archive, 'app', 'db'])

    const listing = execFileSync('tar', ['--numeric-owner', '-tvf', archive], { encoding: 'utf8' })
    expect(listing).toMatch(/^-rw-r----- 1000\/1000 .* app\/app\.conf$/m)
    expect(listing).toMatch(/^-rw------- 54321\/54321 .* db\/data\.dbf$/m)
  })

  it('extracts them with --same-owner and every owner and mode survives', () => {
    execFileSync('tar', ['-C', dest, '--same-owner', '--same-permissions', '--numeric-owner', '-xf', archive])

    const got = entries.map((e) => {
      const st = statSync(join(dest, e.path))
      return { path: e.path, uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 }
    })
    expect(got).toEqual(entries.map(({ path, uid, gid, mode }) => ({ path, uid, gid, mode })))
  })
})

describe('file permissions hold for other users', () => {
  const hasSetpriv = spawnSync('setpriv', ['--version']).error === undefined
  const asUid1000 = (file: string) =>
    spawnSync('setpriv', ['--reuid=1000', '--regid=1000', '--clear-groups', 'cat', file], { encoding: 'utf8' })

  it('uid 1000 reads its own 0600 file but not one owned by 54321', (ctx) => {
    ctx.skip(!hasSetpriv, 'setpriv (util-linux) is not installed')
    const dir = openDir('perm-')
    const mine = owned(join(dir, 'mine.key'), 1000, 1000, 0o600, 'secret of 1000\n')
    const theirs = owned(join(dir, 'theirs.key'), 54321, 54321, 0o600, 'secret of 54321\n')

    // the control: setpriv works and uid 1000 can reach the directory
    const ok = asUid1000(mine)
    expect(ok.stderr).toBe('')
    expect(ok.stdout).toBe('secret of 1000\n')

    const denied = asUid1000(theirs)
    expect(denied.status).not.toBe(0)
    expect(denied.stdout).toBe('')
    expect(denied.stderr).toMatch(/Permission denied/)
  })
})
