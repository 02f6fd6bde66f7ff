import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { expect, it } from 'vitest'

/** The mountinfo line whose mount point is `dir`, if any (field 5 is the mount point). */
function mountOf(dir: string): string | undefined {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .find((line) => line.split(' ')[4] === dir)
}

it('mounts a 1 MB tmpfs, fills it up, and unmounts it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'small-'))
  expect(mountOf(dir)).toBeUndefined()

  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'none', dir])
  try {
    expect(mountOf(dir)).toMatch(/ - tmpfs none rw,.*size=1024k/)

    writeFileSync(join(dir, 'small.txt'), 'fits')
    expect(readFileSync(join(dir, 'small.txt'), 'utf8')).toBe('fits')

    expect(() => writeFileSync(join(dir, 'big.bin'), Buffer.alloc(2 * 1024 * 1024, 1))).toThrow(/ENOSPC/)
  } finally {
    execFileSync('umount', [dir])
  }

  expect(mountOf(dir)).toBeUndefined()
  // the file lived on the tmpfs, not in the directory underneath
  expect(existsSync(join(dir, 'small.txt'))).toBe(false)
})
