/*
 * The launcher's user namespaces: the outer one, mapped from outside by a helper process
 * (newuidmap/newgidmap for subordinate ranges, or direct writes), or joined from the warm
 * holder; the nested one that locks the sandbox's mounts; and the holder itself (--hold).
 * The launcher's alone: these run before anything of the sandbox exists.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox.h"

extern char **environ;

static void format_map(char *buf, size_t len, const struct id_range *r, int n) {
  size_t used = 0;
  buf[0] = 0;
  for (int k = 0; k < n && used < len; k++)
    used += (size_t)snprintf(buf + used, len - used, "%lu %lu %lu\n", r[k].inside, r[k].outside, r[k].count);
}

/* A running newuidmap/newgidmap, its stderr captured so its reason becomes part of ours. */
struct map_helper {
  const char *path;
  pid_t pid;     /* -1: could not be started, spawn_errno says why */
  int spawn_errno;
  int stderr_fd;
};

/* Starts HELPER PID INSIDE OUTSIDE COUNT... with its stderr on a pipe; prints nothing. */
static void spawn_map_helper(struct map_helper *h, const char *helper, pid_t target, const struct id_range *r, int n) {
  char *args[3 + 3 * MAX_LIST + 1];
  char nums[1 + 3 * MAX_LIST][24];
  int a = 0;
  args[a++] = (char *)helper;
  snprintf(nums[0], sizeof nums[0], "%d", (int)target);
  args[a++] = nums[0];
  for (int k = 0; k < n; k++) {
    snprintf(nums[1 + 3 * k], 24, "%lu", r[k].inside);
    snprintf(nums[2 + 3 * k], 24, "%lu", r[k].outside);
    snprintf(nums[3 + 3 * k], 24, "%lu", r[k].count);
    args[a++] = nums[1 + 3 * k];
    args[a++] = nums[2 + 3 * k];
    args[a++] = nums[3 + 3 * k];
  }
  args[a] = NULL;
  h->path = helper;
  h->pid = -1;
  h->stderr_fd = -1;
  int err[2];
  if (pipe2(err, O_CLOEXEC) < 0) { h->spawn_errno = errno; return; }
  posix_spawn_file_actions_t actions;
  int rc = posix_spawn_file_actions_init(&actions);
  if (rc == 0) rc = posix_spawn_file_actions_adddup2(&actions, err[1], 2);
  if (rc == 0) rc = posix_spawn(&h->pid, helper, &actions, NULL, args, environ);
  posix_spawn_file_actions_destroy(&actions);
  close(err[1]);
  if (rc != 0) {
    h->pid = -1;
    h->spawn_errno = rc;
    close(err[0]);
    return;
  }
  h->stderr_fd = err[0];
}

/*
 * Waits for a map helper: 0 if it succeeded, else -1 with `why` saying what happened --
 * the spawn error, or its exit status and what it printed (its stderr lines joined with
 * "; "), so the launcher's one line carries the helper's own reason.
 */
static int wait_map_helper(struct map_helper *h, char *why, size_t len) {
  if (h->pid < 0) {
    snprintf(why, len, "can't run it: %s", strerror(h->spawn_errno));
    return -1;
  }
  char said[256], sink[256];
  size_t used = 0;
  ssize_t n;
  while (used < sizeof said - 1 && (n = read_retry(h->stderr_fd, said + used, sizeof said - 1 - used)) > 0) used += (size_t)n;
  /* the rest, unread: to EOF before waiting, or a helper blocked on a full pipe never exits */
  while (read_retry(h->stderr_fd, sink, sizeof sink) > 0) {}
  close(h->stderr_fd);
  while (used > 0 && (said[used - 1] == '\n' || said[used - 1] == ' ')) used--;
  int status;
  while (waitpid(h->pid, &status, 0) < 0)
    if (errno != EINTR) { snprintf(why, len, "can't wait for it: %s", strerror(errno)); return -1; }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
  const char *name = strrchr(h->path, '/') ? strrchr(h->path, '/') + 1 : h->path;
  int w = WIFEXITED(status) ? snprintf(why, len, "%s exited with status %d", name, WEXITSTATUS(status))
                            : snprintf(why, len, "%s was killed by signal %d", name, WTERMSIG(status));
  if (used > 0 && w >= 0 && (size_t)w + 2 < len) {
    /* ": " and what it said, its lines joined: our message stays one line */
    size_t at = (size_t)w;
    why[at++] = ':';
    why[at++] = ' ';
    for (size_t k = 0; k < used && at + 2 < len; k++) {
      if (said[k] == '\n') { why[at++] = ';'; why[at++] = ' '; }
      else why[at++] = said[k];
    }
    why[at] = 0;
  }
  return -1;
}

/*
 * Writes /proc/PID/{uid,gid}_map from the parent user namespace. Only a process there
 * can hold CAP_SETUID over the new namespace's parent, which any map other than "my
 * own id alone" needs -- even for real root (user_namespaces(7), "Defining user and
 * group ID mappings"). Without that capability, setgroups must be denied before a gid
 * map can be written.
 */
static int write_map_direct(pid_t pid, const char *which, const struct id_range *r, int n) {
  char path[64], map[64 * MAX_LIST];
  format_map(map, sizeof map, r, n);
  if (strcmp(which, "gid_map") == 0 && geteuid() != 0) {
    snprintf(path, sizeof path, "/proc/%d/setgroups", (int)pid);
    if (write_file(path, "deny") < 0) return -1;
  }
  snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, which);
  return write_file(path, map);
}

/* Which maps a helper writes, and how: through newuidmap/newgidmap, or directly (NULL). */
struct map_job {
  const struct id_range *uid_map, *gid_map;
  int n_uid_map, n_gid_map;
  const char *newuidmap, *newgidmap;
};

/*
 * Forked before unshare(): this process stays in the parent user namespace, which is
 * where the maps must be written from (by newuidmap for subordinate ranges, or
 * directly). It waits for one byte ("unshared"), writes both maps, and answers with
 * "k", or "u"/"g" followed by the reason.
 */
static pid_t start_map_helper(const struct map_job *job, int *go_fd, int *done_fd) {
  int go[2], done[2];
  if (pipe2(go, O_CLOEXEC) || pipe2(done, O_CLOEXEC)) return -1;
  pid_t target = getpid();
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    /* child, outside the new namespaces */
    close(go[1]);
    close(done[0]);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    char c;
    if (read_retry(go[0], &c, 1) != 1) _exit(1);
    /* the answer: 'k', or 'u'/'g' and the reason in words */
    char answer[512] = "k";
    if (job->newuidmap) {
      /* both helpers at once: each is a setuid exec that reads /etc/sub?id */
      struct map_helper u, g;
      char why_u[480], why_g[480];
      spawn_map_helper(&u, job->newuidmap, target, job->uid_map, job->n_uid_map);
      spawn_map_helper(&g, job->newgidmap, target, job->gid_map, job->n_gid_map);
      int u_ok = wait_map_helper(&u, why_u, sizeof why_u) == 0;
      int g_ok = wait_map_helper(&g, why_g, sizeof why_g) == 0;
      if (!u_ok) snprintf(answer, sizeof answer, "u%s", why_u);
      else if (!g_ok) snprintf(answer, sizeof answer, "g%s", why_g);
    } else if (write_map_direct(target, "uid_map", job->uid_map, job->n_uid_map) < 0) {
      snprintf(answer, sizeof answer, "u%s", strerror(errno));
    } else if (write_map_direct(target, "gid_map", job->gid_map, job->n_gid_map) < 0) {
      snprintf(answer, sizeof answer, "g%s", strerror(errno));
    }
    write_all(done[1], answer, strlen(answer));
    _exit(0);
  }
  close(go[0]);
  close(done[1]);
  *go_fd = go[1];
  *done_fd = done[0];
  return pid;
}

/*
 * Called right after unshare(CLONE_NEWUSER): tells the helper to map us, waits for its
 * answer and fails with the failed map's step. `what` names the namespace in messages.
 */
static int finish_map_helper(const struct map_job *job, pid_t helper, int go_fd, int done_fd, const char *what) {
  char go = 1, result[512] = {0};
  if (write_all(go_fd, &go, 1) < 0) return fail(STEP_MAP_HELPER, "can't signal the id-map helper%s", what);
  size_t got = 0;
  ssize_t n;
  while (got < sizeof result - 1 && (n = read_retry(done_fd, result + got, sizeof result - 1 - got)) > 0) got += (size_t)n;
  while (waitpid(helper, NULL, 0) < 0 && errno == EINTR) {}
  close(go_fd);
  close(done_fd);
  errno = 0;
  if (got == 0) return fail(STEP_MAP_HELPER, "the id-map helper%s died before writing the maps", what);
  if (result[0] == 'u')
    return fail(STEP_UID_MAP, "can't write the uid map%s%s%s: %s", what, job->newuidmap ? " with " : "", job->newuidmap ? job->newuidmap : "", result + 1);
  if (result[0] == 'g')
    return fail(STEP_GID_MAP, "can't write the gid map%s%s%s: %s", what, job->newgidmap ? " with " : "", job->newgidmap ? job->newgidmap : "", result + 1);
  return 0;
}

/*
 * The ids this process's user namespace maps, as identity ranges in its own terms:
 * each line "INSIDE OUTSIDE COUNT" of /proc/self/{uid,gid}_map becomes INSIDE:INSIDE:COUNT.
 * A child namespace mapped this way sees every id the sandbox has, under the same numbers.
 */
static int read_identity_map(const char *path, struct id_range *r, int *n) {
  FILE *f = fopen(path, "re");
  if (!f) return -1;
  unsigned long inside, outside, count;
  *n = 0;
  while (fscanf(f, "%lu %lu %lu", &inside, &outside, &count) == 3) {
    if (*n >= MAX_LIST) { fclose(f); errno = E2BIG; return -1; }
    r[(*n)++] = (struct id_range){.inside = inside, .outside = inside, .count = count};
  }
  fclose(f);
  if (*n == 0) { errno = ENODATA; return -1; }
  return 0;
}

/*
 * Creates a user namespace nested in the current one, with the same ids under the same
 * numbers, together with the namespaces in `more` (they then belong to it). The inner
 * maps must be written from the current namespace, by a process holding CAP_SETUID
 * there: a forked helper, as for the outer maps. It writes them directly; it has every
 * capability in the current namespace, so no setgroups "deny" is needed (the outer
 * namespace's setgroups setting is inherited either way).
 */
static int enter_identity_user_namespace(int more, const char *what) {
  static struct id_range uid_map[MAX_LIST], gid_map[MAX_LIST];
  struct map_job job = {uid_map, gid_map, 0, 0, NULL, NULL};
  if (read_identity_map("/proc/self/uid_map", uid_map, &job.n_uid_map) < 0)
    return fail(STEP_UID_MAP, "can't read the uid map for the nested namespace%s", what);
  if (read_identity_map("/proc/self/gid_map", gid_map, &job.n_gid_map) < 0)
    return fail(STEP_GID_MAP, "can't read the gid map for the nested namespace%s", what);
  int go_fd = -1, done_fd = -1;
  pid_t helper = start_map_helper(&job, &go_fd, &done_fd);
  if (helper < 0) return fail(STEP_MAP_HELPER, "can't start the id-map helper of the nested namespace%s", what);
  if (unshare(CLONE_NEWUSER | more) < 0) {
    if (errno == ENOSPC)
      return fail(STEP_UNSHARE, "can't create the nested user namespace%s (limit in /proc/sys/user/max_user_namespaces)", what);
    return fail(STEP_UNSHARE, "can't create the nested user namespace%s", what);
  }
  return finish_map_helper(&job, helper, go_fd, done_fd, what);
}

/*
 * OP_LOCK: moves into a user namespace nested in the sandbox's, with the same ids under
 * the same numbers, together with a new mount namespace: the copy of the sandbox's mount
 * tree it gets has every mount locked, because its owner differs from the one it was
 * copied from (mount_namespaces(7), "restrictions on mount namespaces"). The network, UTS
 * and IPC namespaces are made here too, so they belong to this namespace, where the
 * test's uid 0 has its capabilities: a network namespace owned by the outer one would
 * refuse port 80 and lo configuration to it, a UTS namespace sethostname.
 *
 * r->inner_fd >= 0 is that nested namespace, made and mapped once per run by the warm
 * holder: joining it costs a setns() instead of a helper process and two map writes.
 * Otherwise one is made here. r->network_fd >= 0 is a network namespace the holder made
 * ahead in that namespace, lo up: joined instead of made (r->network_ready).
 */
int lock_mounts(const struct plan *p, struct run *r) {
  int flags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | (p->host_network || r->network_fd >= 0 ? 0 : CLONE_NEWNET);
  if (r->inner_fd >= 0) {
    if (setns(r->inner_fd, CLONE_NEWUSER) < 0) return fail(STEP_SETNS, "can't join the warm nested user namespace (fd %d) that locks the mounts", r->inner_fd);
    close(r->inner_fd);
    r->inner_fd = -1;
    if (unshare(flags) < 0) return fail(STEP_UNSHARE, "can't create the mount/network/UTS/IPC namespaces that lock the mounts");
  } else if (enter_identity_user_namespace(flags, " that locks the mounts") < 0) {
    return -1;
  }
  if (r->network_fd >= 0) {
    /* one the holder made ahead, lo up; if it can't be joined, one of our own after all */
    r->network_ready = setns(r->network_fd, CLONE_NEWNET) == 0;
    close(r->network_fd);
    r->network_fd = -1;
    if (!r->network_ready && unshare(CLONE_NEWNET) < 0) return fail(STEP_UNSHARE, "can't create the network namespace");
  }
  /* our ids are the same numbers again; take them explicitly, as in the outer namespace */
  if (setresgid(0, 0, 0) < 0) return fail(STEP_SETID, "can't become gid 0 in the nested namespace");
  if (setgroups(0, NULL) < 0 && errno != EPERM) return fail(STEP_SETID, "can't drop supplementary groups in the nested namespace");
  if (setresuid(0, 0, 0) < 0) return fail(STEP_SETID, "can't become uid 0 in the nested namespace");
  return 0;
}

/* OP_NEW_USER: a user namespace (with a mount namespace: `with_mounts`), mapped from outside. */
int new_user_namespace(const struct plan *p, int with_mounts) {
  /* parent side: fork the map helper while we are still in the caller's user namespace */
  struct map_job job = {p->uid_map, p->gid_map, p->n_uid_map, p->n_gid_map, p->newuidmap, p->newgidmap};
  int go_fd = -1, done_fd = -1;
  pid_t helper = start_map_helper(&job, &go_fd, &done_fd);
  if (helper < 0) return fail(STEP_MAP_HELPER, "can't start the id-map helper");
  if (unshare(with_mounts ? CLONE_NEWUSER | CLONE_NEWNS : CLONE_NEWUSER) < 0) {
    if (errno == ENOSPC)
      return fail(STEP_UNSHARE, "can't create a user namespace (limit in /proc/sys/user/max_user_namespaces)");
    return fail(STEP_UNSHARE, "can't create user/mount namespaces");
  }
  /* inside the new user namespace: let the helper map us from outside */
  return finish_map_helper(&job, helper, go_fd, done_fd, "");
}

/*
 * OP_JOIN_USER, the warm path: the holder made both user namespaces once per run and
 * passed the inner one. Its parent, found through the fd (never a pid: immune to pid
 * reuse), maps the ids and owns the mount namespace where the sandbox's mounts are made;
 * the inner one is joined by OP_LOCK. No setuid helper runs per sandbox.
 */
int join_user_namespace(int userns_fd, int *inner_fd) {
  int outer_fd = ioctl(userns_fd, NS_GET_PARENT);
  if (outer_fd < 0) return fail(STEP_SETNS, "can't find the parent of user namespace fd %d", userns_fd);
  int joined = setns(outer_fd, CLONE_NEWUSER);
  int saved = errno;
  close(outer_fd);
  errno = saved;
  if (joined < 0) return fail(STEP_SETNS, "can't join user namespace fd %d's parent", userns_fd);
  if (fcntl(userns_fd, F_SETFD, FD_CLOEXEC) < 0) return fail(STEP_SETNS, "bad user namespace fd %d", userns_fd);
  *inner_fd = userns_fd;
  if (unshare(CLONE_NEWNS) < 0) return fail(STEP_UNSHARE, "can't create a mount namespace");
  return 0;
}

/*
 * OP_HOLD, the warm holder: the user namespace is mapped. The nested one every sandbox of
 * the run locks its mounts with is made now, once (see lock_mounts), and we stay in it:
 * the pool opens /proc/<pid>/ns/user -- the nested namespace, whose parent is the mapped
 * one -- and keeps that fd, which keeps both alive for every later launcher's setns(). We
 * only have to exist until it has the fd: it closes our stdin.
 */
void hold(const struct plan *p, struct run *r) {
  if (enter_identity_user_namespace(0, " of the warm holder") < 0) die_failure();
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != r->parent) _exit(STEP_PDEATHSIG);
  /* with --networks, it stays for the run, making network namespaces ahead (networks.c) */
  int networks = p->networks ? listen_networks(p->networks) : -1;
  if (p->networks && networks < 0) die_step(STEP_HOLD, "can't listen on %s", p->networks);
  if (write_all(1, "ready\n", 6) < 0) die_step(STEP_HOLD, "can't report readiness");
  if (networks >= 0) serve_networks(networks, p);
  char sink[64];
  while (read_retry(0, sink, sizeof sink) > 0) {}
  _exit(0);
}
