/*
 * vitest-pool-rootless launcher: build a rootless sandbox, then exec a command in it.
 *
 *   launcher [OPTIONS] -- CMD [ARGS...]
 *
 * The TypeScript side (src/plan) validates options and decides every policy question;
 * this program only executes the plan it is handed: plan.c turns argv into an ordered
 * list of setup operations, ops.c runs them one by one and says, op by op, why each is
 * there and on which side it runs. It must stay single-threaded: unshare(CLONE_NEWUSER)
 * and setns() into a user namespace fail with EINVAL in a multithreaded process
 * (user_namespaces(7)), which is why Node cannot do this itself.
 *
 * A failing step exits with its own status (see steps.h) and prints exactly one line:
 *   vitest-pool-rootless: <step>: <reason>
 * With --status-fd N it also writes that status as one byte to fd N. The exit status
 * alone can't tell a failed step from a command that exits with 230..253 itself; the fd
 * can: a byte means a step failed, EOF without one means CMD ran and its status is its own.
 * The target's argv, environment and inherited fds (Node's IPC channel among them) are
 * passed through untouched; the status fd is the one exception (close-on-exec).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sandbox.h"

/* --status-fd: where a failed step is reported as one byte; -1 when not asked for. */
static int status_fd = -1;

void exit_step(int step) {
  if (status_fd >= 0) {
    unsigned char byte = (unsigned char)step;
    while (write(status_fd, &byte, 1) < 0 && errno == EINTR) {}
  }
  _exit(step);
}

void die_failure(void) {
  fprintf(stderr, "%s\n", failure.line);
  exit_step(failure.step);
}

void die_step(int step, const char *fmt, ...) {
  char msg[768];
  int saved = errno;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  errno = saved;
  fail(step, "%s", msg);
  die_failure();
}

/*
 * The status fd is taken before anything else is parsed, so that a usage error later in
 * argv (or earlier: the flag may stand anywhere) is reported on it too. Close-on-exec:
 * CMD must never hold it, or the caller would see EOF only when CMD's children exit.
 */
static void take_status_fd(int argc, char **argv) {
  for (int i = 1; i + 1 < argc && strcmp(argv[i], "--") != 0; i++) {
    if (strcmp(argv[i], "--status-fd") != 0) continue;
    int fd = parse_fd(argv[i + 1]);
    errno = 0;
    if (fd < 0) die_step(STEP_USAGE, "bad fd '%s'", argv[i + 1]);
    if (fd <= 2) die_step(STEP_USAGE, "--status-fd %s would be a standard stream", argv[i + 1]);
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
      errno = 0;
      die_step(STEP_USAGE, "--status-fd %s is not an open fd", argv[i + 1]);
    }
    status_fd = fd;
    return;
  }
}

int main(int argc, char **argv) {
  take_status_fd(argc, argv);
  struct plan p;
  if (parse_plan(argc, argv, &p) < 0) die_failure();
  /* a reset runs inside a worker's own process (addon.c), never as a process of its own */
  errno = 0;
  if (p.reset) die_step(STEP_USAGE, "--reset is for the worker's in-process reset, not the launcher");
  /* the host's channel to the forwarder: nothing this launcher execs may hold it (the
     forwarder gets its own copy, and the launcher closes this one once it is forked) */
  if (p.forward_host_fd >= 0 && fcntl(p.forward_host_fd, F_SETFD, FD_CLOEXEC) < 0) die_step(STEP_USAGE, "--forward-host-fd %d is not an open fd", p.forward_host_fd);

  struct run r;
  run_init(&r);
  /* the parent we must die with: Vitest, or the shell running `exec` */
  r.parent = getppid();
  /* read now: the tree a tmpfs will hide it in is the one it must be found again in */
  r.have_cwd = getcwd(r.cwd, sizeof r.cwd) != NULL;

  /* OP_EXEC and OP_HOLD don't return: back here, an op failed */
  run_ops(&p, &r);
  die_failure();
}
