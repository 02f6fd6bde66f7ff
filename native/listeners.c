/*
 * The listening sockets of the calling thread's network namespace, asked of the kernel
 * over sock_diag (sock_diag(7)). /proc/net/tcp would say the same, but to print it the
 * kernel walks its whole TCP connection table, which all namespaces share and which is
 * sized by the machine's memory: 23 ms a read on a 2-core VM, for an empty namespace.
 * Asked for listeners alone, sock_diag walks only the listening table. The addon's alone
 * (ROOTLESS_ADDON): the leak watch after each test file, and the earlier networks a
 * reused worker keeps reachable.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sandbox.h"

/* The kernel's TCP states (include/net/tcp_states.h): LISTEN, and CLOSE for a bound UDP socket. */
#define STATE_CLOSE 7
#define STATE_LISTEN 10

/* Where the dump's sockets go: `out`, up to `max`, `n` so far. */
struct into {
  struct bound_socket *out;
  int n, max, protocol;
};

static void add(const void *message, void *ctx) {
  const struct inet_diag_msg *m = message;
  struct into *into = ctx;
  uint16_t port = ntohs(m->id.idiag_sport);
  if (port == 0 || into->n >= into->max) return;
  struct bound_socket *s = &into->out[into->n++];
  s->protocol = into->protocol;
  s->family = m->idiag_family;
  s->port = port;
  s->inode = m->idiag_inode;
  memcpy(s->address, m->id.idiag_src, sizeof s->address);
}

int bound_sockets(struct bound_socket *out, int max, int with_udp) {
  int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (nl < 0) return -1;
  struct into into = {.out = out, .max = max};
  static const int families[] = {AF_INET, AF_INET6};
  int rc = 0;
  for (int p = 0; p < (with_udp ? 2 : 1) && rc == 0; p++)
    for (int f = 0; f < 2 && rc == 0; f++) {
      into.protocol = p == 0 ? IPPROTO_TCP : IPPROTO_UDP;
      rc = sock_diag_dump(nl, families[f], into.protocol, 1U << (p == 0 ? STATE_LISTEN : STATE_CLOSE), add, &into);
    }
  int saved = errno;
  close(nl);
  errno = saved;
  return rc < 0 ? -1 : into.n;
}
