/*
 * What the launcher (launcher.c) and the in-process reset (addon.c) share: the plan they
 * are handed, its parser (plan.c), and the steps that build a sandbox's writable layers
 * and reset one (layers.c). Each program supplies die_step(): the launcher exits with the
 * step's status, the addon turns it into a JavaScript exception.
 */
#ifndef VPR_SANDBOX_H
#define VPR_SANDBOX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "steps.h"

#define MAX_LIST 64

struct id_range {
  unsigned long inside, outside, count;
};

/* One private tmpfs and the kept paths bound back onto it: keep[first_keep..+n_keep). */
struct tmpfs_mount {
  const char *path;
  int first_keep, n_keep;
};

/* The tmpfs targets with their kept paths, in argv order (mount order), and their size. */
struct layers {
  struct tmpfs_mount tmpfs[MAX_LIST];
  int n_tmpfs;
  const char *keep[MAX_LIST]; /* grouped by tmpfs: each --keep follows its --tmpfs */
  int n_keep;
  const char *tmpfs_size;     /* NULL: kernel default */
};

/* A port of the sandbox's loopback whose connections go to a port of the host's (forward.c). */
struct forward {
  uint16_t inside, host;
};

/* A sandbox to build (launcher), or a sandbox to reset in place (--reset, addon). */
struct plan {
  struct id_range uid_map[MAX_LIST];
  int n_uid_map;
  struct id_range gid_map[MAX_LIST];
  int n_gid_map;
  const char *newuidmap; /* NULL: write maps directly */
  const char *newgidmap;
  int userns_fd;         /* >= 0: join this user namespace instead of creating one */
  struct layers layers;
  const char *hosts_file;
  const char *nsswitch_file; /* a private copy goes on /etc/nsswitch.conf */
  const char *hostname;
  struct forward forwards[MAX_LIST];
  int n_forwards;
  int relay_only;        /* forwarded connections all go through the relay (no direct connects) */
  int host_network;
  int new_session;
  int hold;              /* create only the user namespace, report, wait for stdin EOF */
  const char *networks;  /* --hold: serve network namespaces made ahead here; else take one */
  int pid_namespace;     /* run CMD as pid 2 under a small init in a new pid namespace */
  char **argv;
  /* --reset only */
  int reset;
  int new_network;       /* a fresh network namespace, lo up */
  int kill_others;       /* every other process of the pid namespace but init goes */
  const char *unmount[MAX_LIST]; /* mounts a test made, detached first */
  int n_unmount;
};

/* Ends a failed step: prints (or raises) "vitest-pool-rootless: <step>: <msg>[: strerror]". */
void die_step(int step, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));

/* plan.c */
void usage_error(const char *fmt, const char *arg) __attribute__((noreturn));
int parse_fd(const char *s);
void parse_plan(int argc, char **argv, struct plan *p);

/* layers.c */
ssize_t write_all(int fd, const void *buf, size_t len);
ssize_t read_retry(int fd, void *buf, size_t len);
/* One message on a Unix socket, with `fd` (>= 0) passed along (SCM_RIGHTS); EINTR retried. */
ssize_t send_with_fd(int sock, const void *buf, size_t len, int fd);
/* One message, and in *fd the fd that came with it (close-on-exec), or -1; EINTR retried. */
ssize_t recv_with_fd(int sock, void *buf, size_t len, int *fd);
int write_file(const char *path, const char *content);
int make_mountpoint(const char *path, int is_dir);
int bind_fd(int fd, const char *target);
int private_copy_bind(int src_fd, const char *src_path, const char *target);
int loopback_up(void);
void tmpfs_options(const struct layers *l, char *buf, size_t len);
void mount_writable_layers(const struct layers *l, const char *opts);
/* The reset between files; `*ready_network`, if >= 0, is a network namespace made ahead (used up). */
void reset_sandbox(const struct plan *p, int *ready_network);

/* forward.c */
/*
 * Forks the forwarder (call it in the host's network namespace); its control socket, or
 * -1. Its pid goes to *pid: the process that outlives the command reaps it.
 */
int start_forwarder(const struct forward *forwards, int n, pid_t *pid);
/*
 * Listens on each forward's inside port here and hands the listeners to the forwarder;
 * a port the host doesn't serve now (the forwarder checks) gets none.
 */
int send_forwards(int ctl, const struct forward *forwards, int n, int replace);
/* Sends connects to forwarded ports straight to the host, where it can (connect.c). */
void send_connect_listener(int ctl);

/* connect.c */
/* Makes this process's connect(2) calls notify a listener (seccomp); its fd, or -1. */
int install_connect_filter(void);
/* The host port a forwarded inside port leads to, for sockets of network namespace
   `netns` (0: any the forwarder serves) on 127.0.0.1 or ::1 (v6); -1 if none. */
typedef int (*host_port_fn)(ino_t netns, int v6, uint16_t inside);
/* Answers `notify_fd`'s connect(2) notifications on a thread of their own: redirected,
   or let through. `host_port` is called on that thread. */
int start_connects(int notify_fd, host_port_fn host_port);
/* Answers one of them, here (where no thread could be started); -1 when it can't. */
int answer_connect(int notify_fd, host_port_fn host_port);
/* The inode of the network namespace of socket `fd`; 0 if it can't be told. */
ino_t socket_netns(int fd);
struct sockaddr_storage;
/* The port of an IPv4 or IPv6 socket address; 0 for another family. */
uint16_t sockaddr_port(const struct sockaddr_storage *a);

/* networks.c */
/* The holder's socket for network namespaces made ahead; -1 with errno if it can't be made. */
int listen_networks(const char *path);
/* Makes network namespaces ahead and hands each out once, until stdin's EOF; never returns. */
void serve_networks(int listener) __attribute__((noreturn));
/* A network namespace made ahead, taken from the holder at `path`; -1 when there is none. */
int take_network(const char *path);

/* The environment variable that tells a sandboxed process the forwarder's control fd. */
#define FORWARDER_ENV "VITEST_POOL_ROOTLESS_FORWARDER"

#endif
