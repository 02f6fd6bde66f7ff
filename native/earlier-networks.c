/*
 * isolate: false keeps a worker's module state between test files, and a module's
 * listening sockets are part of it: a helper that starts a server at import, imported by
 * three files, is started once, in the first file's network namespace. A reset gives
 * each later file a fresh network namespace -- so that a port an earlier file left taken
 * (a server it never closed) is free again -- and there the module's server would be out
 * of reach. So the addon remembers each network namespace a reset leaves in which
 * something still listens, and a TCP connect(2) of the worker to 127.0.0.1 or ::1 on a
 * port nobody listens on in its own network, but that was listened on in an earlier one,
 * is made in the newest such earlier network instead: the module's server answers, and
 * the port stays free for the next file to listen on itself (then connects go to its own
 * server, as the kernel would send them).
 *
 * The connects are the worker's own (its main thread, and threads it starts later): a
 * seccomp filter on the main thread turns each connect(2) to an IPv4 or IPv6 address
 * into a notification (connect.c's filter), answered on a thread of the addon's, which
 * makes its socket in the earlier network and puts it in the caller's place under the
 * same fd number (SECCOMP_IOCTL_NOTIF_ADDFD) -- what the forwarder does for host ports.
 * The filter is installed only once a reset has left a network with a listener in it: a
 * suite whose files close their servers pays nothing. Child processes the worker starts
 * afterwards inherit the filter; their connects go on untouched.
 *
 * Runs in the addon alone (addon.c); the forwarder's own direct connects are then left
 * to its relay, since a process has one seccomp listener at most (ops.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "forwarder.h"
#include "sandbox.h"

/* no newer glibc than Node 20 asks for: as in addon.c */
#if defined(__GLIBC__) && defined(__x86_64__)
__asm__(".symver pthread_create, pthread_create@GLIBC_2.2.5");
#elif defined(__GLIBC__) && defined(__aarch64__)
__asm__(".symver pthread_create, pthread_create@GLIBC_2.17");
#endif

#if defined(SECCOMP_IOCTL_NOTIF_ADDFD) && defined(SECCOMP_ADDFD_FLAG_SETFD)

/* Networks kept: a worker that leaves listeners behind in every file keeps the newest. */
#define MAX_EARLIER 64
#define MAX_PORTS 64

struct earlier {
  int ns; /* an fd of the network namespace */
  int n_ports;
  uint16_t ports[MAX_PORTS];
};

static struct earlier earlier[MAX_EARLIER];
static int n_earlier;
static pthread_mutex_t earlier_lock = PTHREAD_MUTEX_INITIALIZER;
static int notify_fd = -1;

/* The TCP ports something listens on in this thread's network namespace. */
static int listening_ports(uint16_t *ports, int max) {
  /* on the stack: the reset (Node's main thread) and the connect thread both ask */
  struct bound_socket found[512];
  int n = bound_sockets(found, 512, 0), count = 0;
  for (int i = 0; i < n; i++) {
    int seen = 0;
    for (int j = 0; j < count && !seen; j++) seen = ports[j] == found[i].port;
    if (!seen && count < max) ports[count++] = found[i].port;
  }
  return count;
}

void remember_network(void) {
  struct earlier e = {.ns = -1};
  e.n_ports = listening_ports(e.ports, MAX_PORTS);
  if (e.n_ports == 0) return;
  if ((e.ns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)) < 0) return;
  pthread_mutex_lock(&earlier_lock);
  if (n_earlier == MAX_EARLIER) {
    close(earlier[0].ns);
    memmove(earlier, earlier + 1, sizeof earlier[0] * (MAX_EARLIER - 1));
    n_earlier--;
  }
  earlier[n_earlier++] = e;
  pthread_mutex_unlock(&earlier_lock);
}

/* A dup of the newest earlier network with a listener on `port`, or -1. */
static int earlier_network_of(uint16_t port) {
  int ns = -1;
  pthread_mutex_lock(&earlier_lock);
  for (int i = n_earlier - 1; i >= 0 && ns < 0; i--)
    for (int j = 0; j < earlier[i].n_ports && ns < 0; j++)
      if (earlier[i].ports[j] == port) ns = fcntl(earlier[i].ns, F_DUPFD_CLOEXEC, 0);
  pthread_mutex_unlock(&earlier_lock);
  return ns;
}

/* Whether anything listens on `port` in the network of socket `fd` (this thread joins it). */
static int listened_on_in_network_of(int fd, uint16_t port) {
  int ns = ioctl(fd, SIOCGSKNS);
  if (ns < 0) return 1; /* can't tell: leave the connect to the kernel */
  int joined = setns(ns, CLONE_NEWNET) == 0;
  close(ns);
  if (!joined) return 1;
  uint16_t ports[512];
  int n = listening_ports(ports, 512);
  for (int i = 0; i < n; i++)
    if (ports[i] == port) return 1;
  return 0;
}

enum verdict { CONTINUE, ANSWERED };

/* One connect(2) of a thread of ours: `fd` is its socket, in our own fd table. */
static enum verdict redirect(const struct seccomp_notif *req, const struct sockaddr_storage *to, socklen_t to_len, uint16_t port) {
  int fd = (int)req->data.args[0];
  int type = 0, protocol = 0, family = 0;
  socklen_t len = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM) return CONTINUE;
  len = sizeof protocol;
  if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &protocol, &len) < 0 || protocol != IPPROTO_TCP) return CONTINUE;
  len = sizeof family;
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &family, &len) < 0 || family != to->ss_family) return CONTINUE;
  /* a socket bound to a port of its own, or already under way, is the kernel's */
  struct sockaddr_storage local;
  len = sizeof local;
  if (getsockname(fd, (struct sockaddr *)&local, &len) < 0 || sockaddr_port(&local) != 0) return CONTINUE;
  if (listened_on_in_network_of(fd, port)) return CONTINUE;
  int ns = earlier_network_of(port);
  if (ns < 0) return CONTINUE;
  int entered = setns(ns, CLONE_NEWNET) == 0;
  close(ns);
  if (!entered) return CONTINUE;
  int status = fcntl(fd, F_GETFL), descriptor = fcntl(fd, F_GETFD);
  if (status < 0 || descriptor < 0) return CONTINUE;
  int flags = (status & O_NONBLOCK) | ((descriptor & FD_CLOEXEC) ? O_CLOEXEC : 0);
  return connect_in_place(notify_fd, req, fd, family, to, to_len, fd, flags) ? ANSWERED : CONTINUE;
}

/* A thread of this process: the fd and the address it names are ours to read. */
static int is_ours(pid_t tid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/self/task/%d", (int)tid);
  return access(path, F_OK) == 0;
}

static void *answer_connects(void *arg) {
  int ready = (int)(intptr_t)arg;
  /* the filter is the main thread's; this thread, made before it, isn't under it */
  if (read_retry(ready, &notify_fd, sizeof notify_fd) != sizeof notify_fd) return NULL;
  close(ready);
  for (;;) {
    struct seccomp_notif req;
    memset(&req, 0, sizeof req);
    if (ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_RECV, &req) < 0) {
      if (errno == EINTR || errno == ENOENT) continue;
      return NULL;
    }
    enum verdict verdict = CONTINUE;
    socklen_t to_len = (socklen_t)req.data.args[2];
    struct sockaddr_storage to;
    memset(&to, 0, sizeof to);
    struct iovec local = {.iov_base = &to, .iov_len = to_len};
    struct iovec remote = {.iov_base = (void *)(uintptr_t)req.data.args[1], .iov_len = to_len};
    int v6_loopback;
    uint16_t port;
    /* the address first, read as any process's would be: a bad pointer is EFAULT, not a crash */
    if (to_len <= sizeof to && is_ours(req.pid) &&
        syscall(SYS_process_vm_readv, getpid(), &local, 1UL, &remote, 1UL, 0UL) == (long)to_len &&
        (port = connect_target(&to, to_len, &v6_loopback)) != 0)
      verdict = redirect(&req, &to, to_len, port);
    if (verdict == CONTINUE) {
      struct seccomp_notif_resp resp = {.id = req.id, .flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE};
      ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_SEND, &resp);
    }
  }
}

/* The 'synchronous' wake-ups of Linux 6.6 (SECCOMP_IOCTL_NOTIF_SET_FLAGS), as in connect.c. */
#define SET_FLAGS_IOCTL SECCOMP_IOW(4, __u64)
#define SYNC_WAKE_UP 1UL

int reach_earlier_networks(void) {
  static int started;
  if (started || n_earlier == 0) return 0;
  started = 1;
  int ready[2];
  if (pipe2(ready, O_CLOEXEC) < 0) return -1;
  sigset_t all, old;
  sigfillset(&all);
  /* the calling thread's mask (glibc's sigprocmask is pthread_sigmask), which the new one
     inherits; it runs for the worker's life, never joined */
  sigprocmask(SIG_SETMASK, &all, &old);
  pthread_t thread;
  int rc = pthread_create(&thread, NULL, answer_connects, (void *)(intptr_t)ready[0]);
  sigprocmask(SIG_SETMASK, &old, NULL);
  if (rc != 0) {
    close(ready[0]), close(ready[1]);
    errno = rc;
    return -1;
  }
  /* on the calling thread, Node's main one, where the tests' sockets connect */
  int fd = install_connect_filter();
  if (fd >= 0) ioctl(fd, SET_FLAGS_IOCTL, SYNC_WAKE_UP);
  /* -1 tells the thread to end: this kernel can't, or a listener is there already */
  write_all(ready[1], &fd, sizeof fd);
  close(ready[1]);
  return fd < 0 ? -1 : 0;
}

#else

void remember_network(void) {}

int reach_earlier_networks(void) {
  errno = ENOSYS;
  return -1;
}

#endif
