/*
 * Execute: the one loop that runs a plan's ops (plan.c made the list), for a launch, for
 * --hold and for a reused worker's --reset (addon.c). Each op says why it is there and
 * on which side it runs. A failed op records its step (fail.c) and the loop returns -1:
 * what that means is the caller's to say -- the launcher exits, the addon throws.
 *
 * The addon is built from this file too (ROOTLESS_ADDON): the ops only a launcher runs
 * -- making user and pid namespaces, the forwarder, exec -- are left out of it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <signal.h>
#include <unistd.h>

#include "sandbox.h"

void run_init(struct run *r) {
  memset(r, 0, sizeof *r);
  r->inner_fd = r->network_fd = r->forwarder = -1;
  r->forwarder_pid = -1;
  r->spawner = r->egress_exit = -1;
  r->spawner_pid = -1;
}

void close_ops(struct plan *p, struct run *r) {
  (void)r;
  for (int i = 0; i < p->n_ops; i++)
    if (p->ops[i].fd >= 0) {
      close(p->ops[i].fd);
      p->ops[i].fd = -1;
    }
}

/*
 * OP_PREPARE: what the ops after it take from outside, taken while it is in sight -- after
 * the mount namespace is made (bind mounts take sources from our own mount namespace
 * only), before any mount (a tmpfs on the temp dir hides the hosts file and the kept paths
 * when they live there, as they usually do), and in the host's network (the forwarder).
 */
static int prepare(struct plan *p, struct run *r, int from) {
  for (int i = from; i < p->n_ops; i++) {
    struct op *op = &p->ops[i];
    if (op->kind == OP_HOSTS && (op->fd = open(op->arg, O_RDONLY | O_CLOEXEC)) < 0)
      return fail(STEP_OPEN_HOSTS, "can't open hosts file %s", op->arg);
    if (op->kind == OP_NSSWITCH && (op->fd = open(op->arg, O_RDONLY | O_CLOEXEC)) < 0)
      return fail(STEP_NSSWITCH, "can't open %s", op->arg);
    if (op->kind == OP_RESOLV && (op->fd = open(op->arg, O_RDONLY | O_CLOEXEC)) < 0)
      return fail(STEP_NSSWITCH, "can't open %s", op->arg);
    if (op->kind == OP_KEEP && !op->flag && (op->fd = open_source(op->arg, &op->is_dir)) < 0)
      return fail(STEP_OPEN_KEEP, "can't open %s", op->arg);
#ifndef ROOTLESS_ADDON
    /*
     * The forwarder is forked here, in the host's network namespace, which it stays in
     * (relay.c): the ports this plan forwards reach the host's loopback through it.
     */
    if (op->kind == OP_FORWARD && !op->flag) {
      if ((r->forwarder = start_forwarder(p->forwards, p->n_forwards, p->ranges, p->n_ranges, p->forward_host_fd, &r->forwarder_pid)) < 0)
        return fail(STEP_FORWARD, "can't start the forwarder");
      /* the host's channel is the forwarder's alone: nothing of the sandbox may add ports */
      if (p->forward_host_fd >= 0) close(p->forward_host_fd), p->forward_host_fd = -1;
    }
    /* the egress helpers' spawner stays in the host's network too (egress.c): it starts
       the helper on our network namespace once there is one, and on a reused worker's
       fresh ones; not needed where the holder's namespace, helper running, is ours */
    if (op->kind == OP_EGRESS && !op->flag && (r->network_fd < 0 || getenv(RESET_ENV)) && (r->spawner = start_egress_spawner(p, 1, &r->spawner_pid)) < 0)
      return fail(STEP_EGRESS, "can't start the egress helpers' spawner");
    /* the host's way in to a port of the sandbox: a Unix socket in the host's tree */
    if (op->kind == OP_PUBLISH && (op->fd = listen_unix(op->arg)) < 0) return fail(STEP_FORWARD, "can't listen on %s", op->arg);
#else
    (void)r;
#endif
  }
  return 0;
}

/*
 * OP_OPEN_FLOOR: every kept path of the ops after it, opened before any upper tmpfs, so
 * each resolves as the locked floor shows it; one a later tmpfs of the plan hides there
 * (a --keep listed with the wrong --tmpfs) is hidden on the upper layer too: not bound.
 */
static int open_floor(struct plan *p, int from) {
  for (int i = from; i < p->n_ops; i++) {
    struct op *op = &p->ops[i];
    if (op->kind != OP_KEEP || !op->flag) continue;
    op->fd = open_source(op->arg, &op->is_dir);
    if (op->fd < 0 && errno != ENOENT) return fail(STEP_KEEP, "can't open %s on the read-only floor", op->arg);
  }
  return 0;
}

/* OP_FORWARD: the sandbox's listeners on the forwarded ports, handed to the forwarder. */
static int forward(struct plan *p, struct run *r, const struct op *op) {
  if (op->flag) {
    /* a reset: the worker's fresh network; the forwarder drops the old one's listeners */
    if (r->forwarder >= 0 && send_forwards(r->forwarder, p->forwards, p->n_forwards, 1) < 0)
      return fail(STEP_FORWARD, "can't listen on the forwarded ports in the fresh network namespace");
    return 0;
  }
  /*
   * Every connect(2) of CMD and its children asks the forwarder first from here on, which
   * connects the ones to forwarded ports straight to the host (connect.c). Only with a
   * pid namespace: a connect(2) that finds the forwarder gone fails (ENOSYS), and only
   * there does nothing of the sandbox outlive it; without one, the relay serves them all.
   * A worker that resets in place needs the one seccomp listener a process may have for
   * its own earlier networks (earlier-networks.c): the relay serves it too.
   */
  struct direct direct;
  int direct_ok = p->pid_namespace && !p->relay_only && !getenv(RESET_ENV) && prepare_direct(&direct, p->n_ranges > 0) == 0;
  /* the served ports of a range (--forward P:P within it) are the relay's fallback: with
     direct connects every port of the range reaches the host, served now or later */
  struct forward kept[MAX_LIST];
  int n = 0;
  for (int i = 0; i < p->n_forwards; i++)
    if (!direct_ok || direct.diag < 0 || !in_port_ranges(p->ranges, p->n_ranges, p->forwards[i].inside)) kept[n++] = p->forwards[i];
  if (send_forwards(r->forwarder, kept, n, 0) < 0) return fail(STEP_FORWARD, "can't listen on a forwarded port inside the sandbox");
  if (direct_ok) send_direct(r->forwarder, &direct);
  /*
   * Only a worker that resets its sandbox in place gets the control socket (its new
   * network's listeners go through it), and that worker's addon makes it close-on-exec
   * at once: a test's children never hold it.
   */
  if (getenv(RESET_ENV)) {
    char fd[16];
    snprintf(fd, sizeof fd, "%d", r->forwarder);
    if (fcntl(r->forwarder, F_SETFD, 0) < 0 || setenv(FORWARDER_ENV, fd, 1) < 0) return fail(STEP_FORWARD, "can't pass the forwarder on");
  }
  return 0;
}

/* A worker that resets its sandbox in place asks the spawner for its fresh networks' helpers. */
static int pass_spawner(struct run *r) {
  if (!getenv(RESET_ENV) || r->spawner < 0) return 0;
  char fd[16];
  snprintf(fd, sizeof fd, "%d", r->spawner);
  if (fcntl(r->spawner, F_SETFD, 0) < 0 || setenv(EGRESS_ENV, fd, 1) < 0) return fail(STEP_EGRESS, "can't pass the egress spawner on");
  return 0;
}

/*
 * OP_EGRESS: the user-mode network stack's helper on the network namespace we are in
 * (egress.c). One the holder made ahead has it already. The fd that keeps a slirp4netns
 * alive is held for as long as the sandbox: by the outer launcher and init with a pid
 * namespace (close-on-exec), else by the command itself.
 */
static int egress(struct plan *p, struct run *r, const struct op *op) {
  if (r->network_ready) {
    /* a launch's: taken from the holder; a reset's: made ahead on the addon's thread */
    if (r->egress_exit >= 0 && !p->pid_namespace && !op->flag) fcntl(r->egress_exit, F_SETFD, 0);
  } else {
    if (r->spawner < 0) {
      errno = 0;
      return fail(STEP_EGRESS, "the network namespace made ahead, with its helper, could not be joined");
    }
    int ns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (ns < 0) return fail(STEP_EGRESS, "can't open the sandbox's network namespace");
    int exit_w = -1, rc = attach_egress(r->spawner, ns, &exit_w);
    close(ns);
    if (rc < 0) return -1;
    if (r->egress_exit >= 0) close(r->egress_exit);
    r->egress_exit = exit_w;
    if (exit_w >= 0 && !p->pid_namespace && !op->flag) fcntl(exit_w, F_SETFD, 0);
  }
  /* with an allow-list, the helper's routes give way to the list's (egress-allow.c):
     here, where every sandbox's network passes once its helper is ready */
  if (p->n_egress_allow && restrict_egress(p) < 0) return -1;
  return op->flag ? 0 : pass_spawner(r);
}

/* OP_NEW_NETWORK: a fresh network namespace with lo up for the calling thread. */
static int new_network(struct run *r) {
  /* one made ahead (on the addon's thread) costs only a setns(2); used up either way */
  int made = r->network_fd;
  r->network_fd = -1;
#ifdef ROOTLESS_ADDON
  /* after the processes are stopped: what still listens here is the worker's own */
  remember_network();
#endif
  if (made >= 0) {
    int entered = setns(made, CLONE_NEWNET) == 0;
    close(made);
    if (entered) return 0;
  }
  r->network_ready = 0; /* not the one made ahead: its egress helper is still to start */
  if (unshare(CLONE_NEWNET) < 0) return fail(STEP_UNSHARE, "can't create a fresh network namespace");
  if (loopback_up() < 0) return fail(STEP_LOOPBACK, "can't bring up lo in the fresh network namespace");
  return 0;
}

static int run_op(struct plan *p, struct run *r, int i) {
  struct op *op = &p->ops[i];
  switch (op->kind) {
#ifndef ROOTLESS_ADDON
  case OP_TAKE_NETWORK:
    /* launcher, in the caller's namespaces: taken first, while the holder's socket in the
       run's state dir is in sight (a tmpfs may hide it later); OP_LOCK joins it. -1:
       none, and OP_LOCK makes one, as without the holder */
    r->network_fd = take_network(op->arg, p->egress_kind ? &r->egress_exit : NULL);
    return 0;
  case OP_NEW_USER:
    /* launcher: a helper forked in the caller's user namespace maps the new one (userns.c) */
    return new_user_namespace(p, op->flag);
  case OP_JOIN_USER:
    /* launcher: the warm holder's namespaces, mapped once per run: no setuid helper here */
    return join_user_namespace(p->userns_fd, &r->inner_fd);
  case OP_HOLD:
    /* launcher, as the warm holder: stays until the pool closes stdin (userns.c) */
    hold(p, r);
  case OP_LOCK:
    /* launcher, outer user namespace: from here on no test can unmount or move our mounts */
    return lock_mounts(p, r);
  case OP_PID_NAMESPACE:
    /* the outer launcher stays behind as the caller's child: it must die with it too */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) return fail(STEP_PDEATHSIG, "can't set PR_SET_PDEATHSIG");
    errno = 0;
    if (getppid() != r->parent) return fail(STEP_PDEATHSIG, "parent process exited before the sandbox started");
    if (enter_pid_namespace(r->forwarder_pid) < 0) return -1;
    r->parent = 1; /* from here on, our parent is the namespace's init */
    return 0;
  case OP_DROP_CAPS:
    /* launcher, after its last mount and open: root that still sees permission bits */
    if (drop_permission_caps() < 0) return fail(STEP_SETID, "can't drop the capabilities that bypass file permissions");
    return 0;
  case OP_PUBLISH:
    /* launcher, in the sandbox's network with lo up: the publisher connects here */
    if (start_publisher(op->fd, p->publish_port, getpid()) < 0) return fail(STEP_FORWARD, "can't start the process that publishes port %u", (unsigned)p->publish_port);
    op->fd = -1;
    return 0;
  case OP_STAY:
    /* without a pid namespace the forwarder is CMD's child once we exec: when CMD ends it
       would wait, a zombie, for the host's init to reap it (a second or more on some) */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) return fail(STEP_PDEATHSIG, "can't set PR_SET_PDEATHSIG");
    errno = 0;
    if (getppid() != r->parent) return fail(STEP_PDEATHSIG, "parent process exited before the sandbox started");
    if (stay_for_forwarder(r->forwarder_pid) < 0) return -1;
    r->parent = getppid(); /* the launcher that stayed */
    return 0;
  case OP_EXEC:
    execvp(p->argv[0], p->argv);
    return fail(STEP_EXEC, "can't run %s", p->argv[0]);
#endif
  case OP_PREPARE:
    return prepare(p, r, i + 1);
  case OP_SETID:
    /* Supplementary groups from outside show up as "nogroup" and can't be used for
       anything but confusion; dropped where setgroups is allowed. */
    if (setresgid(0, 0, 0) < 0) return fail(STEP_SETID, "can't become gid 0 in the sandbox");
    if (setgroups(0, NULL) < 0 && errno != EPERM) return fail(STEP_SETID, "can't drop supplementary groups");
    if (setresuid(0, 0, 0) < 0) return fail(STEP_SETID, "can't become uid 0 in the sandbox");
    return 0;
  case OP_MOUNT_PRIVATE:
    /* before any mount: nothing we mount may propagate back to the host */
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) return fail(STEP_MOUNT_PRIVATE, "can't make / rprivate");
    return 0;
  case OP_HOSTS:
    /* a private, writable copy per sandbox -- binding the run's file itself would let one
       test's edit leak into every later sandbox. The copy lives on a small tmpfs over the
       file's own directory (the run's state dir), detached again once the copy is bound. */
    if (private_copy_bind(op->fd, op->arg, "/etc/hosts") < 0) return fail(STEP_HOSTS, "can't put a private copy of %s on /etc/hosts", op->arg);
    close(op->fd), op->fd = -1;
    return 0;
  case OP_NSSWITCH:
    /* names are looked up in the hosts file alone: the sandbox reaches no DNS server, and
       glibc would answer every other name "temporary failure" (EAI_AGAIN) where an
       offline machine says "not found" (ENOTFOUND) */
    if (private_copy_bind(op->fd, op->arg, "/etc/nsswitch.conf") < 0)
      return fail(STEP_NSSWITCH, "can't put a private copy of %s on /etc/nsswitch.conf", op->arg);
    close(op->fd), op->fd = -1;
    return 0;
  case OP_TMPFS:
    /* Each target gets two layers. The floor, before OP_LOCK, is made read-only and holds
       only the kept paths; locked, no test can ever uncover what the host has there. The
       writable layer the test sees goes on top after the lock, not locked itself: a reset
       replaces it. A test that unmounts it finds the floor, never the host's directory. */
    if (mount("tmpfs", op->arg, "tmpfs", MS_NOSUID | MS_NODEV, p->tmpfs_options) < 0) return fail(STEP_TMPFS, "can't mount a tmpfs on %s", op->arg);
    return 0;
  case OP_KEEP:
    /* what the plan lists for this tmpfs (project, node, caches): which path lies under
       which tmpfs was decided by the plan, not here. -1: not on the floor, not bound */
    if (op->fd < 0) return 0;
    if (make_mountpoint(op->arg, op->is_dir) < 0) return fail(STEP_KEEP, "can't create %s", op->arg);
    if (bind_fd(op->fd, op->arg) < 0) return fail(STEP_KEEP, "can't bind %s back", op->arg);
    close(op->fd), op->fd = -1;
    return 0;
  case OP_READ_ONLY:
    if (mount(NULL, op->arg, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
      return fail(STEP_TMPFS, "can't make the tmpfs under %s read-only", op->arg);
    return 0;
  case OP_OPEN_FLOOR:
    return open_floor(p, i + 1);
  case OP_WRITABLE:
    /* launcher, outer mount namespace, rprivate: a copy of the tree as it is now, its
       mounts writable as on the host; placed back once the rest is read-only */
    if ((op->fd = clone_tree(op->arg)) < 0) return fail(STEP_KEEP, "can't copy the mounts at %s, to keep it writable", op->arg);
    return 0;
  case OP_READ_ONLY_ROOT:
    /* every mount of the tree read-only, down to the host's own; once OP_LOCK copies the
       tree into the nested namespace the kernel locks that, so no test can remount it
       writable. Mounts made after this are new and writable: the tmpfs layers, the
       private hosts files */
    if (read_only_tree(op->arg) < 0) {
      if (errno == ENOSYS) return fail(STEP_KEEP, "can't make %s read-only: the read-only host needs Linux 5.12 or newer (mount_setattr)", op->arg);
      return fail(STEP_KEEP, "can't make %s read-only", op->arg);
    }
    return 0;
  case OP_PLACE_WRITABLE:
    /* each copy back where it came from, over the read-only tree (a path under a tmpfs
       target is on the floor: kept, as the plan listed it) */
    for (int w = 0; w < i; w++) {
      struct op *copy = &p->ops[w];
      if (copy->kind != OP_WRITABLE || copy->fd < 0) continue;
      if (place_tree(copy->fd, copy->arg) < 0) return fail(STEP_KEEP, "can't mount %s back writable", copy->arg);
      close(copy->fd), copy->fd = -1;
    }
    return 0;
  case OP_HOSTNAME:
    if (sethostname(op->arg, strlen(op->arg)) < 0) return fail(STEP_HOSTNAME, "can't set hostname %s", op->arg);
    return 0;
  case OP_LOOPBACK:
    /* a new network namespace starts with lo down: 127.0.0.1 would be unreachable (one
       the holder made ahead has it up already) */
    if (!r->network_ready && loopback_up() < 0) return fail(STEP_LOOPBACK, "can't bring up lo");
    return 0;
  case OP_FORWARD:
    return forward(p, r, op);
  case OP_EGRESS:
    return egress(p, r, op);
  case OP_RESOLV:
    /* with egress, names the hosts file doesn't know go to the helper's DNS forwarder,
       which asks the host's resolvers */
    if (private_copy_bind(op->fd, op->arg, "/etc/resolv.conf") < 0)
      return fail(STEP_NSSWITCH, "can't put a private copy of %s on /etc/resolv.conf", op->arg);
    close(op->fd), op->fd = -1;
    return 0;
  case OP_CHDIR:
    /* the old cwd may now be hidden under a tmpfs; resolved again through the new tree */
    if (r->have_cwd && chdir(r->cwd) < 0) return fail(STEP_CHDIR, "can't enter %s (add it to the kept paths)", r->cwd);
    return 0;
  case OP_SESSION:
    /* no controlling terminal: a test can't push keystrokes into the user's shell (TIOCSTI) */
    if (setsid() < 0 && errno != EPERM) return fail(STEP_SESSION, "can't start a new session");
    return 0;
  case OP_PDEATHSIG:
    /* Die with the parent. PDEATHSIG is cleared by credential changes, so it is set last,
       and the parent may already be gone by now: checked after arming it. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) return fail(STEP_PDEATHSIG, "can't set PR_SET_PDEATHSIG");
    errno = 0;
    if (getppid() != r->parent) return fail(STEP_PDEATHSIG, "parent process exited before the sandbox started");
    return 0;
  case OP_IN_SANDBOX:
    /* a reset, in the worker: never on the host, where it would unmount and mount over
       the host's own directories */
    errno = 0;
    if (in_initial_user_namespace()) return fail(STEP_USAGE, "--reset runs only inside a sandbox, and this process is in the host's user namespace");
    return 0;
  case OP_KILL_OTHERS:
    return kill_others();
  case OP_UNMOUNT:
    if (umount2(op->arg, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
      return fail(STEP_TMPFS, "can't unmount %s, which an earlier test file mounted", op->arg);
    return 0;
  case OP_UNCOVER:
    if (uncover(op->arg) == 0) return 0;
    if (errno == E2BIG) {
      errno = 0;
      return fail(STEP_TMPFS, "more than 64 mounts stacked on %s", op->arg);
    }
    return fail(STEP_TMPFS, "can't unmount what covers %s", op->arg);
  case OP_MKDIR:
    /* a temp dir inside another tmpfs target (TMPDIR=/tmp/user/1000 under /tmp): private as
       the tmpfs, world-writable and sticky like it */
    if (make_mountpoint(op->arg, 1) < 0 || chmod(op->arg, 01777) < 0) return fail(STEP_TMPFS, "can't make the temp dir %s", op->arg);
    return 0;
  case OP_NEW_NETWORK:
    /* the worker's main thread, where every socket of the test's code is made (libuv's
       pool threads resolve names and touch files, which the network namespace doesn't
       change) */
    return new_network(r);
  default:
    errno = 0;
    return fail(STEP_USAGE, "op %d is the launcher's alone", (int)op->kind);
  }
}

int run_ops(struct plan *p, struct run *r) {
  for (int i = 0; i < p->n_ops; i++)
    if (run_op(p, r, i) < 0) return -1;
  return 0;
}
