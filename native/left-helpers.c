/*
 * With egress, a reused worker's reset gives the next file a new network and a new
 * helper (slirp4netns) for its way out. The old network's helper is the way out of the
 * connections the old file opened, and under isolate: false some outlive it: node:http's
 * agent keeps its connections alive (Node 19 and later) and undici keeps a pool, both
 * module state the next file reuses, as under forks. Ending the helper at the reset left
 * such a connection leading nowhere: the next request on it hung until its timeout.
 *
 * So a reset retires the old helper instead, and each reset after it ends those whose
 * network holds no TCP connection to anywhere but loopback any more (an agent drops an
 * idle connection after a few seconds). A network where only listeners are left needs no
 * helper: earlier-networks.c reaches those over loopback. What is still retired when the
 * worker ends goes with the sandbox. pasta needs none of this: it ends with its network.
 *
 * Each network is asked through a sock_diag socket made in it while it was the worker's
 * own: the socket keeps answering for that network after the thread has left it.
 */
#define _GNU_SOURCE
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sandbox.h"

/* Past this many, the oldest goes at once, as before (bounded: one process each). */
#define MAX_LEFT 32

struct left_helper {
  int exit_fd; /* closing it ends the helper */
  int diag;    /* a sock_diag socket of its network, or -1 */
};

static struct left_helper left[MAX_LEFT];
static int n_left;

/* A connection's states: all but listening and those that need no peer any more. */
#define CONNECTED                                                                                                                                    \
  ((1u << TCP_ESTABLISHED) | (1u << TCP_SYN_SENT) | (1u << TCP_SYN_RECV) | (1u << TCP_FIN_WAIT1) | (1u << TCP_FIN_WAIT2) | (1u << TCP_CLOSE_WAIT) | \
   (1u << TCP_LAST_ACK) | (1u << TCP_CLOSING))

int network_diag_socket(void) {
  return socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
}

static void count_outward(const void *message, void *ctx) {
  const struct inet_diag_msg *m = message;
  const uint8_t *dst = (const uint8_t *)m->id.idiag_dst;
  static const uint8_t v6_loopback[16] = {[15] = 1};
  static const uint8_t v4_mapped[12] = {[10] = 0xff, [11] = 0xff};
  int loopback = m->idiag_family == AF_INET ? dst[0] == 127
                                            : memcmp(dst, v6_loopback, 16) == 0 || (memcmp(dst, v4_mapped, 12) == 0 && dst[12] == 127);
  if (!loopback) ++*(int *)ctx;
}

/* Whether a connection in the network of `diag` may still need its helper. Where the kernel
   can't say, no: the helper goes, as it did before there was a choice. */
static int needed(int diag) {
  int outward = 0;
  if (diag < 0) return 0;
  if (sock_diag_dump(diag, AF_INET, IPPROTO_TCP, CONNECTED, count_outward, &outward) < 0) return 0;
  if (sock_diag_dump(diag, AF_INET6, IPPROTO_TCP, CONNECTED, count_outward, &outward) < 0) return outward > 0;
  return outward > 0;
}

static void end_helper(struct left_helper *h) {
  close(h->exit_fd);
  if (h->diag >= 0) close(h->diag);
}

void retire_helper(int exit_fd, int diag) {
  if (n_left == MAX_LEFT) {
    end_helper(&left[0]);
    memmove(left, left + 1, sizeof left[0] * (MAX_LEFT - 1));
    n_left--;
  }
  left[n_left++] = (struct left_helper){exit_fd, diag};
}

void end_unneeded_helpers(void) {
  int kept = 0;
  for (int i = 0; i < n_left; i++) {
    if (needed(left[i].diag)) left[kept++] = left[i];
    else end_helper(&left[i]);
  }
  n_left = kept;
}
