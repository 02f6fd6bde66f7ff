/*
 * The forwarder: how a sandbox reaches chosen ports of the host's loopback (a database
 * the CI job runs, the test runner's own servers) while its network stays its own.
 *
 * The launcher forks it before it makes the sandbox's network namespace, so it stays in
 * the host's (relay.c). Once the sandbox's loopback is up, the launcher listens there on
 * each forwarded port (127.0.0.1 and ::1) and hands the listening sockets to the
 * forwarder over a Unix socket (SCM_RIGHTS; the protocol is in forwarder.h). The
 * forwarder accepts on them -- a socket keeps the network namespace it was made in --
 * connects to the host's 127.0.0.1 (or ::1) on the mapped port, and moves the bytes both
 * ways. A reused worker's reset sends listeners made in its fresh network namespace the
 * same way (addon.c), after telling it to drop the old.
 *
 * A host port nothing listens on gets no listener inside, so a connect to it is refused
 * there at once (ECONNREFUSED, as on the host) instead of being accepted and reset. Only
 * the forwarder, in the host's network, can tell: it is asked ('Q') for every port first.
 *
 * This file is the sandbox's side: the launcher's and the addon's.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "forwarder.h"

/* A listening TCP socket on the loopback of `family` at `port`, in this network namespace. */
static int loopback_listener(int family, uint16_t port) {
  int s = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (s < 0) return -1;
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  int rc;
  if (family == AF_INET) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    rc = bind(s, (struct sockaddr *)&a, sizeof a);
  } else {
    setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    rc = bind(s, (struct sockaddr *)&a, sizeof a);
  }
  if (rc < 0 || listen(s, SOMAXCONN) < 0) {
    int saved = errno;
    close(s);
    errno = saved;
    return -1;
  }
  return s;
}

static int send_control(int ctl, uint8_t op, uint16_t host_port, int fd) {
  struct control message = {.op = op, .zero = 0, .host_port = host_port};
  return send_with_fd(ctl, &message, sizeof message, fd) < 0 ? -1 : 0;
}

/* The forwarder's one-byte answer: 1 ('1'), 0, or -1 when it can't answer. */
static int read_answer(int ctl) {
  char answer;
  ssize_t n;
  do n = recv(ctl, &answer, 1, 0); while (n < 0 && errno == EINTR);
  if (n != 1) {
    if (n == 0) errno = EPIPE;
    return -1;
  }
  return answer == '1';
}

/*
 * The forwarder's forwards now: the plan's, and those the host added since this sandbox
 * started (a port registered with forwardHostPort() during the run). Their number, or -1.
 */
static int ask_forwards(int ctl, struct forward *now) {
  if (send_control(ctl, 'P', 0, -1) < 0) return -1;
  char message[1 + MAX_ALLOWED * sizeof(struct forward)];
  ssize_t n;
  /* a one-byte answer is a stale one of an earlier question (a test's, sent late): passed by */
  do n = recv(ctl, message, sizeof message, 0); while ((n < 0 && errno == EINTR) || (n == 1 && message[0] != 'p'));
  if (n < 1 || message[0] != 'p' || (size_t)(n - 1) % sizeof(struct forward) != 0) {
    errno = n == 0 ? EPIPE : EPROTO;
    return -1;
  }
  memcpy(now, message + 1, (size_t)(n - 1));
  return (int)((size_t)(n - 1) / sizeof(struct forward));
}

int send_forwards(int ctl, const struct forward *forwards, int n, int replace) {
  /* answers nobody read (a test that got hold of the socket asked something): they would
     be taken for ours */
  char stale;
  while (recv(ctl, &stale, 1, MSG_DONTWAIT) == 1) {}
  struct forward now[MAX_ALLOWED];
  if (replace) {
    if (send_control(ctl, 'R', 0, -1) < 0) return -1;
    /* a reset forwards what the forwarder has now, the host's later additions included */
    if ((n = ask_forwards(ctl, now)) < 0) return -1;
    forwards = now;
  }
  /* every question first: the forwarder answers them all from one read of the host's
     socket tables, which costs more than the rest of a forward's setup */
  int alive[MAX_ALLOWED];
  for (int i = 0; i < n; i++)
    if (send_control(ctl, 'Q', forwards[i].host, -1) < 0) return -1;
  for (int i = 0; i < n; i++)
    if ((alive[i] = read_answer(ctl)) < 0) return -1;
  int sent = 0;
  for (int i = 0; i < n; i++) {
    if (!alive[i]) continue;
    /* both loopbacks: a client may resolve localhost to either */
    int families[] = {AF_INET, AF_INET6};
    for (int f = 0; f < 2; f++) {
      int s = loopback_listener(families[f], forwards[i].inside);
      /* a sandbox without IPv6 still gets its IPv4 loopback forwarded */
      if (s < 0 && families[f] == AF_INET6 && (errno == EAFNOSUPPORT || errno == EADDRNOTAVAIL)) continue;
      if (s < 0) return -1;
      int rc = send_control(ctl, 'L', forwards[i].host, s);
      int saved = errno;
      close(s);
      errno = saved;
      if (rc < 0) return -1;
      sent++;
    }
  }
  /* each listener taken before we go on: a connect made next must find it in place */
  for (int i = 0; i < sent; i++) {
    int taken = read_answer(ctl);
    if (taken < 0) return -1;
    if (!taken) {
      errno = EPROTO;
      return -1;
    }
  }
  return 0;
}

/*
 * Direct connects are best effort: where the filter can't be installed, the relay serves
 * every connection. A range's ports go straight to the host only where the forwarder can
 * tell this network's own listeners (a test's server on a port of the range keeps its
 * connects): without the sock_diag socket for that, the range's served ports get
 * listeners, as on the relay path.
 */
int prepare_direct(struct direct *d, int ranges) {
  d->diag = -1;
  if ((d->listener = install_connect_filter()) < 0) return -1;
  if (ranges && (d->diag = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG)) < 0) d->diag = -1;
  return 0;
}

void send_direct(int ctl, struct direct *d) {
  /* 'N' first: the forwarder takes it only before the seccomp listener */
  if (d->diag >= 0) send_control(ctl, 'N', 0, d->diag), close(d->diag);
  send_control(ctl, 'S', 0, d->listener);
  close(d->listener);
}
