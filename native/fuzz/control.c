/*
 * Fuzz target: the forwarder's control protocol (../control.c, ../forwarder.h), which a
 * sandboxed process can speak once it holds the control fd. An input is a list of
 * messages, each   HEADER  KIND...  BYTES...   where HEADER's low 4 bits are how many
 * bytes the message has (0..15) and its high bits how many fds come with it (0..3), one
 * KIND byte per fd says what that fd is (below), then the message's bytes.
 *
 * Each message is sent on a SOCK_SEQPACKET pair and handled by control_message() as the
 * forwarder's loop does. What must hold, whatever comes (issue 26's faults 2-5):
 *   - it never reports the socket gone while the sender is there (an empty message did);
 *   - every message is taken off the socket: nothing waits to make epoll spin;
 *   - the forwarder holds no fd but the listeners it took -- each a listening TCP socket
 *     of the sandbox's network on a port pair of the plan, at most two per forward -- and
 *     after 'R' none at all (short, long and two-fd messages leaked theirs).
 *
 * The sandbox's listeners are made in a network namespace of our own (a user namespace
 * makes that possible unprivileged); where none can be made, those kinds are skipped.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../forwarder.h"
#include "fuzz.h"

enum { PIPE, UDP, UNBOUND, HOST_LISTENER, SANDBOX_V4, SANDBOX_V6, SANDBOX_OTHER_PORT, CONTROL_ITSELF, N_KINDS };

static const struct forward plan[] = {{7001, 1}, {7002, 2}};
#define N_PLAN (int)(sizeof plan / sizeof plan[0])
/* a range: 'N' is then asked for, and must take a sock_diag socket of the sandbox alone */
static const struct port_range plan_ranges[] = {{7100, 7199}};
static int ctl[2] = {-1, -1};     /* [0] the forwarder's end, [1] the sender's */
static int sandbox[3] = {-1, -1, -1}; /* listeners of the sandbox's network: 7001 v4, v6, 7009 v4 */
static int baseline;              /* fds open between inputs */

static int listener(int family, uint16_t port) {
  int s = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return -1;
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_storage a;
  memset(&a, 0, sizeof a);
  socklen_t len;
  if (family == AF_INET) {
    struct sockaddr_in *in = (struct sockaddr_in *)&a;
    *in = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    len = sizeof *in;
  } else {
    setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a;
    *in6 = (struct sockaddr_in6){.sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    len = sizeof *in6;
  }
  if (bind(s, (struct sockaddr *)&a, len) < 0 || listen(s, 4) < 0) {
    close(s);
    return -1;
  }
  return s;
}

static int count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  CHECK(d != NULL, "can't list /proc/self/fd");
  int n = 0;
  for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
  closedir(d);
  return n - 1; /* the directory's own */
}

/* What each open fd is, for the report of a failed count. */
static void list_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  for (struct dirent *e; d && (e = readdir(d));) {
    char path[300], target[256];
    snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
    ssize_t n = readlink(path, target, sizeof target - 1);
    if (n > 0) target[n] = 0, fprintf(stderr, "  fd %s -> %s\n", e->d_name, target);
  }
  if (d) closedir(d);
}

/* Checks that `expected` fds are open; the report of a failure lists every fd. */
static void check_fds(int expected, const char *what) {
  int n = count_fds();
  if (n == expected) return;
  fprintf(stderr, "fuzz check failed: %d fds open, %d expected (%s)\n", n, expected, what);
  list_fds();
  abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  /* the sandbox's network: a namespace of our own, lo up; then the "host's", another */
  if (unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0 && loopback_up() == 0) {
    sandbox[0] = listener(AF_INET, plan[0].inside);
    sandbox[1] = listener(AF_INET6, plan[0].inside);
    sandbox[2] = listener(AF_INET, 7009);
    if (unshare(CLONE_NEWNET) < 0) {
      for (int i = 0; i < 3; i++) close(sandbox[i]), sandbox[i] = -1;
    }
  }
  CHECK(relay_init() >= 0, "no epoll");
  control_init(plan, N_PLAN, plan_ranges, 1, -1);
  CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl) == 0, "no socket pair");
  return 0;
}

/* A fresh fd of `kind`, which the caller closes after sending; -1 when there is none. */
static int make_fd(int kind, int *pipe_other) {
  int p[2];
  switch (kind) {
  case PIPE:
    if (pipe2(p, O_CLOEXEC) < 0) return -1;
    *pipe_other = p[1];
    return p[0];
  case UDP: {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (s >= 0) bind(s, (struct sockaddr *)&a, sizeof a);
    return s;
  }
  case UNBOUND:
    return socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  case HOST_LISTENER:
    return listener(AF_INET, plan[1].inside);
  case SANDBOX_V4:
  case SANDBOX_V6:
  case SANDBOX_OTHER_PORT:
    return sandbox[kind - SANDBOX_V4] >= 0 ? dup(sandbox[kind - SANDBOX_V4]) : -1;
  default:
    return dup(ctl[1]);
  }
}

static void send_message(const uint8_t *bytes, size_t len, const int *fds, int n) {
  union { struct cmsghdr h; char buf[CMSG_SPACE(3 * sizeof(int))]; } control;
  struct iovec iov = {.iov_base = (void *)bytes, .iov_len = len};
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
  if (n > 0) {
    memset(&control, 0, sizeof control);
    m.msg_control = control.buf;
    m.msg_controllen = CMSG_SPACE(n * sizeof(int));
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(n * sizeof(int));
    memcpy(CMSG_DATA(c), fds, n * sizeof(int));
  }
  CHECK(sendmsg(ctl[1], &m, MSG_NOSIGNAL | MSG_DONTWAIT) == (ssize_t)len, "can't send: %s", strerror(errno));
}

static void drain_answers(void) {
  char answer[16];
  while (recv(ctl[1], answer, sizeof answer, MSG_DONTWAIT) > 0) {}
}

/* One message in, handled as the forwarder's loop would; then what must hold. */
static void exchange(const uint8_t *bytes, size_t len, const int *fds, int n) {
  send_message(bytes, len, fds, n);
  CHECK(control_message(ctl[0]) == 0, "the control socket was taken for gone");
  free_buried();
  drain_answers();
  char peek;
  CHECK(recv(ctl[0], &peek, 1, MSG_PEEK | MSG_DONTWAIT) < 0 && errno == EAGAIN, "a message was left on the socket");
}

static void drop_all(void) {
  const struct control reset = {.op = 'R'};
  exchange((const uint8_t *)&reset, sizeof reset, NULL, 0);
  CHECK(listener_count() == 0, "%d listeners after 'R'", listener_count());
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!baseline) baseline = count_fds();
  for (size_t at = 0; at < size;) {
    size_t len = data[at] & 15;
    int n = data[at] >> 4 & 3;
    at++;
    int fds[3], others[3], made = 0;
    for (int i = 0; i < n && at < size; i++, at++) {
      others[made] = -1;
      int fd = make_fd(data[at] % N_KINDS, &others[made]);
      if (fd >= 0) fds[made++] = fd;
      else if (others[made] >= 0) close(others[made]);
    }
    uint8_t bytes[15];
    if (len > size - at) len = size - at;
    memcpy(bytes, data + at, len);
    at += len;
    exchange(bytes, len, fds, made);
    for (int i = 0; i < made; i++) {
      close(fds[i]);
      if (others[i] >= 0) close(others[i]);
    }
    /* the forwarder holds what it took and nothing else: listeners, each a listening one */
    CHECK(listener_count() <= 2 * N_PLAN, "%d listeners", listener_count());
    check_fds(baseline + listener_count(), "the fds open between inputs and the listeners taken");
  }
  drop_all();
  check_fds(baseline, "after 'R': the fds open between inputs");
  return 0;
}
