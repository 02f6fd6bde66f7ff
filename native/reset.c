/*
 * What only a reset does (--reset, run by addon.c in a reused worker before each test
 * file after the first): make sure it runs in a sandbox, and stop what an earlier file
 * left running. The rest of a reset is the launcher's own ops again (plan.c).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sandbox.h"

/* How long the processes --kill-others stops get to be gone, polled every KILL_POLL_MS. */
#define KILL_WAIT_MS 2000
#define KILL_POLL_MS 2

/* The host's user namespace maps every id to itself; one nested in it can't. */
int in_initial_user_namespace(void) {
  char map[128];
  int fd = open("/proc/self/uid_map", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 1; /* can't tell: assume the worst */
  ssize_t n = read_retry(fd, map, sizeof map - 1);
  close(fd);
  if (n <= 0) return 1;
  map[n] = 0;
  unsigned long inside, outside, count;
  return sscanf(map, "%lu %lu %lu", &inside, &outside, &count) == 3 && inside == 0 && outside == 0 && count == 4294967295UL;
}

/* What /proc/PID/stat says of a process: whether it still runs, its parent and session. */
struct proc {
  long pid, ppid, session;
  int alive; /* not a zombie: it holds what it had */
  int keep;
};

static int read_proc(long pid, struct proc *p) {
  char path[64], stat[512];
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1; /* gone already */
  ssize_t n = read_retry(fd, stat, sizeof stat - 1);
  close(fd);
  if (n <= 0) return -1;
  stat[n] = 0;
  /* "pid (comm) S ppid pgrp session ...": the state follows the last ')', comm may hold anything */
  char *close_paren = strrchr(stat, ')'), state;
  long pgrp;
  if (!close_paren || sscanf(close_paren + 1, " %c %ld %ld %ld", &state, &p->ppid, &pgrp, &p->session) != 4) return -1;
  p->pid = pid;
  p->alive = state != 'Z' && state != 'X';
  p->keep = 0;
  return 0;
}

/* Every process /proc lists, into *out (malloc'd); their count, or -1. */
static int read_procs(struct proc **out) {
  DIR *dir = opendir("/proc");
  if (!dir) return -1;
  int n = 0, cap = 64;
  struct proc *list = malloc(cap * sizeof *list);
  for (struct dirent *e; list && (e = readdir(dir));) {
    char *end;
    long pid = strtol(e->d_name, &end, 10);
    if (*end || pid <= 0) continue;
    if (n == cap) {
      struct proc *bigger = realloc(list, (cap *= 2) * sizeof *list);
      if (!bigger) free(list);
      list = bigger;
      if (!list) break;
    }
    if (read_proc(pid, &list[n]) == 0) n++;
  }
  closedir(dir);
  if (!list) return errno = ENOMEM, -1;
  *out = list;
  return n;
}

/*
 * The worker and what it still holds: its children, theirs, and so on, as long as each
 * stays in the worker's session. isolate: false keeps a worker's module state, and a
 * process pool a module keeps between files (tinypool's, a helper process) is part of
 * it. What left the session (`detached`, a daemon's setsid) or its parent (an orphan,
 * now init's) was let go.
 */
static void mark_kept(struct proc *list, int n, long self) {
  long session = -1;
  for (int i = 0; i < n; i++)
    if (list[i].pid == self) list[i].keep = 1, session = list[i].session;
  for (int changed = 1; changed;) {
    changed = 0;
    for (int i = 0; i < n; i++) {
      if (list[i].keep || list[i].session != session) continue;
      for (int j = 0; j < n && !list[i].keep; j++)
        if (list[j].keep && list[j].pid == list[i].ppid) list[i].keep = changed = 1;
    }
  }
}

/*
 * SIGKILLs every process of the sandbox's pid namespace that an earlier test file let go
 * -- a server, a daemon it double-forked, a `detached` child -- and waits until each is
 * gone or a zombie: it must not outlive the file. Kept: its init (pid 1), the caller and
 * what the caller still holds in its session (mark_kept). The caller is the sandboxed
 * worker, the child of that init, and /proc is the namespace's own: it lists nothing
 * else. Orphans go to init, which reaps them.
 */
int kill_others(void) {
  pid_t self = getpid();
  errno = 0;
  if (getppid() != 1) return fail(STEP_PID_NAMESPACE, "--kill-others needs the worker to run under the init of the sandbox's own pid namespace");
  for (int waited = 0;; waited += KILL_POLL_MS) {
    struct proc *list;
    int n = read_procs(&list);
    if (n < 0) return fail(STEP_PID_NAMESPACE, "can't list /proc");
    mark_kept(list, n, self);
    int alive = 0;
    for (int i = 0; i < n; i++) {
      if (list[i].pid <= 1 || list[i].keep || !list[i].alive) continue;
      alive++;
      if (kill((pid_t)list[i].pid, SIGKILL) < 0 && errno != ESRCH) {
        int saved = errno;
        long pid = list[i].pid;
        free(list);
        errno = saved;
        return fail(STEP_PID_NAMESPACE, "can't stop process %ld, which an earlier test file left running", pid);
      }
    }
    free(list);
    if (alive == 0) return 0;
    if (waited >= KILL_WAIT_MS) {
      errno = 0;
      return fail(STEP_PID_NAMESPACE, "%d processes an earlier test file left running are still there %d ms after SIGKILL", alive, KILL_WAIT_MS);
    }
    nanosleep(&(struct timespec){.tv_nsec = KILL_POLL_MS * 1000000L}, NULL);
  }
}
