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

/* A process that has exited and waits to be reaped: it holds nothing any more. */
static int is_zombie(long pid) {
  char path[64], stat[256];
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 1; /* gone already */
  ssize_t n = read_retry(fd, stat, sizeof stat - 1);
  close(fd);
  if (n <= 0) return 1;
  stat[n] = 0;
  /* "pid (comm) S ...": the state follows the last ')', comm may hold anything */
  char *close_paren = strrchr(stat, ')');
  return close_paren && close_paren[1] == ' ' && (close_paren[2] == 'Z' || close_paren[2] == 'X');
}

/*
 * SIGKILLs every process of the sandbox's pid namespace but its init (pid 1) and the
 * caller, and waits until each is gone or a zombie: what an earlier test file left
 * running -- a server, a daemon it double-forked -- must not outlive the file. The
 * caller is the sandboxed worker, the child of that init, and /proc is the namespace's
 * own: it lists nothing else. Their orphans go to init, which reaps them.
 */
int kill_others(void) {
  pid_t self = getpid();
  errno = 0;
  if (getppid() != 1) return fail(STEP_PID_NAMESPACE, "--kill-others needs the worker to run under the init of the sandbox's own pid namespace");
  for (int waited = 0;; waited += KILL_POLL_MS) {
    DIR *dir = opendir("/proc");
    if (!dir) return fail(STEP_PID_NAMESPACE, "can't list /proc");
    int alive = 0;
    for (struct dirent *e; (e = readdir(dir));) {
      char *end;
      long pid = strtol(e->d_name, &end, 10);
      if (*end || pid <= 1 || pid == self || is_zombie(pid)) continue;
      alive++;
      if (kill((pid_t)pid, SIGKILL) < 0 && errno != ESRCH) {
        int saved = errno;
        closedir(dir);
        errno = saved;
        return fail(STEP_PID_NAMESPACE, "can't stop process %ld, which an earlier test file left running", pid);
      }
    }
    closedir(dir);
    if (alive == 0) return 0;
    if (waited >= KILL_WAIT_MS) {
      errno = 0;
      return fail(STEP_PID_NAMESPACE, "%d processes an earlier test file left running are still there %d ms after SIGKILL", alive, KILL_WAIT_MS);
    }
    nanosleep(&(struct timespec){.tv_nsec = KILL_POLL_MS * 1000000L}, NULL);
  }
}
