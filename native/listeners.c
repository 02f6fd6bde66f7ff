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

static int dump(int nl, int family, int protocol, struct bound_socket *out, int n, int max) {
  struct {
    struct nlmsghdr nlh;
    struct inet_diag_req_v2 req;
  } ask = {
      .nlh = {.nlmsg_len = sizeof ask, .nlmsg_type = SOCK_DIAG_BY_FAMILY, .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP},
      .req = {.sdiag_family = (__u8)family, .sdiag_protocol = (__u8)protocol, .idiag_states = 1U << (protocol == IPPROTO_TCP ? STATE_LISTEN : STATE_CLOSE)},
  };
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  if (sendto(nl, &ask, sizeof ask, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) return -1;
  /* on the stack: two threads of the addon may ask at once */
  char buf[16384] __attribute__((aligned(4)));
  for (;;) {
    ssize_t len = recv(nl, buf, sizeof buf, 0);
    if (len < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)len); h = NLMSG_NEXT(h, len)) {
      if (h->nlmsg_type == NLMSG_DONE) return n;
      if (h->nlmsg_type == NLMSG_ERROR) {
        const struct nlmsgerr *e = NLMSG_DATA(h);
        errno = -e->error;
        return -1;
      }
      const struct inet_diag_msg *m = NLMSG_DATA(h);
      uint16_t port = ntohs(m->id.idiag_sport);
      if (port == 0 || n >= max) continue;
      struct bound_socket *s = &out[n++];
      s->protocol = protocol;
      s->family = m->idiag_family;
      s->port = port;
      s->inode = m->idiag_inode;
      memcpy(s->address, m->id.idiag_src, sizeof s->address);
    }
  }
}

int bound_sockets(struct bound_socket *out, int max, int with_udp) {
  int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (nl < 0) return -1;
  int n = 0;
  static const int families[] = {AF_INET, AF_INET6};
  for (int p = 0; p < (with_udp ? 2 : 1) && n >= 0; p++)
    for (int f = 0; f < 2 && n >= 0; f++) n = dump(nl, families[f], p == 0 ? IPPROTO_TCP : IPPROTO_UDP, out, n, max);
  int saved = errno;
  close(nl);
  errno = saved;
  return n;
}
