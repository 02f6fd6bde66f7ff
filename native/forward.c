/*
 * The forwarder: how a sandbox reaches chosen ports of the host's loopback (a database
 * the CI job runs, the test runner's own servers) while its network stays its own.
 *
 * The launcher forks it before it makes the sandbox's network namespace, so it stays in
 * the host's. Once the sandbox's loopback is up, the launcher listens there on each
 * forwarded port (127.0.0.1 and ::1) and hands the listening sockets to the forwarder
 * over a Unix socket (SCM_RIGHTS). The forwarder accepts on them -- a socket keeps the
 * network namespace it was made in -- connects to the host's 127.0.0.1 (or ::1) on the
 * mapped port, and moves the bytes both ways with splice(2), through a pipe per
 * direction, never through user memory. A reused worker's reset sends listeners made in
 * its fresh network namespace the same way (addon.c), after telling it to drop the old.
 *
 * A host port nothing listens on gets no listener inside, so a connect to it is refused
 * there at once (ECONNREFUSED, as on the host) instead of being accepted and reset. Only
 * the forwarder, in the host's network, can tell: it is asked ('Q') before each listener.
 *
 * Only host ports given when it was forked are ever connected to: what a sandboxed
 * process can send it later can't widen that. It dies with the launcher's process.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include "sandbox.h"

/* The pipe per direction: bytes moved per splice(2) call at most (1 MiB: pipe-max-size's default). */
#define CHUNK (1024 * 1024)
#define MAX_EVENTS 64

/* What travels on the control socket, with a listener's fd alongside for 'L'. */
struct control {
  char op;             /* 'L': relay this listener; 'R': drop every listener;
                          'Q': is host_port served? (a one-byte answer, '1' or '0');
                          'S': the sandbox's seccomp listener, for direct connects (connect.c) */
  uint16_t host_port;  /* 'L': the host port its connections go to; 'Q': the port asked */
};

/* ---- the launcher's side ---- */

static void run_forwarder(int ctl, const struct forward *forwards, int n) __attribute__((noreturn));

int start_forwarder(const struct forward *forwards, int n, pid_t *forwarder) {
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0) return -1;
  pid_t pid = fork();
  if (pid < 0) {
    int saved = errno;
    close(pair[0]);
    close(pair[1]);
    errno = saved;
    return -1;
  }
  if (pid == 0) {
    /* hold nothing of the sandbox's: its stdio, the runner's IPC channel, the status pipe
       (each would stay open as long as we do); only our end of the control socket */
    int ctl = dup2(pair[1], 3) < 0 ? pair[1] : 3;
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    for (int fd = 0; fd < 3 && null >= 0; fd++) dup2(null, fd);
    if (ctl != 3 || syscall(SYS_close_range, 4U, ~0U, 0U) < 0)
      for (int fd = 4; fd < 1024; fd++) if (fd != ctl) close(fd);
    run_forwarder(ctl, forwards, n);
  }
  close(pair[1]);
  *forwarder = pid;
  return pair[0];
}

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

static int send_control(int ctl, struct control message, int fd) {
  return send_with_fd(ctl, &message, sizeof message, fd) < 0 ? -1 : 0;
}

/*
 * Whether something listens on `port` in this network namespace -- the host's, on the
 * forwarder's side -- by the kernel's socket tables (/proc/self/net/tcp{,6}), not by
 * connecting: a test connection would reach the service (a server that greets first gets
 * reset), and a busy machine can make a connect look like no answer. Where the tables
 * can't be read, the port counts as served: wrongly refused would cut a sandbox off its
 * database; wrongly served only resets a connection to a dead port.
 */
static int host_port_alive(uint16_t port) {
  const char *tables[] = {"/proc/self/net/tcp", "/proc/self/net/tcp6"};
  int read_any = 0;
  for (int t = 0; t < 2; t++) {
    FILE *f = fopen(tables[t], "re");
    if (!f) continue;
    read_any = 1;
    char line[512];
    int found = 0;
    if (fgets(line, sizeof line, f)) /* the header */
      while (!found && fgets(line, sizeof line, f)) {
        /* "  sl: ADDRESS:PORT REMOTE:PORT ST ..." with hex PORT and ST 0A for LISTEN */
        char local[64];
        unsigned state;
        if (sscanf(line, " %*s %63s %*s %x", local, &state) != 2 || state != 0x0A) continue;
        const char *colon = strrchr(local, ':');
        if (colon && strtoul(colon + 1, NULL, 16) == port) found = 1;
      }
    fclose(f);
    if (found) return 1;
  }
  return !read_any;
}

/* Asks the forwarder whether the host serves `port`: 1, 0, or -1 when it can't answer. */
static int ask_alive(int ctl, uint16_t port) {
  if (send_control(ctl, (struct control){.op = 'Q', .host_port = port}, -1) < 0) return -1;
  char answer;
  ssize_t n;
  do n = recv(ctl, &answer, 1, 0); while (n < 0 && errno == EINTR);
  if (n != 1) {
    if (n == 0) errno = EPIPE;
    return -1;
  }
  return answer == '1';
}

int send_forwards(int ctl, const struct forward *forwards, int n, int replace) {
  if (replace && send_control(ctl, (struct control){.op = 'R'}, -1) < 0) return -1;
  for (int i = 0; i < n; i++) {
    int alive = ask_alive(ctl, forwards[i].host);
    if (alive < 0) return -1;
    if (!alive) continue;
    /* both loopbacks: a client may resolve localhost to either */
    int families[] = {AF_INET, AF_INET6};
    for (int f = 0; f < 2; f++) {
      int s = loopback_listener(families[f], forwards[i].inside);
      /* a sandbox without IPv6 still gets its IPv4 loopback forwarded */
      if (s < 0 && families[f] == AF_INET6 && (errno == EAFNOSUPPORT || errno == EADDRNOTAVAIL)) continue;
      if (s < 0) return -1;
      int rc = send_control(ctl, (struct control){.op = 'L', .host_port = forwards[i].host}, s);
      int saved = errno;
      close(s);
      errno = saved;
      if (rc < 0) return -1;
    }
  }
  return 0;
}

/*
 * Makes this process's connects (and its children's) go straight to the host where they
 * can (connect.c), and hands the seccomp listener to the forwarder. Best effort: where
 * it fails, the relay serves every connection. Called last before exec.
 */
void send_connect_listener(int ctl) {
  int listener = install_connect_filter();
  if (listener < 0) return;
  send_control(ctl, (struct control){.op = 'S'}, listener);
  close(listener);
}

/* ---- the forwarder's side ---- */

/* One direction of a relayed connection: src -> pipe -> dst. */
struct pump {
  int pipe_r, pipe_w;
  size_t capacity; /* of the pipe */
  size_t pending;  /* bytes in the pipe */
  int eof;        /* src said it is done */
  int shut;       /* dst was told (SHUT_WR) */
};

/* The kinds of things epoll watches, told apart by a tagged pointer. */
enum kind { CONTROL, LISTENER, CONNECTION, CONNECTS };
struct listener {
  enum kind kind;
  int dead;
  int fd;
  uint16_t host_port;
  int family;
  uint16_t inside_port;
  ino_t netns;             /* the sandbox network it listens in: connects from there redirect */
  struct listener *next;
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

static int epfd;
/* freed after each epoll batch: an event later in the batch may still point at them */
static void *graveyard[4 * MAX_EVENTS];
static int n_dead;
static const struct forward *allowed;
static int n_allowed;
static struct listener *listeners;

static int connects = -1; /* the seccomp listener (connect.c), when the sandbox sent one */
/* connect.c's thread reads the listeners: this thread changes the list under the lock */
static pthread_mutex_t listeners_lock = PTHREAD_MUTEX_INITIALIZER;

/* connect.c's question: where a connect to `inside` on a loopback of `netns` leads. */
static int host_port_for(ino_t netns, int v6, uint16_t inside) {
  int port = -1;
  pthread_mutex_lock(&listeners_lock);
  for (struct listener *l = listeners; l && port < 0; l = l->next)
    if (l->inside_port == inside && (l->family == AF_INET6) == v6 && (netns == 0 || l->netns == netns)) port = l->host_port;
  pthread_mutex_unlock(&listeners_lock);
  return port;
}

static int allowed_port(uint16_t port) {
  for (int i = 0; i < n_allowed; i++)
    if (allowed[i].host == port) return 1;
  return 0;
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

static void bury(void *thing) {
  if (n_dead < (int)(sizeof graveyard / sizeof graveyard[0])) graveyard[n_dead++] = thing;
  /* more deaths than one batch can cause: never happens; leaking beats a dangling pointer */
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

static void accept_from(struct listener *l) {
  for (;;) {
    int inside = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
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

static void control(int ctl) {
  struct control message;
  int fd;
  ssize_t n = recv_with_fd(ctl, &message, sizeof message, &fd);
  /* the launcher's process is gone (and with it the sandbox): so are we */
  if (n == 0 || (n < 0 && errno != EAGAIN)) _exit(0);
  if (n != (ssize_t)sizeof message) return;
  if (message.op == 'Q') {
    char answer = allowed_port(message.host_port) && host_port_alive(message.host_port) ? '1' : '0';
    ssize_t sent;
    do sent = send(ctl, &answer, 1, MSG_NOSIGNAL); while (sent < 0 && errno == EINTR);
  } else if (message.op == 'R') {
    pthread_mutex_lock(&listeners_lock);
    while (listeners) {
      struct listener *l = listeners;
      listeners = l->next;
      close(l->fd);
      l->dead = 1;
      bury(l);
    }
    pthread_mutex_unlock(&listeners_lock);
  } else if (message.op == 'L' && fd >= 0 && allowed_port(message.host_port)) {
    struct listener *l = calloc(1, sizeof *l);
    struct sockaddr_storage local;
    socklen_t len = sizeof local;
    if (l && getsockname(fd, (struct sockaddr *)&local, &len) == 0) {
      ino_t netns = socket_netns(fd);
      pthread_mutex_lock(&listeners_lock);
      *l = (struct listener){LISTENER, 0, fd, message.host_port, local.ss_family, sockaddr_port(&local), netns, listeners};
      listeners = l;
      pthread_mutex_unlock(&listeners_lock);
      fcntl(fd, F_SETFL, O_NONBLOCK);
      watch(fd, EPOLLIN, l, EPOLL_CTL_ADD);
      return;
    }
    free(l);
  } else if (message.op == 'S' && fd >= 0 && connects < 0) {
    /* once the filter is in place, each connect waits for an answer (ENOSYS if the
       listener closes): where no thread can start, this loop answers them, more slowly */
    connects = fd;
    if (start_connects(fd, host_port_for) < 0) {
      static enum kind connects_tag = CONNECTS;
      watch(fd, EPOLLIN, &connects_tag, EPOLL_CTL_ADD);
    }
    return;
  }
  if (fd >= 0) close(fd);
}

static void run_forwarder(int ctl, const struct forward *forwards, int n) {
  /* dies with the launcher's process (its parent): the sandbox is gone then */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  signal(SIGPIPE, SIG_IGN);
  allowed = forwards;
  n_allowed = n;
  epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) _exit(1);
  static enum kind control_tag = CONTROL;
  watch(ctl, EPOLLIN, &control_tag, EPOLL_CTL_ADD);
  struct epoll_event events[MAX_EVENTS];
  for (;;) {
    int ready = epoll_wait(epfd, events, MAX_EVENTS, -1);
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) _exit(1);
    for (int i = 0; i < ready; i++) {
      enum kind *tag = events[i].data.ptr;
      if (*tag == CONTROL) control(ctl);
      else if (*tag == CONNECTS) {
        /* hung up (every process of the sandbox gone) or broken: a receive would block */
        if (!(events[i].events & EPOLLIN) || answer_connect(connects, host_port_for) < 0) epoll_ctl(epfd, EPOLL_CTL_DEL, connects, NULL);
      }
      else if (*tag == LISTENER) {
        if (!((struct listener *)tag)->dead) accept_from((struct listener *)tag);
      } else if (!((struct end *)tag)->c->dead) serve(((struct end *)tag)->c);
    }
    while (n_dead > 0) free(graveyard[--n_dead]);
  }
}
