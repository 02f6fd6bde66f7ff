/*
 * --publish PORT=PATH: a port of the sandbox's own loopback, reached from the host -- the
 * direction the forwarder (relay.c) doesn't serve. What a debugger needs: the inspector a
 * worker opens on its private 127.0.0.1:PORT. The host listens where the user asked
 * (src/engine/published-port.ts) and connects to the Unix socket PATH for each client; this
 * process, forked inside the sandbox's network namespace, accepts there and connects each
 * to 127.0.0.1:PORT (or [::1]:PORT) beside it, copying bytes both ways. A Unix socket is
 * found by its path, not in a network namespace: the host reaches it from outside, and it
 * is made before any tmpfs hides the run's state dir. Launcher only; dies with the sandbox.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "sandbox.h"

/* A debugger opens a few connections at once (/json/list, the WebSocket); more wait. */
#define MAX_PAIRS 16
#define BUF_SIZE 65536

struct half {
  char buf[BUF_SIZE];
  size_t len, off; /* bytes read from one side, not yet written to the other */
  int eof;
};

struct pair {
  int fd[2];          /* [0] the host's client, [1] the inspector inside; -1 when free */
  struct half to[2];  /* to[1]: from the client to the inspector; to[0]: back */
};

static struct pair pairs[MAX_PAIRS];

int listen_unix(const char *path) {
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof addr.sun_path) return errno = ENAMETOOLONG, -1;
  strcpy(addr.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(fd, 16) < 0) {
    int saved = errno;
    close(fd);
    return errno = saved, -1;
  }
  return fd;
}

/* The inspector beside us: 127.0.0.1 first, ::1 where it listens only there. */
static int connect_inside(uint16_t port) {
  struct sockaddr_in v4 = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  struct sockaddr_in6 v6 = {.sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = IN6ADDR_LOOPBACK_INIT};
  const struct sockaddr *addrs[] = {(struct sockaddr *)&v4, (struct sockaddr *)&v6};
  const socklen_t lens[] = {sizeof v4, sizeof v6};
  for (int i = 0; i < 2; i++) {
    int fd = socket(addrs[i]->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    if (connect(fd, addrs[i], lens[i]) == 0) return fd;
    close(fd);
  }
  return -1;
}

static void close_pair(struct pair *p) {
  for (int s = 0; s < 2; s++) {
    if (p->fd[s] >= 0) close(p->fd[s]);
    p->fd[s] = -1;
  }
}

/* One side is readable or writable: move what can be moved; 0 when the pair is done. */
static int pump(struct pair *p, const struct pollfd *pfd) {
  for (int s = 0; s < 2; s++) {
    struct half *h = &p->to[!s]; /* what side s reads goes to the other side */
    if (!h->eof && h->len == 0 && (pfd[s].revents & (POLLIN | POLLHUP | POLLERR))) {
      ssize_t n = read(p->fd[s], h->buf, sizeof h->buf);
      if (n > 0) h->len = (size_t)n, h->off = 0;
      else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        h->eof = 1;
        shutdown(p->fd[!s], SHUT_WR);
      }
    }
  }
  for (int s = 0; s < 2; s++) {
    struct half *h = &p->to[s]; /* what goes to side s */
    while (h->len > h->off) {
      ssize_t n = write(p->fd[s], h->buf + h->off, h->len - h->off);
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) break;
        return 0;
      }
      h->off += (size_t)n;
    }
    if (h->off == h->len) h->len = h->off = 0;
  }
  return !(p->to[0].eof && p->to[1].eof);
}

static void serve(int listener, uint16_t port) __attribute__((noreturn));
static void serve(int listener, uint16_t port) {
  for (int i = 0; i < MAX_PAIRS; i++) pairs[i].fd[0] = pairs[i].fd[1] = -1;
  for (;;) {
    struct pollfd pfd[1 + 2 * MAX_PAIRS];
    int free_slot = -1;
    pfd[0] = (struct pollfd){.fd = -1};
    for (int i = 0; i < MAX_PAIRS; i++) {
      struct pair *p = &pairs[i];
      for (int s = 0; s < 2; s++) {
        short events = 0;
        if (p->fd[s] >= 0 && !p->to[!s].eof && p->to[!s].len == 0) events |= POLLIN;
        if (p->fd[s] >= 0 && p->to[s].len > p->to[s].off) events |= POLLOUT;
        pfd[1 + 2 * i + s] = (struct pollfd){.fd = p->fd[s], .events = events};
      }
      if (p->fd[0] < 0 && free_slot < 0) free_slot = i;
    }
    /* a full table leaves new clients waiting in the backlog */
    if (free_slot >= 0) pfd[0] = (struct pollfd){.fd = listener, .events = POLLIN};
    if (poll(pfd, 1 + 2 * MAX_PAIRS, -1) < 0) {
      if (errno == EINTR) continue;
      _exit(1);
    }
    for (int i = 0; i < MAX_PAIRS; i++)
      if (pairs[i].fd[0] >= 0 && (pfd[1 + 2 * i].revents || pfd[2 + 2 * i].revents) && !pump(&pairs[i], &pfd[1 + 2 * i])) close_pair(&pairs[i]);
    if (free_slot >= 0 && (pfd[0].revents & POLLIN)) {
      int client = accept4(listener, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (client < 0) continue;
      /* nothing listens inside (yet): the host's client sees the connection end */
      int inside = connect_inside(port);
      if (inside < 0 || fcntl(inside, F_SETFL, O_NONBLOCK) < 0) {
        close(client);
        if (inside >= 0) close(inside);
        continue;
      }
      struct pair *p = &pairs[free_slot];
      memset(p, 0, sizeof *p);
      p->fd[0] = client, p->fd[1] = inside;
    }
  }
}

int start_publisher(int listener, uint16_t port, pid_t parent) {
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid > 0) {
    close(listener);
    return 0;
  }
  /* the publisher: in the sandbox's network, dying with the sandbox's first process */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(0);
  signal(SIGPIPE, SIG_IGN);
  /* nothing of the worker's (its IPC channel, output pipes, status fd) is held open here:
     the runner must see them end when the worker does */
  int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  for (int fd = 0; fd < 3 && devnull >= 0; fd++) dup2(devnull, fd);
  for (int fd = 3; fd < 1024; fd++)
    if (fd != listener) close(fd);
  serve(listener, port);
}
