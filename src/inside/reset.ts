import { closeSync, mkdirSync, statSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import koffi from 'koffi'
import type { ResetPlan } from '../ns/reset-plan.js'

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
const ENOSYS = 38

interface Libc {
  mount(source: string, target: string, fstype: string | null, flags: number, data: string | null): number
  umount2(target: string, flags: number): number
  sethostname(name: string, length: number): number
  syscall(number: number, ...typedArgs: unknown[]): number
}

let libc: Libc | undefined

/** glibc, then musl (Alpine) under its own name. */
function libcNames(): string[] {
  const arch = { x64: 'x86_64', arm64: 'aarch64', arm: 'armhf', riscv64: 'riscv64', ia32: 'i386' }[process.arch as string] ?? process.arch
  return ['libc.so.6', `libc.musl-${arch}.so.1`]
}

/**
 * These calls are legal in a multithreaded process, unlike unshare(CLONE_NEWUSER): the
 * worker already is root in its own user and mount namespaces, so it can rebuild its
 * sandbox in place without a new process.
 */
function loadLibc(): Libc {
  if (libc) return libc
  let lib: ReturnType<typeof koffi.load> | undefined
  for (const name of libcNames()) {
    try {
      lib = koffi.load(name)
      break
    } catch {}
  }
  if (!lib) throw new Error(`vitest-pool-rootless: can't reset the sandbox between test files: no C library found (tried ${libcNames().join(', ')}). Use isolate: true.`)
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
    const why = errno === ENOSYS ? 'this kernel is older than 5.2 (no open_tree/move_mount)' : `errno ${errno}`
    throw new Error(`vitest-pool-rootless: can't reset the sandbox between test files: ${what} failed (${why}). Run with isolate: true to get a fresh sandbox per file instead.`)
  }
  return result
}

/** What the worker looked like when its first file started. */
export interface FirstFileState {
  hostname: string
  cwd: string
}

/**
 * Gives a reused worker the sandbox a new one would get: each tmpfs replaced by an
 * empty one (with the kept paths moved across), /etc/hosts and the hostname restored.
 * Processes an earlier file left running are not stopped: they share this worker.
 */
export function resetSandbox(plan: ResetPlan, first: FirstFileState): void {
  const c = loadLibc()
  // read before the unmount: once the old tmpfs is detached, a cwd under it has no path
  let cwd: string
  try {
    cwd = process.cwd()
  } catch {
    cwd = first.cwd
  }
  const options = plan.tmpfsSize ? `mode=1777,size=${plan.tmpfsSize}` : 'mode=1777'
  for (const { tmpfs: target, keep } of plan.mounts) {
    // Clone each kept subtree first: once the old tmpfs is detached, binds under it
    // can't serve as a mount source any more, but a detached clone can be moved.
    const trees: Array<{ path: string; isDir: boolean; fd: number }> = []
    try {
      for (const path of keep) {
        const isDir = statSync(path).isDirectory()
        trees.push({ path, isDir, fd: check(c.syscall(SYS_OPEN_TREE, 'int', AT_FDCWD, 'str', path, 'uint', OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE), `open_tree ${path}`) })
      }
      check(c.umount2(target, MNT_DETACH), `umount ${target}`)
      check(c.mount('tmpfs', target, 'tmpfs', MS_NOSUID | MS_NODEV, options), `mount a tmpfs on ${target}`)
      for (const tree of trees) {
        if (tree.isDir) mkdirSync(tree.path, { recursive: true })
        else {
          mkdirSync(dirname(tree.path), { recursive: true })
          writeFileSync(tree.path, '')
        }
        check(c.syscall(SYS_MOVE_MOUNT, 'int', tree.fd, 'str', '', 'int', AT_FDCWD, 'str', tree.path, 'uint', MOVE_MOUNT_F_EMPTY_PATH), `move_mount onto ${tree.path}`)
      }
    } finally {
      for (const tree of trees) closeSync(tree.fd)
    }
  }
  writeFileSync('/etc/hosts', plan.hosts)
  check(c.sethostname(first.hostname, Buffer.byteLength(first.hostname)), 'sethostname')
  // the old cwd may have been on the detached tmpfs: resolve it again in the new tree,
  // or go back to where the first file started if a test left it somewhere now gone
  try {
    process.chdir(cwd)
  } catch {
    process.chdir(first.cwd)
  }
}
