/*
 * The forwarder's control socket, its side (the protocol is in forwarder.h). Its other
 * end is the launcher's, and a reused worker's for its resets -- a process a test can
 * reach: so every message is checked for exactly what its op defines (size, op, number
 * and kind of fds), and anything else is dropped without exiting, leaking or spinning.
 * Whatever it is sent, the forwarder only ever connects to the host ports of its plan, and
 * of what the host added on its own channel, which no process of the sandbox holds.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "forwarder.h"

/* the plan's forwards, then those the host added since (host_message) */
static struct forward allowed[MAX_ALLOWED];
static int n_allowed;
/* the host's channel for more, and a line of it read in part */
static int host_fd = -1;
static char host_line[16];
static size_t host_line_len;
static int host_line_long;
static struct listener *listeners;
static int n_listeners;
int connects = -1;
/* connect.c's thread reads the listeners: this thread changes the list under the lock */
static pthread_mutex_t listeners_lock = PTHREAD_MUTEX_INITIALIZER;
/* the host's network namespace, where the forwarder lives: no listener of the sandbox's is in it */
static ino_t own_netns;
/* the plan's ranges, and ('N') the sandbox's network they are reached from by direct
   connects, with a sock_diag socket of it: the sandbox's own listeners there come first */
static struct port_range ranges[MAX_LIST];
static int n_ranges;
static int range_diag = -1;
static ino_t range_netns;

/* One forward more; an inside port the list has already keeps its first meaning, as in the plan. */
static void allow(struct forward f) {
  for (int i = 0; i < n_allowed; i++)
    if (allowed[i].inside == f.inside) return;
  if (n_allowed < MAX_ALLOWED) allowed[n_allowed++] = f;
}

void control_init(const struct forward *forwards, int n, const struct port_range *plan_ranges, int plan_n_ranges, int host) {
  n_allowed = 0;
  for (int i = 0; i < n; i++) allow(forwards[i]);
  n_ranges = plan_n_ranges < 0 ? 0 : plan_n_ranges > MAX_LIST ? MAX_LIST : plan_n_ranges;
  if (n_ranges > 0) memcpy(ranges, plan_ranges, (size_t)n_ranges * sizeof *ranges);
  host_fd = host;
  if (host_fd >= 0) fcntl(host_fd, F_SETFL, O_NONBLOCK);
  int probe = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (probe >= 0) own_netns = socket_netns(probe), close(probe);
}

int listener_count(void) {
  return n_listeners;
}

int host_port_for(ino_t netns, int v6, uint16_t inside) {
  int port = -1;
  pthread_mutex_lock(&listeners_lock);
  for (struct listener *l = listeners; l && port < 0; l = l->next)
    if (l->inside_port == inside && (l->family == AF_INET6) == v6 && (netns == 0 || l->netns == netns)) port = l->host_port;
  pthread_mutex_unlock(&listeners_lock);
  /*
   * A port of a range: the host's same port, served now or later (refused there, the
   * caller's own connect goes on and is refused inside). Not when the sandbox listens on
   * it itself -- a test's server on an ephemeral port of the range keeps its clients.
   * range_netns is set before the seccomp listener is taken, and never again.
   */
  if (port < 0 && range_netns != 0 && (netns == 0 || netns == range_netns) && in_port_ranges(ranges, n_ranges, inside) &&
      (netns == 0 || listens_in(range_diag, inside) != 1))
    port = inside;
  return port;
}

/* "INSIDE:HOST", each a port from 1 to 65535 in decimal digits; 0 if it is not that. */
static int parse_line(const char *line, struct forward *f) {
  unsigned long ports[2] = {0, 0};
  int which = 0, digits = 0;
  for (const char *c = line; *c; c++) {
    if (*c == ':' && which == 0 && digits > 0) which = 1, digits = 0;
    else if (*c >= '0' && *c <= '9' && ++digits <= 5) ports[which] = ports[which] * 10 + (unsigned long)(*c - '0');
    else return 0;
  }
  if (which != 1 || digits == 0 || ports[0] < 1 || ports[0] > 65535 || ports[1] < 1 || ports[1] > 65535) return 0;
  *f = (struct forward){(uint16_t)ports[0], (uint16_t)ports[1]};
  return 1;
}

int host_message(void) {
  if (host_fd < 0) return -1;
  char buf[512];
  for (;;) {
    ssize_t n = read(host_fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno == EAGAIN ? 0 : (host_fd = -1, -1);
    if (n == 0) return host_fd = -1, -1;
    for (ssize_t i = 0; i < n; i++) {
      if (buf[i] != '\n') {
        /* a line longer than any forward's is no forward: dropped whole */
        if (host_line_len + 1 < sizeof host_line) host_line[host_line_len++] = buf[i];
        else host_line_long = 1;
        continue;
      }
      host_line[host_line_len] = 0;
      struct forward f;
      if (!host_line_long && parse_line(host_line, &f)) allow(f);
      host_line_len = 0, host_line_long = 0;
    }
  }
}

/* What the host wrote reaches us before a question it made possible: a worker asks right
   after the host registered a port, and the two sockets' events come in either order. */
static void take_host_additions(void) {
  if (host_fd >= 0) host_message();
}

/* 'P': every forward now, in one message. */
static void answer_plan(int ctl) {
  char message[1 + MAX_ALLOWED * sizeof(struct forward)];
  message[0] = 'p';
  memcpy(message + 1, allowed, (size_t)n_allowed * sizeof(struct forward));
  ssize_t sent;
  do sent = send(ctl, message, 1 + (size_t)n_allowed * sizeof(struct forward), MSG_NOSIGNAL | MSG_DONTWAIT); while (sent < 0 && errno == EINTR);
}

static int allowed_port(uint16_t host_port) {
  for (int i = 0; i < n_allowed; i++)
    if (allowed[i].host == host_port) return 1;
  return 0;
}

static int allowed_pair(uint16_t inside, uint16_t host_port) {
  for (int i = 0; i < n_allowed; i++)
    if (allowed[i].inside == inside && allowed[i].host == host_port) return 1;
  return 0;
}

static void answer(int ctl, char yes) {
  ssize_t sent;
  /* never blocking: a sender that doesn't read its answers can't stall the relay */
  do sent = send(ctl, &yes, 1, MSG_NOSIGNAL | MSG_DONTWAIT); while (sent < 0 && errno == EINTR);
}

void drop_listener(struct listener *l) {
  pthread_mutex_lock(&listeners_lock);
  for (struct listener **at = &listeners; *at; at = &(*at)->next)
    if (*at == l) {
      *at = l->next;
      n_listeners--;
      break;
    }
  pthread_mutex_unlock(&listeners_lock);
  relay_unwatch(l->fd);
  close(l->fd);
  l->dead = 1;
  bury(l);
}

static void drop_listeners(void) {
  while (listeners) drop_listener(listeners);
}

static int int_option(int fd, int level, int name) {
  int value = -1;
  socklen_t len = sizeof value;
  return getsockopt(fd, level, name, &value, &len) == 0 ? value : -1;
}

/*
 * 'L': takes `fd` if it is a listening TCP socket of the sandbox's network on the inside
 * port the plan pairs with `host_port`. Anything else -- a UDP socket, a TCP socket never
 * bound or not listening (readable forever: the relay would spin), one of the host's own
 * network, a pipe -- is refused. At most two per forward (127.0.0.1 and ::1).
 */
static int add_listener(int fd, uint16_t host_port) {
  if (n_listeners >= 2 * n_allowed) return -1;
  if (int_option(fd, SOL_SOCKET, SO_TYPE) != SOCK_STREAM || int_option(fd, SOL_SOCKET, SO_PROTOCOL) != IPPROTO_TCP ||
      int_option(fd, SOL_SOCKET, SO_ACCEPTCONN) != 1)
    return -1;
  struct sockaddr_storage local;
  socklen_t len = sizeof local;
  if (getsockname(fd, (struct sockaddr *)&local, &len) < 0 || (local.ss_family != AF_INET && local.ss_family != AF_INET6)) return -1;
  uint16_t inside = sockaddr_port(&local);
  if (!allowed_pair(inside, host_port)) return -1;
  ino_t netns = socket_netns(fd);
  if (netns != 0 && netns == own_netns) return -1;
  struct listener *l = calloc(1, sizeof *l);
  if (!l) return -1;
  *l = (struct listener){LISTENER, 0, fd, host_port, local.ss_family, inside, netns, NULL};
  if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
    free(l);
    return -1;
  }
  pthread_mutex_lock(&listeners_lock);
  l->next = listeners;
  listeners = l;
  n_listeners++;
  pthread_mutex_unlock(&listeners_lock);
  relay_watch(fd, EPOLLIN, l);
  return 0;
}

/* 'S': the seccomp listener connect.c answers, taken once; a seccomp notify fd alone. */
static int add_connects(int fd) {
  char path[64], target[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(path, target, sizeof target - 1);
  if (connects >= 0 || n < 0) return -1;
  target[n] = 0;
  if (strcmp(target, "anon_inode:seccomp notify") != 0) return -1;
  connects = fd;
  /* once the filter is in place, each connect waits for an answer (ENOSYS if the
     listener closes): where no thread can start, the relay's loop answers them, more slowly */
  if (start_connects(fd, host_port_for) < 0) {
    static enum kind connects_tag = CONNECTS;
    relay_watch(fd, EPOLLIN, &connects_tag);
  }
  return 0;
}

/* 'N': a sock_diag socket of the sandbox's network, for the plan's ranges; taken once,
   before the seccomp listener, and only where the plan has ranges. */
static int add_range_network(int fd) {
  if (range_diag >= 0 || connects >= 0 || n_ranges == 0) return -1;
  if (int_option(fd, SOL_SOCKET, SO_DOMAIN) != AF_NETLINK || int_option(fd, SOL_SOCKET, SO_PROTOCOL) != NETLINK_SOCK_DIAG) return -1;
  ino_t netns = socket_netns(fd);
  if (netns == 0 || netns == own_netns) return -1;
  range_diag = fd;
  range_netns = netns;
  return 0;
}

int control_message(int ctl) {
  struct control m;
  int fd;
  ssize_t n = recv_with_fd(ctl, &m, sizeof m, &fd);
  if (n < 0) return errno == EAGAIN || errno == EBADMSG ? 0 : -1; /* EBADMSG: dropped, its fds closed */
  if (n == 0) {
    /* an empty message (with an fd, maybe), or every sender gone: only a hang-up says which */
    if (fd >= 0) close(fd);
    struct pollfd p = {.fd = ctl, .events = POLLRDHUP};
    return poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLRDHUP)) ? -1 : 0;
  }
  int taken = 0;
  if (n == (ssize_t)sizeof m && m.zero == 0) {
    /* a round of questions ends with anything that is not one */
    if (m.op != 'Q') forget_served();
    if (m.op == 'Q' || m.op == 'L' || m.op == 'P') take_host_additions();
    if (m.op == 'P' && fd < 0) answer_plan(ctl);
    else if (m.op == 'Q' && fd < 0) answer(ctl, allowed_port(m.host_port) && host_serves(m.host_port) ? '1' : '0');
    else if (m.op == 'R' && fd < 0) drop_listeners();
    /* answered: the sandbox's side waits until its listeners are taken, so that a connect
       right after a reset finds them (and goes straight to the host, not via the relay) */
    else if (m.op == 'L' && fd >= 0) answer(ctl, (taken = add_listener(fd, m.host_port) == 0) ? '1' : '0');
    else if (m.op == 'S' && fd >= 0) taken = add_connects(fd) == 0;
    else if (m.op == 'N' && fd >= 0) taken = add_range_network(fd) == 0;
  }
  if (fd >= 0 && !taken) close(fd);
  return 0;
}
