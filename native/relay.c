/*
 * The forwarder's process: forked by the launcher in the host's network namespace, it
 * accepts on the listeners the sandbox sends it (control.c), connects to the host's
 * 127.0.0.1 (or ::1) on the mapped port, and moves the bytes both ways with splice(2),
 * through a pipe per direction, never through user memory. It answers direct connects
 * too (connect.c). It dies with the launcher's process: by its parent-death signal, or
 * killed by the outer launcher of a pid namespace.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "forwarder.h"

/* The pipe per direction: bytes moved per splice(2) call at most (1 MiB: pipe-max-size's default). */
#define CHUNK (1024 * 1024)
#define MAX_EVENTS 64

static void run_forwarder(int ctl, const struct forward *forwards, int n, const struct port_range *ranges, int n_ranges, int host) __attribute__((noreturn));

int start_forwarder(const struct forward *forwards, int n, const struct port_range *ranges, int n_ranges, int host_fd, pid_t *forwarder) {
  int ctl, host = host_fd;
  pid_t pid = fork_helper(&ctl, &host);
  if (pid < 0) return -1;
  if (pid == 0) run_forwarder(ctl, forwards, n, ranges, n_ranges, host);
  *forwarder = pid;
  return ctl;
}

/* One direction of a relayed connection: src -> pipe -> dst. */
struct pump {
  int pipe_r, pipe_w;
  size_t capacity; /* of the pipe */
  size_t pending;  /* bytes in the pipe */
  int eof;        /* src said it is done */
  int shut;       /* dst was told (SHUT_WR) */
};

struct connection {
  enum kind kind;
  int dead;
  int inside, host;        /* the accepted socket, and ours to the host */
  int connecting;          /* the connect to the host is under way */
  int tried_other_family;  /* 127.0.0.1 refused: ::1 tried (or the reverse) */
  uint16_t host_port;
  int family;
  struct pump to_host, to_inside;
  /* epoll needs a distinct pointer per fd: these two point back here */
  struct end { enum kind kind; struct connection *c; int fd; uint32_t events; } inside_end, host_end;
};

static int epfd = -1;
/* freed after each epoll batch: an event later in the batch may still point at them */
static void *graveyard[4 * MAX_EVENTS];
static int n_dead;
/* an fd kept free for the moment the fd table is full: see accept_from() */
static int spare_fd = -1;

int relay_init(void) {
  epfd = epoll_create1(EPOLL_CLOEXEC);
  spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  return epfd;
}

void relay_watch(int fd, uint32_t events, void *tag) {
  struct epoll_event ev = {.events = events, .data.ptr = tag};
  epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

void relay_unwatch(int fd) {
  epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
}

void bury(void *thing) {
  if (n_dead < (int)(sizeof graveyard / sizeof graveyard[0])) graveyard[n_dead++] = thing;
  /* more deaths than one batch can cause: never happens; leaking beats a dangling pointer */
}

void free_buried(void) {
  while (n_dead > 0) free(graveyard[--n_dead]);
}

static int connect_host(int family, uint16_t port) {
  int s = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (s < 0) return -1;
  int rc;
  if (family == AF_INET) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    rc = connect(s, (struct sockaddr *)&a, sizeof a);
  } else {
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    rc = connect(s, (struct sockaddr *)&a, sizeof a);
  }
  if (rc < 0 && errno != EINPROGRESS) {
    int saved = errno;
    close(s);
    errno = saved;
    return -1;
  }
  return s;
}

static void watch(int fd, uint32_t events, void *tag, int op) {
  struct epoll_event ev = {.events = events, .data.ptr = tag};
  epoll_ctl(epfd, op, fd, &ev);
}

/* Ends a connection: with a reset when it failed, so the other side learns it at once. */
static void drop(struct connection *c, int reset) {
  c->dead = 1;
  int fds[] = {c->inside, c->host};
  for (int i = 0; i < 2; i++) {
    if (fds[i] < 0) continue;
    if (reset) {
      struct linger hard = {.l_onoff = 1, .l_linger = 0};
      setsockopt(fds[i], SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
    }
    close(fds[i]);
  }
  int pipes[] = {c->to_host.pipe_r, c->to_host.pipe_w, c->to_inside.pipe_r, c->to_inside.pipe_w};
  for (int i = 0; i < 4; i++) if (pipes[i] >= 0) close(pipes[i]);
  bury(c);
}

/*
 * Moves what it can in one direction; -1 when the connection failed. Reading and writing
 * overlap: src keeps filling the pipe while dst drains it, so neither side waits for the
 * other to finish a whole chunk.
 */
static int pump(struct pump *p, int src, int dst) {
  for (;;) {
    int moved = 0;
    if (p->pending > 0) {
      ssize_t w = splice(p->pipe_r, NULL, dst, NULL, p->pending, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (w < 0 && errno != EAGAIN) return -1;
      if (w > 0) p->pending -= (size_t)w, moved = 1;
    }
    if (!p->eof && p->pending < p->capacity) {
      ssize_t r = splice(src, NULL, p->pipe_w, NULL, p->capacity - p->pending, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (r < 0 && errno != EAGAIN) return -1;
      if (r == 0) p->eof = 1;
      if (r > 0) p->pending += (size_t)r, moved = 1;
    }
    if (p->eof && p->pending == 0 && !p->shut) {
      shutdown(dst, SHUT_WR);
      p->shut = 1;
    }
    if (!moved) return 0;
  }
}

/* epoll_ctl only when what an end waits for changed: a syscall saved per event. */
static void want(struct end *e, uint32_t events) {
  if (e->events == events) return;
  e->events = events;
  watch(e->fd, events, e, EPOLL_CTL_MOD);
}

/* What each end of a connection waits for now. */
static void rewatch(struct connection *c) {
  uint32_t inside = 0, host = 0;
  if (c->connecting) {
    host = EPOLLOUT;
  } else {
    if (c->to_host.pending < c->to_host.capacity && !c->to_host.eof) inside |= EPOLLIN;
    if (c->to_host.pending > 0) host |= EPOLLOUT;
    if (c->to_inside.pending < c->to_inside.capacity && !c->to_inside.eof) host |= EPOLLIN;
    if (c->to_inside.pending > 0) inside |= EPOLLOUT;
  }
  want(&c->inside_end, inside | EPOLLRDHUP);
  want(&c->host_end, host | EPOLLRDHUP);
}

/*
 * Accepts what waits on a listener. Level-triggered: whatever is left makes the next
 * epoll_wait return at once, so nothing may be left that can't be taken -- a full fd
 * table refuses the connection with the spare fd's room, and a listener that broke
 * (shut down by a test that held a copy) is dropped.
 */
static void accept_from(struct listener *l) {
  for (;;) {
    int inside = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (inside < 0 && (errno == EMFILE || errno == ENFILE) && spare_fd >= 0) {
      close(spare_fd);
      inside = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
      if (inside >= 0) close(inside);
      spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
      continue;
    }
    if (inside < 0 && (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)) continue;
    if (inside < 0 && errno != EAGAIN) drop_listener(l);
    if (inside < 0) return;
    struct connection *c = calloc(1, sizeof *c);
    if (!c) {
      close(inside);
      continue;
    }
    c->kind = CONNECTION;
    c->inside = inside;
    c->host_port = l->host_port;
    c->family = l->family;
    c->to_host.pipe_r = c->to_host.pipe_w = c->to_inside.pipe_r = c->to_inside.pipe_w = -1;
    int a[2], b[2];
    if (pipe2(a, O_CLOEXEC | O_NONBLOCK) < 0 || pipe2(b, O_CLOEXEC | O_NONBLOCK) < 0) {
      c->host = -1;
      drop(c, 1);
      continue;
    }
    c->to_host.pipe_r = a[0], c->to_host.pipe_w = a[1];
    c->to_inside.pipe_r = b[0], c->to_inside.pipe_w = b[1];
    /* a bigger pipe moves more per splice(2); what the system allows, else the default */
    int size_a = fcntl(a[1], F_SETPIPE_SZ, CHUNK), size_b = fcntl(b[1], F_SETPIPE_SZ, CHUNK);
    c->to_host.capacity = (size_t)(size_a > 0 ? size_a : fcntl(a[1], F_GETPIPE_SZ));
    c->to_inside.capacity = (size_t)(size_b > 0 ? size_b : fcntl(b[1], F_GETPIPE_SZ));
    c->host = connect_host(c->family, c->host_port);
    if (c->host < 0) c->host = connect_host(c->family == AF_INET ? AF_INET6 : AF_INET, c->host_port), c->tried_other_family = 1;
    if (c->host < 0) {
      drop(c, 1);
      continue;
    }
    c->connecting = 1;
    c->inside_end = (struct end){CONNECTION, c, c->inside, EPOLLRDHUP};
    c->host_end = (struct end){CONNECTION, c, c->host, EPOLLOUT};
    watch(c->inside, EPOLLRDHUP, &c->inside_end, EPOLL_CTL_ADD);
    watch(c->host, EPOLLOUT, &c->host_end, EPOLL_CTL_ADD);
  }
}

static void serve(struct connection *c) {
  if (c->connecting) {
    int error = 0;
    socklen_t len = sizeof error;
    getsockopt(c->host, SOL_SOCKET, SO_ERROR, &error, &len);
    if (error == EINPROGRESS || error == EALREADY) return;
    if (error != 0) {
      /* refused on one loopback: the service may listen on the other */
      if (!c->tried_other_family) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->host, NULL);
        close(c->host);
        c->tried_other_family = 1;
        c->host = connect_host(c->family == AF_INET ? AF_INET6 : AF_INET, c->host_port);
        if (c->host >= 0) {
          c->host_end.fd = c->host;
          c->host_end.events = EPOLLOUT;
          watch(c->host, EPOLLOUT, &c->host_end, EPOLL_CTL_ADD);
          return;
        }
      }
      drop(c, 1);
      return;
    }
    c->connecting = 0;
  }
  if (pump(&c->to_host, c->inside, c->host) < 0 || pump(&c->to_inside, c->host, c->inside) < 0) {
    drop(c, 1);
    return;
  }
  if (c->to_host.shut && c->to_inside.shut) {
    drop(c, 0);
    return;
  }
  rewatch(c);
}

static void run_forwarder(int ctl, const struct forward *forwards, int n, const struct port_range *ranges, int n_ranges, int host) {
  /* dies with the launcher's process (fork_helper): the sandbox is gone then */
  signal(SIGPIPE, SIG_IGN);
  if (relay_init() < 0) _exit(1);
  control_init(forwards, n, ranges, n_ranges, host);
  static enum kind control_tag = CONTROL, host_tag = HOST;
  relay_watch(ctl, EPOLLIN | EPOLLRDHUP, &control_tag);
  if (host >= 0) relay_watch(host, EPOLLIN | EPOLLRDHUP, &host_tag);
  struct epoll_event events[MAX_EVENTS];
  for (;;) {
    int ready = epoll_wait(epfd, events, MAX_EVENTS, -1);
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) _exit(1);
    for (int i = 0; i < ready; i++) {
      enum kind *tag = events[i].data.ptr;
      /* every sender gone: the listeners it sent keep working until we are killed */
      if (*tag == CONTROL) {
        if (control_message(ctl) < 0) relay_unwatch(ctl);
      }
      else if (*tag == HOST) {
        /* the run is over (or the host closed it): the ports added so far stay */
        if (host_message() < 0) relay_unwatch(host), close(host);
      }
      else if (*tag == CONNECTS) {
        /* hung up (every process of the sandbox gone) or broken: a receive would block */
        if (!(events[i].events & EPOLLIN) || answer_connect(connects, host_port_for) < 0) epoll_ctl(epfd, EPOLL_CTL_DEL, connects, NULL);
      }
      else if (*tag == LISTENER) {
        if (!((struct listener *)tag)->dead) accept_from((struct listener *)tag);
      } else if (!((struct end *)tag)->c->dead) serve(((struct end *)tag)->c);
    }
    free_buried();
  }
}
