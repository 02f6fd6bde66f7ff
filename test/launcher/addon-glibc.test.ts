import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ROOT } from '../support/sandbox.js'

// The addon is loaded into the user's node, on the user's glibc: it may need no symbol
// version newer than Node 20's own floor, glibc 2.28 (RHEL 8, Debian 10), whichever glibc
// built it. Read from the ELF's version needs (.gnu.version_r), as the dynamic loader
// checks them.

const FLOOR = [2, 28]
const SHT_GNU_VERNEED = 0x6ffffffe

/** Every `GLIBC_x.y[.z]` version the shared object at `path` needs. */
function glibcVersionsNeeded(path: string): string[] {
  const elf = readFileSync(path)
  expect(elf.subarray(0, 4).toString('latin1')).toBe('\x7fELF')
  expect(elf[4], 'a 64-bit ELF').toBe(2)
  const shoff = Number(elf.readBigUInt64LE(0x28))
  const shentsize = elf.readUInt16LE(0x3a)
  const shnum = elf.readUInt16LE(0x3c)
  const section = (i: number) => {
    const at = shoff + i * shentsize
    return { type: elf.readUInt32LE(at + 4), offset: Number(elf.readBigUInt64LE(at + 0x18)), link: elf.readUInt32LE(at + 0x28), info: elf.readUInt32LE(at + 0x2c) }
  }
  const cString = (at: number) => elf.toString('latin1', at, elf.indexOf(0, at))
  const names: string[] = []
  for (let i = 0; i < shnum; i++) {
    const verneed = section(i)
    if (verneed.type !== SHT_GNU_VERNEED) continue
    const strtab = section(verneed.link).offset
    // Elf64_Verneed { vn_version u16, vn_cnt u16, vn_file u32, vn_aux u32, vn_next u32 }, sh_info of them
    for (let n = 0, entry = verneed.offset; n < verneed.info; n++) {
      const count = elf.readUInt16LE(entry + 2)
      // Elf64_Vernaux { vna_hash u32, vna_flags u16, vna_other u16, vna_name u32, vna_next u32 }
      for (let k = 0, aux = entry + elf.readUInt32LE(entry + 8); k < count; k++) {
        names.push(cString(strtab + elf.readUInt32LE(aux + 8)))
        aux += elf.readUInt32LE(aux + 12)
      }
      entry += elf.readUInt32LE(entry + 12)
    }
  }
  return names.filter((name) => name.startsWith('GLIBC_'))
}

const newerThanFloor = (version: string) => {
  const [major = 0, minor = 0] = version.replace('GLIBC_', '').split('.').map(Number)
  return major > FLOOR[0]! || (major === FLOOR[0] && minor > FLOOR[1]!)
}

describe(`the addon asks of glibc no more than ${FLOOR.join('.')}`, () => {
  const targets = ['linux-x64', 'linux-arm64'].filter((t) => existsSync(join(ROOT, 'native', 'build', t, 'rootless.node')))

  it('is built for this machine at least', () => {
    expect(targets).toContain(`linux-${process.arch}`)
  })

  it.each(targets)('%s', (target) => {
    const needed = glibcVersionsNeeded(join(ROOT, 'native', 'build', target, 'rootless.node'))
    // it does use glibc (a parse that finds nothing would prove nothing)
    expect(needed).toContain(target === 'linux-arm64' ? 'GLIBC_2.17' : 'GLIBC_2.2.5')
    expect(needed.filter(newerThanFloor)).toEqual([])
  })
})
