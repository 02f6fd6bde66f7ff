/*
 * One sock_diag(7) dump: the kernel's sockets of one family and protocol in the states
 * asked, each handed to a callback. Asked for listeners alone, the kernel walks only its
 * listening table (about 0.1 ms), where /proc/net/tcp walks every bucket of the
 * established one too, sized by the machine's memory (10-30 ms a read, whatever few
 * sockets a namespace holds). Shared by the addon's leak watch and earlier networks
 * (listeners.c) and the forwarder's "is this host port served?" (served.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <sys/socket.h>

#include "sandbox.h"

int sock_diag_dump(int nl, int family, int protocol, uint32_t states, sock_diag_each *each, void *ctx) {
  struct {
    struct nlmsghdr nlh;
    struct inet_diag_req_v2 req;
  } ask = {
      .nlh = {.nlmsg_len = sizeof ask, .nlmsg_type = SOCK_DIAG_BY_FAMILY, .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP},
      .req = {.sdiag_family = (__u8)family, .sdiag_protocol = (__u8)protocol, .idiag_states = states},
  };
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  if (sendto(nl, &ask, sizeof ask, 0, (struct sockaddr *)&kernel, sizeof kernel) != (ssize_t)sizeof ask) return -1;
  /* on the stack: two threads of the addon may ask at once */
  char buf[16384] __attribute__((aligned(4)));
  for (;;) {
    ssize_t len = recv(nl, buf, sizeof buf, 0);
    if (len < 0 && errno == EINTR) continue;
    if (len <= 0) {
      if (len == 0) errno = EPROTO;
      return -1;
    }
    for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)len); h = NLMSG_NEXT(h, len)) {
      if (h->nlmsg_type == NLMSG_DONE) return 0;
      if (h->nlmsg_type == NLMSG_ERROR) {
        const struct nlmsgerr *e = NLMSG_DATA(h);
        errno = e->error ? -e->error : EPROTO;
        return -1;
      }
      if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg))) {
        errno = EPROTO;
        return -1;
      }
      each(NLMSG_DATA(h), ctx);
    }
  }
}
