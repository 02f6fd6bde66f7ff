/*
 * What the launcher (launcher.c) and the in-process reset (addon.c) share: the plan they
 * are handed -- its options and the ordered list of setup operations made from them
 * (plan.c) -- and the one loop that runs that list (ops.c).
 *
 * One error rule: helpers return -1 with errno set; a step that fails records its one
 * line with fail() (fail.c) and returns -1 up to the owner of the policy: the launcher
 * prints it and exits with the step's status, the addon throws it to JavaScript. Only
 * code that runs in the launcher's processes alone (launcher.c, userns.c, pidns.c,
 * networks.c) may die on the spot, with die_step().
 */
#ifndef VPR_SANDBOX_H
#define VPR_SANDBOX_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "steps.h"

#define MAX_LIST 64
/* Every op a plan can hold: a fixed few, three per tmpfs, two per kept path, one per unmount, per dir and per writable path. */
#define MAX_OPS (32 + 3 * MAX_LIST + 2 * MAX_LIST + MAX_LIST + MAX_LIST + MAX_LIST)
/* The longest --tmpfs-size taken: "50%", "512m", "1073741824k" all fit. */
#define MAX_TMPFS_SIZE 32

struct id_range {
  unsigned long inside, outside, count;
};

/* A port of the sandbox's loopback whose connections go to a port of the host's (forward.c). */
struct forward {
  uint16_t inside, host;
};

/* --forward-range: host ports from `from` to `to`, each reached inside at its own number. */
struct port_range {
  uint16_t from, to;
};

/* One range of --egress-allow: an IPv4 or IPv6 prefix, host bits clear. */
struct egress_allow {
  int family;
  unsigned char addr[16];
  int len;
};

/*
 * The setup operations, each one thing the sandbox gets, run in list order by run_ops()
 * (ops.c), where each case says why it is there and on which side it runs. plan.c makes
 * the list: for a launch, for --hold, or for --reset.
 */
enum op_kind {
  OP_TAKE_NETWORK,  /* a network namespace the warm holder made ahead (--networks) */
  OP_NEW_USER,      /* a user namespace mapped by a helper outside (--uid-map, --gid-map) */
  OP_JOIN_USER,     /* the warm holder's user namespaces (--userns-fd) */
  OP_HOLD,          /* --hold: keep the user namespace for the run; never returns */
  OP_PREPARE,       /* what later ops take from outside: files opened, the forwarder started */
  OP_SETID,         /* uid and gid 0 */
  OP_MOUNT_PRIVATE, /* nothing propagates to the host */
  OP_HOSTS,         /* a private copy of `arg` on /etc/hosts (--hosts-file) */
  OP_NSSWITCH,      /* a private copy of `arg` on /etc/nsswitch.conf (--nsswitch-file) */
  OP_RESOLV,        /* a private copy of `arg` on /etc/resolv.conf (--resolv-file) */
  OP_TMPFS,         /* a tmpfs on `arg` (--tmpfs, --tmpfs-size) */
  OP_KEEP,          /* `arg` bound back onto the tmpfs below it (--keep) */
  OP_READ_ONLY,     /* the tmpfs on `arg`, the floor, made read-only */
  OP_LOCK,          /* the nested user namespace that locks every mount so far */
  OP_OPEN_FLOOR,    /* the kept paths, opened as the locked floor shows them */
  OP_HOSTNAME,      /* --hostname */
  OP_LOOPBACK,      /* lo up */
  OP_FORWARD,       /* the forwarded ports' listeners (--forward) */
  OP_EGRESS,        /* the user-mode network stack's helper on our network (--egress) */
  OP_CHDIR,         /* the caller's cwd, resolved again in the new tree */
  OP_SESSION,       /* --new-session */
  OP_PUBLISH,       /* the sandbox's port reached from the host through a Unix socket (--publish) */
  OP_DROP_CAPS,     /* root that still sees permission bits (--enforce-permissions) */
  OP_PID_NAMESPACE, /* --pid-namespace */
  OP_STAY,          /* no pid namespace, a forwarder: the launcher waits for CMD and reaps it */
  OP_PDEATHSIG,     /* die with the caller */
  OP_EXEC,          /* -- CMD */
  OP_IN_SANDBOX,    /* --reset: refuse to run on the host */
  OP_KILL_OTHERS,   /* --kill-others */
  OP_UNMOUNT,       /* --unmount `arg` */
  OP_UNCOVER,       /* unmount what covers `arg`, down to the locked floor */
  OP_MKDIR,         /* `arg`, an empty temp dir on a tmpfs's writable layer (--tmpfs-dir) */
  OP_NEW_NETWORK,   /* --new-network */
  OP_WRITABLE,      /* a copy of the tree at `arg` taken while still writable (--writable) */
  OP_READ_ONLY_ROOT,/* every mount of the host's tree made read-only (--read-only) */
  OP_PLACE_WRITABLE,/* each OP_WRITABLE copy mounted back on its path */
};

struct op {
  enum op_kind kind;
  const char *arg; /* the path or name it acts on */
  int fd;          /* OP_HOSTS, OP_NSSWITCH, OP_RESOLV, OP_KEEP: its source, opened ahead; OP_WRITABLE:
                      the detached copy; -1 until then */
  int flag;        /* OP_KEEP: 1 when opened from the locked floor (OP_OPEN_FLOOR), where it may
                      be missing; OP_NEW_USER: also a mount namespace; OP_FORWARD: a reset's */
  int is_dir;      /* OP_KEEP: the source is a directory */
};

/* A sandbox to build (launcher), a user namespace to hold (--hold), or a reset (--reset, addon). */
struct plan {
  struct id_range uid_map[MAX_LIST];
  int n_uid_map;
  struct id_range gid_map[MAX_LIST];
  int n_gid_map;
  const char *newuidmap; /* NULL: write maps directly */
  const char *newgidmap;
  int userns_fd;         /* >= 0: join this user namespace instead of creating one */
  int status_fd;         /* --status-fd, or -1 (launcher.c takes it before parsing) */
  struct { const char *path; int first_keep, n_keep; } tmpfs[MAX_LIST]; /* in mount order */
  int n_tmpfs;
  const char *keep[MAX_LIST]; /* grouped by tmpfs: each --keep follows its --tmpfs */
  int n_keep;
  const char *dirs[MAX_LIST]; /* --tmpfs-dir: made anew on a tmpfs's writable layer */
  int n_dirs;
  const char *writable[MAX_LIST]; /* --writable: what stays writable of a --read-only host */
  int n_writable;
  int read_only;         /* --read-only: the host's file system read-only inside */
  const char *tmpfs_size;
  char tmpfs_options[32 + MAX_TMPFS_SIZE]; /* mount options of every tmpfs target */
  const char *hosts_file;
  const char *nsswitch_file;
  const char *resolv_file;
  const char *hostname;
  struct forward forwards[MAX_LIST];
  int n_forwards;
  struct port_range ranges[MAX_LIST]; /* --forward-range: by direct connects, no listener per port */
  int n_ranges;
  int forward_host_fd;   /* --forward-host-fd: the host's own channel to the forwarder (more ports), or -1 */
  int relay_only;        /* forwarded connections all go through the relay (no direct connects) */
  uint16_t publish_port; /* --publish: the sandbox's port the host reaches... */
  const char *publish_path; /* ...through this Unix socket, made before any mount */
  int enforce_permissions;
  int host_network;
  enum { EGRESS_NONE, EGRESS_PASTA, EGRESS_SLIRP } egress_kind; /* --egress KIND:PATH */
  const char *egress_path;
  struct egress_allow egress_allow[MAX_LIST]; /* --egress-allow: the only ranges reached */
  int n_egress_allow;
  int new_session;
  int hold;              /* create only the user namespace, report, wait for stdin EOF */
  const char *networks;  /* --hold: serve network namespaces made ahead here; else take one */
  int pid_namespace;     /* run CMD as pid 2 under a small init in a new pid namespace */
  char **argv;
  int reset;
  int new_network;
  int kill_others;
  const char *unmount[MAX_LIST];
  int n_unmount;
  /* what to do, in order */
  struct op ops[MAX_OPS];
  int n_ops;
};

/* What run_ops() carries from one op to the next. */
struct run {
  pid_t parent;        /* the process we must die with */
  int inner_fd;        /* the warm nested user namespace OP_LOCK joins; -1: made there */
  int network_fd;      /* a network namespace made ahead, used up by OP_LOCK or OP_NEW_NETWORK */
  int network_ready;   /* OP_LOCK joined it: lo is up already */
  int forwarder;       /* the forwarder's control socket, or -1 */
  pid_t forwarder_pid; /* reaped by the process that outlives the command */
  int spawner;         /* the egress helpers' spawner (egress.c), or -1 */
  pid_t spawner_pid;
  int egress_exit;     /* held while the sandbox's helper should live (slirp4netns), or -1 */
  int have_cwd;
  char cwd[PATH_MAX];
};

/* fail.c: the last failed step and its one line, "vitest-pool-rootless: <step>: <msg>[: strerror]" */
struct failure {
  int step;
  char line[1024];
};
extern struct failure failure;
/* Records a failed step (with strerror(errno) unless errno is 0); returns -1. Control
   characters in the message become '?': an argv can't split or forge the line. */
int fail(int step, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Launcher processes only (launcher.c): prints the failure and exits with its step. */
void die_failure(void) __attribute__((noreturn));
/* Launcher processes only: the step's status on the status fd and as exit status, no line. */
void exit_step(int step) __attribute__((noreturn));
void die_step(int step, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));

/* plan.c */
int parse_fd(const char *s);
/* Parses argv into `p` and makes its op list; -1 (failure: usage) when argv can't be carried out. */
int parse_plan(int argc, char **argv, struct plan *p);

/* ops.c */
void run_init(struct run *r);
/* Runs the plan's ops in order: 0, or -1 with `failure` set. OP_EXEC and OP_HOLD don't return. */
int run_ops(struct plan *p, struct run *r);
/* Closes what the ops opened and did not use up (after a failure, say). */
void close_ops(struct plan *p, struct run *r);

/* fdpass.c */
ssize_t write_all(int fd, const void *buf, size_t len);
ssize_t read_retry(int fd, void *buf, size_t len);
int write_file(const char *path, const char *content);
/* One message on a Unix socket, with `fd` (>= 0) passed along (SCM_RIGHTS); EINTR retried. */
ssize_t send_with_fd(int sock, const void *buf, size_t len, int fd);
/*
 * One message, and in *fd the one fd that came with it (close-on-exec), or -1. A message
 * that came with more than one fd, or didn't fit `len`, is refused whole: every fd that
 * came with it is closed, and the result is -1 with errno EBADMSG. EINTR retried.
 */
ssize_t recv_with_fd(int sock, void *buf, size_t len, int *fd);
/*
 * Forks a helper process (the forwarder, the egress spawner) that holds nothing of the
 * sandbox's: stdio on /dev/null, no other fd but its end of a SOCK_SEQPACKET pair, at 3,
 * and *keep if `keep` points at one (in the helper *keep is then that fd's copy, or -1).
 * In the helper: 0, *ctl its end. In the caller: the pid, *ctl the other end. -1 with errno.
 */
pid_t fork_helper(int *ctl, int *keep);

/* mounts.c */
/* Opens `path` as a bind source (O_PATH) and tells whether it is a directory. */
int open_source(const char *path, int *is_dir);
int make_mountpoint(const char *path, int is_dir);
int bind_fd(int fd, const char *target);
int private_copy_bind(int src_fd, const char *src_path, const char *target);
/* Unmounts what covers `path` down to the first locked mount; -1 with errno (E2BIG: too many). */
int uncover(const char *path);
/* A detached copy of the mount tree at `path`, as it is now (open_tree(2)); its fd, or -1. */
int clone_tree(const char *path);
/* Every mount at and under `path` made read-only (mount_setattr(2), AT_RECURSIVE). */
int read_only_tree(const char *path);
/* Mounts the detached tree `fd` on `path` (move_mount(2)). */
int place_tree(int fd, const char *path);

/* loopback.c */
int loopback_up(void);

/* reset.c */
int in_initial_user_namespace(void);
/* SIGKILLs what an earlier file let go in the pid namespace (not init, us or our session's children) and waits; records its failure. */
int kill_others(void);

/* sock-diag.c: one sock_diag(7) dump over the NETLINK_SOCK_DIAG socket `nl` of the sockets
   of `family` and `protocol` in `states` (a bit per kernel TCP state), each message handed
   to `each` (a const struct inet_diag_msg *); 0 once the dump ended, -1 with errno */
typedef void sock_diag_each(const void *message, void *ctx);
int sock_diag_dump(int nl, int family, int protocol, uint32_t states, sock_diag_each *each, void *ctx);

/* listeners.c, the addon's alone: the listening TCP (and bound UDP) sockets of this thread's network */
struct bound_socket {
  int protocol; /* IPPROTO_TCP or IPPROTO_UDP */
  int family;
  uint16_t port;
  uint32_t inode;
  uint32_t address[4]; /* network order, as sock_diag gives it */
};
/* Up to `max` of them into `out`; their count, or -1 with errno. */
int bound_sockets(struct bound_socket *out, int max, int with_udp);

/* left-helpers.c, the addon's alone: egress helpers of networks a reset left, kept while a
   connection there may still use them */
/* A sock_diag socket of this thread's network (it answers for it after the thread leaves). */
int network_diag_socket(void);
/* The helper `exit_fd` ends (and `diag`, or -1) goes once its network needs it no more. */
void retire_helper(int exit_fd, int diag);
/* Ends the retired helpers whose network holds no connection to anywhere but loopback. */
void end_unneeded_helpers(void);

/* earlier-networks.c, the addon's alone: module servers of a reused worker stay reachable */
/* Before a reset leaves this thread's network namespace: kept if anything listens in it. */
void remember_network(void);
/* Once a kept network exists: the worker's connects to a port nobody listens on in its
   own network reach the earlier one's listener; -1 with errno where they can't. */
int reach_earlier_networks(void);

/* forward.c: the sandbox's side of the forwarder */
/*
 * Listens on each forward's inside port here and hands the listeners to the forwarder;
 * a port the host doesn't serve now (the forwarder checks) gets none. With `replace`,
 * the forwarder first drops the listeners it has (a reset's fresh network).
 */
int send_forwards(int ctl, const struct forward *forwards, int n, int replace);
/* Direct connects (connect.c), set up before the listeners go out: what 'N' and 'S' send. */
struct direct {
  int listener; /* the seccomp listener of this process and its children */
  int diag;     /* with ranges: a sock_diag socket of this network, or -1 */
};
/*
 * Makes this process's connects (and its children's) ask the forwarder from here on:
 * 0, or -1 where they can't (then the relay serves every forwarded port). `ranges`: the
 * plan has --forward-range, whose ports then need no listener here.
 */
int prepare_direct(struct direct *d, int ranges);
/* Hands what prepare_direct() made to the forwarder, and closes it here. */
void send_direct(int ctl, struct direct *d);

/* Whether `port` lies in one of the `n` ranges. */
static inline int in_port_ranges(const struct port_range *r, int n, uint16_t port) {
  for (int i = 0; i < n; i++)
    if (port >= r[i].from && port <= r[i].to) return 1;
  return 0;
}

/* relay.c: the forwarder's process */
/*
 * Forks the forwarder (call it in the host's network namespace); its control socket, or
 * -1. Its pid goes to *pid: the process that outlives the command reaps it. `host_fd`
 * (or -1) is the host's own channel for ports added later: the forwarder alone keeps it.
 */
int start_forwarder(const struct forward *forwards, int n, const struct port_range *ranges, int n_ranges, int host_fd, pid_t *pid);

/* connect.c */
/* Makes this process's connect(2) calls notify a listener (seccomp); its fd, or -1. */
int install_connect_filter(void);
/* The inode of the network namespace of socket `fd`; 0 if it can't be told. */
ino_t socket_netns(int fd);
struct sockaddr_storage;
/* The port of an IPv4 or IPv6 socket address; 0 for another family. */
uint16_t sockaddr_port(const struct sockaddr_storage *a);

/* egress.c */
/* Forks the spawner of egress helpers (call it in the host's network namespace), in a copy of
   the current mount namespace with `own_mounts`; its socket, or -1. */
int start_egress_spawner(const struct plan *p, int own_mounts, pid_t *pid);
/* Starts a helper on the network namespace `ns` and waits for it: 0 (with the fd that keeps
   it alive, or -1, in *exit_w), or -1 with `failure` set. */
int attach_egress(int spawner, int ns, int *exit_w);
/* attach_egress in two halves, for a caller that serves others while the helper starts:
   the request (0, or -1 with `failure` set), then, once `spawner` is readable, the answer. */
int request_egress(int spawner, int ns);
int egress_answer(int spawner, int *exit_w);
/* egress-allow.c */
/* Parses ADDR or ADDR/LEN (IPv4 or IPv6) into *out: 0, or -1 where it is neither. */
int parse_egress_allow(const char *text, struct egress_allow *out);
/* Restricts this network namespace's routes (its helper running) to p's allow-list and the
   helper's DNS forwarder; anything else is unreachable. 0, or -1 with `failure` set. */
int restrict_egress(const struct plan *p);
/* caps.c: drops the capabilities that bypass file permissions (bounding set included) */
int drop_permission_caps(void);

/* publish.c: the launcher's alone */
/* A listening Unix socket at `path` (close-on-exec); -1 with errno. */
int listen_unix(const char *path);
/* Forks the process that connects each client of `listener` to this network's `port`. */
int start_publisher(int listener, uint16_t port, pid_t parent);

/* userns.c, pidns.c, networks.c: the launcher's alone */
int new_user_namespace(const struct plan *p, int with_mounts);
int join_user_namespace(int userns_fd, int *inner_fd);
int lock_mounts(const struct plan *p, struct run *r);
void hold(const struct plan *p, struct run *r) __attribute__((noreturn));
int enter_pid_namespace(pid_t forwarder);
/* Returns in a child that goes on to exec CMD; this process mirrors CMD's end after reaping `forwarder`. */
int stay_for_forwarder(pid_t forwarder);
/* The holder's socket for network namespaces made ahead; -1 with errno if it can't be made. */
int listen_networks(const char *path);
/* Makes network namespaces ahead and hands each out once, until stdin's EOF; never returns. */
void serve_networks(int listener, const struct plan *p) __attribute__((noreturn));
/* A network namespace made ahead, taken from the holder at `path`; -1 when there is none.
   With `egress_exit`, the fd that keeps its egress helper alive, if one comes along. */
int take_network(const char *path, int *egress_exit);

/* The environment variable that tells a reused worker the forwarder's control fd. */
#define FORWARDER_ENV "VITEST_POOL_ROOTLESS_FORWARDER"
/* The environment variable that tells a reused worker the egress spawner's fd. */
#define EGRESS_ENV "VITEST_POOL_ROOTLESS_EGRESS"
/* Set (src/wire/wire.ts) when the worker will reset its sandbox: only then does it get that fd. */
#define RESET_ENV "VITEST_POOL_ROOTLESS_RESET"

#endif
