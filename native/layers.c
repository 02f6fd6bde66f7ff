/*
 * The steps that make a sandbox's writable layers, and those that reset a sandbox in
 * place for the next test file of a reused worker (--reset, run by addon.c inside the
 * worker's own process). Helpers return -1 with errno set; steps die with their step.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sandbox.h"

ssize_t write_all(int fd, const void *buf, size_t len) {
  const char *p = buf;
  size_t done = 0;
  while (done < len) {
    ssize_t n = write(fd, p + done, len - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    done += (size_t)n;
  }
  return (ssize_t)done;
}

ssize_t read_retry(int fd, void *buf, size_t len) {
  ssize_t n;
  do n = read(fd, buf, len); while (n < 0 && errno == EINTR);
  return n;
}

/* One message's control buffer for a single fd; the union aligns it for cmsghdr. */
union one_fd {
  struct cmsghdr h;
  char buf[CMSG_SPACE(sizeof(int))];
};

ssize_t send_with_fd(int sock, const void *buf, size_t len, int fd) {
  struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
  union one_fd control;
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
  if (fd >= 0) {
    memset(&control, 0, sizeof control);
    m.msg_control = control.buf;
    m.msg_controllen = sizeof control.buf;
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  ssize_t n;
  do n = sendmsg(sock, &m, MSG_NOSIGNAL); while (n < 0 && errno == EINTR);
  return n;
}

ssize_t recv_with_fd(int sock, void *buf, size_t len, int *fd) {
  struct iovec iov = {.iov_base = buf, .iov_len = len};
  union one_fd control;
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control.buf};
  ssize_t n;
  do n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC); while (n < 0 && errno == EINTR);
  *fd = -1;
  struct cmsghdr *c = n > 0 ? CMSG_FIRSTHDR(&m) : NULL;
  if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && c->cmsg_len == CMSG_LEN(sizeof(int)))
    memcpy(fd, CMSG_DATA(c), sizeof *fd);
  return n;
}

int write_file(const char *path, const char *content) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = write_all(fd, content, strlen(content));
  int saved = errno;
  close(fd);
  errno = saved;
  return n < 0 ? -1 : 0;
}

/* ---- mounts ---- */

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

/* tmpfs mount options: world-writable and sticky like /tmp, sized as the plan says */
void tmpfs_options(const struct layers *l, char *buf, size_t len) {
  if (l->tmpfs_size) snprintf(buf, len, "mode=1777,size=%s", l->tmpfs_size);
  else snprintf(buf, len, "mode=1777");
}

/*
 * Puts an empty writable tmpfs on each target, over its locked read-only floor, and binds
 * the kept paths again from the floor's binds (recursively: locked mounts below them stay
 * locked). Every kept path is opened before any upper tmpfs, so each resolves as the
 * floor shows it; one a later tmpfs of the plan hides there (a --keep listed with the
 * wrong --tmpfs) is hidden on the upper layer too: not bound at all.
 */
void mount_writable_layers(const struct layers *l, const char *opts) {
  int keep_fd[MAX_LIST], keep_dir[MAX_LIST];
  for (int k = 0; k < l->n_keep; k++) {
    /* a directory or not, told by O_DIRECTORY rather than fstat: the addon runs this too,
       and glibc has fstat as a symbol only since 2.33 (see addon.c) */
    keep_fd[k] = open(l->keep[k], O_PATH | O_CLOEXEC | O_DIRECTORY);
    keep_dir[k] = keep_fd[k] >= 0;
    if (keep_fd[k] < 0 && errno == ENOTDIR) keep_fd[k] = open(l->keep[k], O_PATH | O_CLOEXEC);
    if (keep_fd[k] < 0 && errno != ENOENT) die_step(STEP_KEEP, "can't open %s on the read-only floor", l->keep[k]);
  }
  for (int t = 0; t < l->n_tmpfs; t++) {
    const struct tmpfs_mount *m = &l->tmpfs[t];
    if (mount("tmpfs", m->path, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0)
      die_step(STEP_TMPFS, "can't mount a tmpfs on %s", m->path);
    for (int k = m->first_keep; k < m->first_keep + m->n_keep; k++) {
      if (keep_fd[k] < 0) continue;
      if (make_mountpoint(l->keep[k], keep_dir[k]) < 0) die_step(STEP_KEEP, "can't create %s", l->keep[k]);
      if (bind_fd(keep_fd[k], l->keep[k]) < 0) die_step(STEP_KEEP, "can't bind %s back", l->keep[k]);
    }
  }
  for (int k = 0; k < l->n_keep; k++) if (keep_fd[k] >= 0) close(keep_fd[k]);
}

/* ---- resetting a reused worker's sandbox in place (--reset) ---- */

/* Most mounts a test can stack on one path before --reset gives up on it. */
#define MAX_STACKED 64

/*
 * Unmounts whatever covers `path` down to the first locked mount -- for a tmpfs target its
 * read-only floor, for /etc/hosts the private copy: everything the launcher mounted is
 * locked, so the kernel refuses (EINVAL) to go further, and the host's directory stays
 * covered whatever was stacked on it or taken away.
 */
static void uncover(const char *path) {
  for (int n = 0; n <= MAX_STACKED; n++) {
    if (umount2(path, MNT_DETACH) == 0) continue;
    if (errno == EINVAL) return;
    die_step(STEP_TMPFS, "can't unmount what covers %s", path);
  }
  errno = 0;
  die_step(STEP_TMPFS, "more than %d mounts stacked on %s", MAX_STACKED, path);
}

/* ---- network ---- */

/* A new network namespace starts with lo down: 127.0.0.1 would be unreachable. */
int loopback_up(void) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return -1;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strcpy(ifr.ifr_name, "lo");
  int rc = ioctl(s, SIOCGIFFLAGS, &ifr);
  if (rc == 0) {
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    rc = ioctl(s, SIOCSIFFLAGS, &ifr);
  }
  int saved = errno;
  close(s);
  errno = saved;
  return rc;
}

/* How long the processes --kill-others stops get to be gone, polled every KILL_POLL_MS. */
#define KILL_WAIT_MS 2000
#define KILL_POLL_MS 2

/* A process that has exited and waits to be reaped: it holds nothing any more. */
static int is_zombie(long pid) {
  char path[64], stat[256];
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 1; /* gone already */
  ssize_t n = read_retry(fd, stat, sizeof stat - 1);
  close(fd);
  if (n <= 0) return 1;
  stat[n] = 0;
  /* "pid (comm) S ...": the state follows the last ')', comm may hold anything */
  char *close_paren = strrchr(stat, ')');
  return close_paren && close_paren[1] == ' ' && (close_paren[2] == 'Z' || close_paren[2] == 'X');
}

/*
 * SIGKILLs every process of the sandbox's pid namespace but its init (pid 1) and the
 * caller, and waits until each is gone or a zombie: what an earlier test file left
 * running -- a server, a daemon it double-forked -- must not outlive the file. The
 * caller is the sandboxed worker, the child of that init, and /proc is the namespace's
 * own: it lists nothing else. Their orphans go to init, which reaps them.
 */
static void kill_others(void) {
  pid_t self = getpid();
  errno = 0;
  if (getppid() != 1) die_step(STEP_PID_NAMESPACE, "--kill-others needs the worker to run under the init of the sandbox's own pid namespace");
  for (int waited = 0;; waited += KILL_POLL_MS) {
    DIR *dir = opendir("/proc");
    if (!dir) die_step(STEP_PID_NAMESPACE, "can't list /proc");
    int alive = 0;
    for (struct dirent *e; (e = readdir(dir));) {
      char *end;
      long pid = strtol(e->d_name, &end, 10);
      if (*end || pid <= 1 || pid == self || is_zombie(pid)) continue;
      alive++;
      if (kill((pid_t)pid, SIGKILL) < 0 && errno != ESRCH) {
        closedir(dir);
        die_step(STEP_PID_NAMESPACE, "can't stop process %ld, which an earlier test file left running", pid);
      }
    }
    closedir(dir);
    if (alive == 0) return;
    if (waited >= KILL_WAIT_MS) {
      errno = 0;
      die_step(STEP_PID_NAMESPACE, "%d processes an earlier test file left running are still there %d ms after SIGKILL", alive, KILL_WAIT_MS);
    }
    nanosleep(&(struct timespec){.tv_nsec = KILL_POLL_MS * 1000000L}, NULL);
  }
}

/* The host's user namespace maps every id to itself; one nested in it can't. */
static int in_initial_user_namespace(void) {
  char map[128];
  int fd = open("/proc/self/uid_map", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 1; /* can't tell: assume the worst */
  ssize_t n = read_retry(fd, map, sizeof map - 1);
  close(fd);
  if (n <= 0) return 1;
  map[n] = 0;
  unsigned long inside, outside, count;
  return sscanf(map, "%lu %lu %lu", &inside, &outside, &count) == 3 && inside == 0 && outside == 0 && count == 4294967295UL;
}

/*
 * --reset: run in a reused worker (isolate: false; the Jest runner) before each test file
 * after the first, in its own process, as root of its namespaces. Gives the sandbox back
 * what a new one starts with: no process an earlier file left, no mount it made, each
 * tmpfs target's writable layer replaced by an empty one with the kept paths bound again
 * (whatever a test stacked on it or took away), nothing stacked on /etc/hosts, the
 * hostname, and a fresh network namespace with lo up. The worker rewrites /etc/hosts.
 *
 * The network namespace is the calling thread's: in Node, the main thread, where every
 * socket of the test's code is made (libuv's pool threads resolve names and touch files,
 * which the network namespace doesn't change).
 */
/*
 * Puts the calling thread into a fresh network namespace with lo up: `*ready`, when it is
 * one made ahead (>= 0), costs only a setns(2); it is used up either way.
 */
static void enter_fresh_network(int *ready) {
  int made = ready ? *ready : -1;
  if (ready) *ready = -1;
  if (made >= 0) {
    int entered = setns(made, CLONE_NEWNET) == 0;
    close(made);
    if (entered) return;
  }
  if (unshare(CLONE_NEWNET) < 0) die_step(STEP_UNSHARE, "can't create a fresh network namespace");
  if (loopback_up() < 0) die_step(STEP_LOOPBACK, "can't bring up lo in the fresh network namespace");
}

void reset_sandbox(const struct plan *p, int *ready_network) {
  /* never on the host, where it would unmount and mount over the host's own directories */
  if (in_initial_user_namespace()) {
    errno = 0;
    die_step(STEP_USAGE, "--reset runs only inside a sandbox, and this process is in the host's user namespace");
  }
  if (p->kill_others) kill_others();
  /* what a test mounted, as the caller listed it: deepest first */
  for (int i = 0; i < p->n_unmount; i++)
    if (umount2(p->unmount[i], MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
      die_step(STEP_TMPFS, "can't unmount %s, which an earlier test file mounted", p->unmount[i]);
  for (int t = 0; t < p->layers.n_tmpfs; t++) uncover(p->layers.tmpfs[t].path);
  uncover("/etc/hosts");
  char opts[128];
  tmpfs_options(&p->layers, opts, sizeof opts);
  mount_writable_layers(&p->layers, opts);
  if (p->hostname && sethostname(p->hostname, strlen(p->hostname)) < 0)
    die_step(STEP_HOSTNAME, "can't set hostname %s", p->hostname);
  if (p->new_network) {
    enter_fresh_network(ready_network);
    /* the forwarder drops the listeners of the old namespace and takes the new ones */
    const char *env = getenv(FORWARDER_ENV);
    int ctl = env ? parse_fd(env) : -1;
    if (p->n_forwards > 0 && ctl >= 0 && send_forwards(ctl, p->forwards, p->n_forwards, 1) < 0)
      die_step(STEP_FORWARD, "can't listen on the forwarded ports in the fresh network namespace");
  }
}
