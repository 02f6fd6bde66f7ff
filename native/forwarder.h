/*
 * The forwarder's control protocol and its insides, shared by the sandbox's side
 * (forward.c), the forwarder's process (relay.c, control.c) and the fuzz target of the
 * protocol (fuzz/control.c).
 *
 * One message is exactly one struct control on a SOCK_SEQPACKET socket, with exactly the
 * fds its op defines; anything else is dropped, with every fd that came with it:
 *   'Q' host_port, no fd       is host_port served on the host now? one byte back, '1'/'0'
 *   'L' host_port, one fd      relay this listening TCP socket of the sandbox's network
 *                              (the plan's inside port for host_port) to host_port; one
 *                              byte back, '1' taken / '0' refused
 *   'R' no fd                  drop every listener (a reset's fresh network follows)
 *   'S' one fd                 the sandbox's seccomp listener, for direct connects (connect.c)
 *   'N' one fd                 a sock_diag socket of the sandbox's network, sent before 'S'
 *                              where the plan has ranges (--forward-range): direct connects
 *                              from that network to a port of a range go to the host's same
 *                              port, unless the sandbox listens on it; taken once, no answer
 *   'P' no fd                  which forwards now? one message back: 'p', then each
 *                              struct forward (the plan's, then the host's additions)
 *
 * The host's own channel (--forward-host-fd, a byte stream only the test runner's process
 * and the forwarder hold: never the sandbox) adds forwards a run registers after the
 * sandbox started (forwardHostPort()): lines "INSIDE:HOST\n". A reused worker's next
 * reset asks 'P' and forwards them too. Nothing on the control socket can add one.
 */
#ifndef VPR_FORWARDER_H
#define VPR_FORWARDER_H

#include <stdint.h>
#include <sys/types.h>

#include "sandbox.h"

struct control {
  uint8_t op;
  uint8_t zero;       /* no padding left undefined on the wire */
  uint16_t host_port; /* 'Q': the port asked; 'L': where its connections go */
};

/* The kinds of things the forwarder's epoll watches, told apart by a tagged pointer. */
enum kind { CONTROL, HOST, LISTENER, CONNECTION, CONNECTS };

/* The forwards a forwarder takes in all: its plan's and the host's additions. */
#define MAX_ALLOWED (2 * MAX_LIST)

struct listener {
  enum kind kind;
  int dead;
  int fd;
  uint16_t host_port;
  int family;
  uint16_t inside_port;
  ino_t netns;          /* the sandbox network it listens in: connects from there redirect */
  struct listener *next;
};

/* relay.c */
/* The forwarder's epoll set, made once; -1 with errno if it can't be. */
int relay_init(void);
void relay_watch(int fd, uint32_t events, void *tag);
void relay_unwatch(int fd);
/* Frees `thing` once the epoll batch that may still point at it is done. */
void bury(void *thing);
void free_buried(void);

/* control.c */
/* The plan's forwards and ranges, and the host's channel for more (or -1). */
void control_init(const struct forward *allowed, int n, const struct port_range *ranges, int n_ranges, int host);
/* Reads and handles one message: 0, or -1 when the socket is gone (every sender closed it). */
int control_message(int ctl);
/* Takes the forwards the host added since: 0, or -1 when its channel is gone. */
int host_message(void);
/* The listener list, for relay.c's accepts: stop relaying one that broke. */
void drop_listener(struct listener *l);
/* connect.c's question: where a connect to `inside` on a loopback of `netns` (0: any) leads. */
int host_port_for(ino_t netns, int v6, uint16_t inside);
/* How many listeners the forwarder holds (the fuzz target checks it). */
int listener_count(void);
/* The seccomp listener the sandbox sent, or -1. */
extern int connects;

/* served.c: whether the host serves a TCP port now, by one read of its socket tables
   per round of questions; forget_served() ends the round */
int host_serves(uint16_t port);
void forget_served(void);
/* whether something listens on TCP `port` in the network of the sock_diag socket `diag`:
   1, 0, or -1 where it can't be asked */
int listens_in(int diag, uint16_t port);

/* connect.c: direct connects, answered in the forwarder */
typedef int (*host_port_fn)(ino_t netns, int v6, uint16_t inside);
/* Answers `notify_fd`'s connect(2) notifications on a thread of their own: redirected,
   or let through. `host_port` is called on that thread. */
int start_connects(int notify_fd, host_port_fn host_port);
/* Answers one of them, here (where no thread could be started); -1 when it can't. */
int answer_connect(int notify_fd, host_port_fn host_port);
struct sockaddr_storage;
/*
 * The address check of a connect(2) a sandboxed process makes (its fuzz target is
 * native/fuzz/connect.c): `to_len` is the length it passed, `to` what was read of it.
 * The loopback port it names (127.0.0.1, ::1, ::ffff:127.0.0.1; *v6_loopback: ::1), or 0.
 */
uint16_t connect_target(const struct sockaddr_storage *to, uint64_t to_len, int *v6_loopback);
struct seccomp_notif;
/*
 * The end of a redirected connect(2), shared by the forwarder's direct connects and the
 * addon's connects to an earlier network: a TCP socket of ours, made in the network the
 * calling thread is in, with the options of the caller's socket `theirs`, connects to `to`
 * and takes the place of the caller's fd `newfd` (SECCOMP_ADDFD); `flags` are the caller's
 * O_NONBLOCK and O_CLOEXEC. 1: the caller was answered (or is gone); 0: its own connect(2)
 * goes on -- refused there, or a blocking caller, which the kernel keeps waiting on ours.
 */
int connect_in_place(int notify_fd, const struct seccomp_notif *req, int theirs, int family, const struct sockaddr_storage *to,
                     socklen_t to_len, int newfd, int flags);

#endif
