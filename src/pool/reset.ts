import { closeSync, mkdirSync, statSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import koffi from 'koffi'
import type { ResetPlan } from './reset-plan.js'

// mount(2), umount2(2), open_tree(2), move_mount(2) flags
const MS_NOSUID = 0x2
const MS_NODEV = 0x4
const MNT_DETACH = 0x2
const AT_FDCWD = -100
const AT_RECURSIVE = 0x8000
const OPEN_TREE_CLONE = 0x1
const OPEN_TREE_CLOEXEC = 0o2000000
const MOVE_MOUNT_F_EMPTY_PATH = 0x4
// Syscalls added since Linux 5.1 share one number on every architecture.
const SYS_OPEN_TREE = 428
const SYS_MOVE_MOUNT = 429

interface Libc {
  mount(source: string, target: string, fstype: string | null, flags: number, data: string | null): number
  umount2(target: string, flags: number): number
  sethostname(name: string, length: number): number
  syscall(number: number, ...typedArgs: unknown[]): number
}

let libc: Libc | undefined

/**
 * These calls are legal in a multithreaded process, unlike unshare(CLONE_NEWUSER): the
 * worker already is root in its own user and mount namespaces, so it can rebuild its
 * sandbox in place without a new process.
 */
function loadLibc(): Libc {
  if (libc) return libc
  const lib = koffi.load('libc.so.6')
  libc = {
    mount: lib.func('int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)'),
    umount2: lib.func('int umount2(const char *target, int flags)'),
    sethostname: lib.func('int sethostname(const char *name, size_t len)'),
    syscall: lib.func('long syscall(long number, ...)'),
  } as Libc
  return libc
}

function check(result: number, what: string): number {
  if (result < 0) {
    const errno = koffi.errno()
    throw new Error(`vitest-pool-rootless: can't reset the sandbox between test files: ${what} failed (errno ${errno}). Run with isolate: true to get a fresh sandbox per file instead.`)
  }
  return result
}

/**
 * Gives a reused worker the sandbox a new one would get: each tmpfs replaced by an
 * empty one (with the kept paths moved across), /etc/hosts and the hostname restored.
 */
export function resetSandbox(plan: ResetPlan): void {
  const c = loadLibc()
  // read before the unmount: once the old tmpfs is detached, a cwd under it has no path
  const cwd = process.cwd()
  const options = plan.tmpfsSize ? `mode=1777,size=${plan.tmpfsSize}` : 'mode=1777'
  for (const target of plan.tmpfs) {
    const keeps = plan.keep.filter((k) => k.startsWith(`${target}/`))
    const isDir = keeps.map((k) => statSync(k).isDirectory())
    // Clone each kept subtree first: once the old tmpfs is detached, binds under it
    // can't serve as a mount source any more, but a detached clone can be moved.
    const trees = keeps.map((k) => check(c.syscall(SYS_OPEN_TREE, 'int', AT_FDCWD, 'str', k, 'uint', OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE), `open_tree ${k}`))
    check(c.umount2(target, MNT_DETACH), `umount ${target}`)
    check(c.mount('tmpfs', target, 'tmpfs', MS_NOSUID | MS_NODEV, options), `mount a tmpfs on ${target}`)
    keeps.forEach((k, i) => {
      if (isDir[i]) mkdirSync(k, { recursive: true })
      else {
        mkdirSync(dirname(k), { recursive: true })
        writeFileSync(k, '')
      }
      check(c.syscall(SYS_MOVE_MOUNT, 'int', trees[i], 'str', '', 'int', AT_FDCWD, 'str', k, 'uint', MOVE_MOUNT_F_EMPTY_PATH), `move_mount onto ${k}`)
      closeSync(trees[i]!)
    })
  }
  writeFileSync('/etc/hosts', plan.hosts)
  if (plan.hostname) check(c.sethostname(plan.hostname, Buffer.byteLength(plan.hostname)), 'sethostname')
  // the old cwd may have been on the detached tmpfs: resolve it again in the new tree
  process.chdir(cwd)
}
