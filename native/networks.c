/*
 * Network namespaces made ahead of time. Making one and bringing its lo up is the
 * largest step of a warm sandbox's setup (about 0.3 ms of it here); the warm holder
 * makes a few while nothing waits for them, and a launcher that takes one only joins it.
 *
 * They must belong to the nested user namespace the sandboxes lock their mounts with,
 * where the test's uid 0 has its capabilities (port 80, lo configuration): the holder
 * lives in that namespace, so what it makes belongs to it. Each is handed out once, to
 * whoever connects first, over a Unix socket in the run's private state directory;
 * the holder keeps none it has handed out (it returns to a namespace of its own).
 * Nothing here is ever fatal to a launcher: with no namespace to take -- no holder, none
 * made yet, anything unexpected -- it makes its own, as without the holder.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/nsfs.h>
#include <poll.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "sandbox.h"

/* Made ahead at most: enough for the spares a run boots at once, little memory idle. */
#define STOCK 4
/* How long a launcher waits for the holder's answer before making its own namespace. */
#define TAKE_TIMEOUT_US 100000

static int socket_address(const char *path, struct sockaddr_un *a) {
  memset(a, 0, sizeof *a);
  a->sun_family = AF_UNIX;
  if (strlen(path) >= sizeof a->sun_path) { errno = ENAMETOOLONG; return -1; }
  strcpy(a->sun_path, path);
  return 0;
}

int listen_networks(const char *path) {
  struct sockaddr_un a;
  if (socket_address(path, &a) < 0) return -1;
  int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (s < 0) return -1;
  if (bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 64) < 0) {
    int saved = errno;
    close(s);
    errno = saved;
    return -1;
  }
  return s;
}

/* A fresh network namespace with lo up, as an fd; this process goes back to `home`. */
static int make_network(int home) {
  if (unshare(CLONE_NEWNET) < 0) return -1;
  int fd = loopback_up() == 0 ? open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC) : -1;
  if (setns(home, CLONE_NEWNET) < 0) die_step(STEP_HOLD, "%s", "can't return to the holder's own network namespace");
  return fd;
}

void serve_networks(int listener, const struct plan *p) {
  /* with --egress, each gets its helper before it is handed out, from a spawner that
     stays in the host's network (egress.c) */
  pid_t spawner_pid;
  int spawner = p->egress_kind ? start_egress_spawner(p, 0, &spawner_pid) : -1;
  /* the holder's own namespace, to return to after making each one it hands out */
  if (unshare(CLONE_NEWNET) < 0) die_step(STEP_HOLD, "%s", "can't make the holder's own network namespace");
  int home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  if (home < 0) die_step(STEP_HOLD, "%s", "can't open the holder's own network namespace");
  int stock[STOCK], exits[STOCK], n = 0, can_make = !p->egress_kind || spawner >= 0;
  /* the namespace whose helper is starting: launchers are served meanwhile (a helper takes
     tens of ms to start, pasta hundreds; a launcher waiting on that would pay for it) */
  int pending = -1;
  for (;;) {
    struct pollfd fds[3] = {{.fd = 0, .events = POLLIN}, {.fd = listener, .events = POLLIN}, {.fd = pending >= 0 ? spawner : -1, .events = POLLIN}};
    /* launchers first; with nobody waiting, make the next one */
    int ready = poll(fds, 3, n < STOCK && can_make && pending < 0 ? 0 : -1);
    if (ready < 0) {
      if (errno == EINTR) continue;
      die_step(STEP_HOLD, "%s", "can't wait for launchers");
    }
    if (fds[0].revents) {
      char sink[64];
      ssize_t got = read_retry(0, sink, sizeof sink);
      if (got <= 0) _exit(0); /* the run is over: every namespace not handed out goes */
    }
    if (fds[1].revents & POLLIN) {
      int conn = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
      if (conn < 0) continue;
      /* none ready: closing without one says "make your own", never "wait" */
      if (n > 0) {
        n--;
        /* 'e': the fd that keeps its slirp4netns alive follows */
        send_with_fd(conn, exits[n] >= 0 ? "e" : "n", 1, stock[n]);
        if (exits[n] >= 0) send_with_fd(conn, "x", 1, exits[n]), close(exits[n]);
        close(stock[n]);
      }
      close(conn);
      continue;
    }
    if (fds[2].revents) {
      /* its helper is ready (or failed: the launchers make their own, and report why if they can't) */
      int exit_w = -1;
      if (egress_answer(spawner, &exit_w) == 0) stock[n] = pending, exits[n++] = exit_w;
      else close(pending), can_make = 0;
      pending = -1;
      continue;
    }
    if (ready == 0) {
      int fd = make_network(home);
      if (fd < 0) can_make = 0;
      else if (spawner < 0) stock[n] = fd, exits[n++] = -1;
      else if (request_egress(spawner, fd) == 0) pending = fd;
      else close(fd), can_make = 0;
    }
  }
}

int take_network(const char *path, int *egress_exit) {
  struct sockaddr_un a;
  if (socket_address(path, &a) < 0) return -1;
  int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (s < 0) return -1;
  struct timeval limit = {0, TAKE_TIMEOUT_US};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
  int fd = -1;
  if (connect(s, (struct sockaddr *)&a, sizeof a) == 0) {
    char byte;
    if (recv_with_fd(s, &byte, 1, &fd) != 1 && fd >= 0) {
      close(fd);
      fd = -1;
    }
    int exit_w = -1;
    if (fd >= 0 && byte == 'e' && (recv_with_fd(s, &byte, 1, &exit_w) != 1 || exit_w < 0 || !egress_exit)) {
      /* a namespace whose helper can't be kept alive is no use: make our own */
      if (exit_w >= 0) close(exit_w);
      close(fd);
      fd = exit_w = -1;
    }
    if (egress_exit) *egress_exit = exit_w;
  }
  close(s);
  /* only a network namespace will do */
  if (fd >= 0 && ioctl(fd, NS_GET_NSTYPE) != CLONE_NEWNET) {
    close(fd);
    fd = -1;
  }
  return fd;
}
