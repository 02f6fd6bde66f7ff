/*
 * The mount helpers the sandbox is built from: bind sources opened ahead (a tmpfs on the
 * temp dir hides what lives there), mount points made on an empty tmpfs, private copies
 * of files, and taking back what a test stacked on a path. Helpers: -1 with errno set.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sandbox.h"

int open_source(const char *path, int *is_dir) {
  /* a directory or not, told by O_DIRECTORY rather than fstat: the addon opens sources
     too, and glibc has fstat as a symbol only since 2.33 (see addon.c) */
  int fd = open(path, O_PATH | O_CLOEXEC | O_DIRECTORY);
  *is_dir = fd >= 0;
  if (fd < 0 && errno == ENOTDIR) fd = open(path, O_PATH | O_CLOEXEC);
  return fd;
}

/* mkdir -p for directories, and an empty file as the last component for file binds. */
int make_mountpoint(const char *path, int is_dir) {
  char buf[PATH_MAX];
  if (strlen(path) >= sizeof buf) { errno = ENAMETOOLONG; return -1; }
  strcpy(buf, path);
  for (char *s = buf + 1; *s; s++) {
    if (*s != '/') continue;
    *s = 0;
    if (mkdir(buf, 0755) < 0 && errno != EEXIST) return -1;
    *s = '/';
  }
  if (is_dir) return mkdir(buf, 0755) < 0 && errno != EEXIST ? -1 : 0;
  int fd = open(buf, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return errno == EISDIR ? 0 : -1;
  close(fd);
  return 0;
}

int bind_fd(int fd, const char *target) {
  char src[64];
  snprintf(src, sizeof src, "/proc/self/fd/%d", fd);
  return mount(src, target, NULL, MS_BIND | MS_REC, NULL);
}

/* Copies src_fd's content into a scratch tmpfs over dirname(src_path), binds it on target. */
int private_copy_bind(int src_fd, const char *src_path, const char *target) {
  char dir[PATH_MAX], copy[PATH_MAX + 16], buf[65536];
  if (strlen(src_path) >= sizeof dir) { errno = ENAMETOOLONG; return -1; }
  strcpy(dir, src_path);
  char *slash = strrchr(dir, '/');
  if (!slash || slash == dir) { errno = EINVAL; return -1; }
  *slash = 0;
  if (mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m") < 0) return -1;
  snprintf(copy, sizeof copy, "%s/hosts", dir);
  int out = open(copy, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0) return -1;
  ssize_t n;
  while ((n = read_retry(src_fd, buf, sizeof buf)) > 0)
    if (write_all(out, buf, (size_t)n) < 0) { close(out); return -1; }
  close(out);
  if (n < 0) return -1;
  if (mount(copy, target, NULL, MS_BIND, NULL) < 0) return -1;
  return umount2(dir, MNT_DETACH);
}

/* Most mounts a test can stack on one path before a reset gives up on it. */
#define MAX_STACKED 64

/*
 * Unmounts whatever covers `path` down to the first locked mount -- for a tmpfs target its
 * read-only floor, for /etc/hosts the private copy: everything the launcher mounted is
 * locked, so the kernel refuses (EINVAL) to go further, and the host's directory stays
 * covered whatever was stacked on it or taken away.
 */
int uncover(const char *path) {
  for (int n = 0; n <= MAX_STACKED; n++) {
    if (umount2(path, MNT_DETACH) == 0) continue;
    return errno == EINVAL ? 0 : -1;
  }
  errno = E2BIG;
  return -1;
}

/*
 * The new mount API (Linux 5.2; mount_setattr 5.12), called by number: the C libraries
 * the launcher is built with (musl, older glibc) don't all wrap it, and the numbers are
 * the same on every architecture since Linux 5.1 (asm-generic's unified table).
 */
#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#define VPR_OPEN_TREE_CLONE 1
#define VPR_MOVE_MOUNT_F_EMPTY_PATH 0x4
#define VPR_MOUNT_ATTR_RDONLY 0x1
#define VPR_AT_RECURSIVE 0x8000

struct vpr_mount_attr {
  uint64_t attr_set, attr_clr, propagation, userns_fd;
};

int clone_tree(const char *path) {
  return (int)syscall(SYS_open_tree, AT_FDCWD, path, VPR_OPEN_TREE_CLONE | O_CLOEXEC | VPR_AT_RECURSIVE);
}

int read_only_tree(const char *path) {
  struct vpr_mount_attr attr = {.attr_set = VPR_MOUNT_ATTR_RDONLY};
  return (int)syscall(SYS_mount_setattr, AT_FDCWD, path, VPR_AT_RECURSIVE, &attr, sizeof attr);
}

int place_tree(int fd, const char *path) {
  return (int)syscall(SYS_move_mount, fd, "", AT_FDCWD, path, VPR_MOVE_MOUNT_F_EMPTY_PATH);
}
