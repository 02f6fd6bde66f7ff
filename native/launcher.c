/*
 * vitest-pool-rootless launcher: build a rootless sandbox, then exec a command in it.
 *
 *   launcher [OPTIONS] -- CMD [ARGS...]
 *
 * The TypeScript side (src/plan) validates options and decides every policy question;
 * this program only executes the plan it is handed, one step at a time, in one narrated
 * main(). It must stay single-threaded: unshare(CLONE_NEWUSER) and setns() into a user
 * namespace fail with EINVAL in a multithreaded process (user_namespaces(7)), which is
 * why Node cannot do this itself.
 *
 * A failing step exits with its own status (see steps.h) and prints exactly one line:
 *   vitest-pool-rootless: <step>: <reason>
 * With --status-fd N it also writes that status as one byte to fd N. The exit status
 * alone can't tell a failed step from a command that exits with 230..252 itself; the fd
 * can: a byte means a step failed, EOF without one means CMD ran and its status is its own.
 * The target's argv, environment and inherited fds (Node's IPC channel among them) are
 * passed through untouched; the status fd is the one exception (close-on-exec).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/nsfs.h>
#include <limits.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox.h"

extern char **environ;

/* ---- errors: helpers return -1 with errno set; main() owns the policy and dies ---- */

/* --status-fd: where a failed step is reported as one byte; -1 when not asked for. */
static int status_fd = -1;

/* Ends a failed step: its status on the status fd (best effort), then as exit status. */
static void exit_step(int step) __attribute__((noreturn));
static void exit_step(int step) {
  if (status_fd >= 0) {
    unsigned char byte = (unsigned char)step;
    while (write(status_fd, &byte, 1) < 0 && errno == EINTR) {}
  }
  _exit(step);
}

void die_step(int step, const char *fmt, ...) {
  int saved = errno;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (saved)
    fprintf(stderr, "vitest-pool-rootless: %s: %s: %s\n", step_name(step), msg, strerror(saved));
  else
    fprintf(stderr, "vitest-pool-rootless: %s: %s\n", step_name(step), msg);
  exit_step(step);
}

/* ---- the plan (parsed in plan.c) ---- */

/*
 * The status fd is taken before anything else is parsed, so that a usage error later in
 * argv (or earlier: the flag may stand anywhere) is reported on it too. Close-on-exec:
 * CMD must never hold it, or the caller would see EOF only when CMD's children exit.
 */
static void take_status_fd(int argc, char **argv) {
  for (int i = 1; i + 1 < argc && strcmp(argv[i], "--") != 0; i++) {
    if (strcmp(argv[i], "--status-fd") != 0) continue;
    int fd = parse_fd(argv[i + 1]);
    if (fd < 0) usage_error("bad fd '%s'", argv[i + 1]);
    if (fd <= 2) usage_error("--status-fd %s would be a standard stream", argv[i + 1]);
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) usage_error("--status-fd %s is not an open fd", argv[i + 1]);
    status_fd = fd;
    return;
  }
}

/* ---- id maps ---- */

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
 * answer and dies with the failed map's step. `what` names the namespace in messages.
 */
static void finish_map_helper(const struct map_job *job, pid_t helper, int go_fd, int done_fd, const char *what) {
  char go = 1, result[512] = {0};
  if (write_all(go_fd, &go, 1) < 0) die_step(STEP_MAP_HELPER, "can't signal the id-map helper%s", what);
  size_t got = 0;
  ssize_t n;
  while (got < sizeof result - 1 && (n = read_retry(done_fd, result + got, sizeof result - 1 - got)) > 0) got += (size_t)n;
  while (waitpid(helper, NULL, 0) < 0 && errno == EINTR) {}
  close(go_fd);
  close(done_fd);
  errno = 0;
  if (got == 0) die_step(STEP_MAP_HELPER, "the id-map helper%s died before writing the maps", what);
  if (result[0] == 'u')
    die_step(STEP_UID_MAP, "can't write the uid map%s%s%s: %s", what, job->newuidmap ? " with " : "", job->newuidmap ? job->newuidmap : "", result + 1);
  if (result[0] == 'g')
    die_step(STEP_GID_MAP, "can't write the gid map%s%s%s: %s", what, job->newgidmap ? " with " : "", job->newgidmap ? job->newgidmap : "", result + 1);
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

/* ---- pid namespace: outer launcher -> init (pid 1) -> CMD ---- */

static const int forwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
#define N_FORWARDED (sizeof forwarded / sizeof forwarded[0])
static volatile pid_t forward_to;

/* Passes signals on; a tty's own ^C/^\ already reached the whole process group. */
static void forward_signal(int sig, siginfo_t *si, void *ctx) {
  (void)ctx;
  int saved = errno;
  if (!(si->si_code == SI_KERNEL && (sig == SIGINT || sig == SIGQUIT)) && forward_to > 0) kill(forward_to, sig);
  errno = saved;
}

/*
 * Signals are blocked across fork() and until the handler knows its target, so none
 * sent in between is lost -- an init drops signals it has no handler for.
 */
static void block_forwarded(sigset_t *old) {
  sigset_t set;
  sigemptyset(&set);
  for (size_t i = 0; i < N_FORWARDED; i++) sigaddset(&set, forwarded[i]);
  sigprocmask(SIG_BLOCK, &set, old);
}

static void forward_signals_to(pid_t pid, const sigset_t *old) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = forward_signal;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  forward_to = pid;
  for (size_t i = 0; i < N_FORWARDED; i++) sigaction(forwarded[i], &sa, NULL);
  sigprocmask(SIG_SETMASK, old, NULL);
}

/* Ends this process the way CMD ended: same exit status, or death by the same signal. */
static void mirror_status(int status) __attribute__((noreturn));
static void mirror_status(int status) {
  if (WIFEXITED(status)) _exit(WEXITSTATUS(status));
  int sig = WIFSIGNALED(status) ? WTERMSIG(status) : SIGKILL;
  struct rlimit none = {0, 0};
  setrlimit(RLIMIT_CORE, &none); /* CMD already dumped core, if anyone wanted one */
  signal(sig, SIG_DFL);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, sig);
  sigprocmask(SIG_UNBLOCK, &set, NULL);
  kill(getpid(), sig);
  _exit(128 + sig);
}

/*
 * Returns in the process that goes on to exec CMD, in a new pid namespace under a small
 * init (pid 1). CMD gets the pid the outer launcher has on the host: sandboxes that run
 * at once must not all be "pid 2", or whatever names files by pid in a directory they
 * share (write-file-atomic in Jest's transform cache, say) would collide.
 * Nothing a test starts can outlive it: when CMD ends, init (pid 1) ends, and the kernel
 * kills whatever else is left in the namespace -- daemons a test double-forked included
 * (pid_namespaces(7)). CMD is not pid 1 itself because pid 1 ignores signals it has no
 * handler for, even SIGSEGV it sends itself, and tests rely on ordinary signal deaths.
 *
 * Dying with Vitest: the outer launcher has PDEATHSIG on Vitest (set by the caller
 * before this), init on the outer launcher, CMD on init. Each checks, after arming it,
 * that its parent is still there.
 *
 * The status fd: the outer launcher and init keep their copies (close-on-exec only
 * drops CMD's) but write only when they fail themselves; the outer launcher mirrors
 * CMD's end and writes nothing, so EOF without a byte still means "CMD ran".
 */
static void enter_pid_namespace(pid_t forwarder) {
  pid_t host_pid = getpid();
  if (unshare(CLONE_NEWPID) < 0) die_step(STEP_PID_NAMESPACE, "can't create a pid namespace");
  int report[2];
  if (pipe2(report, O_CLOEXEC) < 0) die_step(STEP_PID_NAMESPACE, "can't create a pipe");
  sigset_t old;
  block_forwarded(&old);
  pid_t init = fork();
  if (init < 0) die_step(STEP_PID_NAMESPACE, "can't start init");
  if (init > 0) {
    /* outer launcher, in the caller's pid namespace: the process Vitest knows */
    close(report[1]);
    forward_signals_to(init, &old);
    int status = 0, init_status = 0;
    ssize_t n = read_retry(report[0], &status, sizeof status);
    while (waitpid(init, &init_status, 0) < 0 && errno == EINTR) {}
    /* PDEATHSIG would end the forwarder only after we are gone: whoever waits for us
       would find it still there */
    if (forwarder > 0) {
      kill(forwarder, SIGKILL);
      while (waitpid(forwarder, NULL, 0) < 0 && errno == EINTR) {}
    }
    mirror_status(n == (ssize_t)sizeof status ? status : init_status);
  }

  /* init, pid 1 of the new namespace; forwarded signals still blocked */
  close(report[0]);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  /* getppid() is 0 across the namespace boundary: the report pipe tells instead,
     its only reader being the outer launcher */
  struct pollfd outer = {.fd = report[1], .events = 0};
  if (poll(&outer, 1, 0) > 0 && (outer.revents & (POLLERR | POLLHUP))) exit_step(STEP_PID_NAMESPACE);
  /* a /proc of this namespace: the sandbox's processes only (best effort: some
     container runtimes mask parts of /proc, and then the kernel refuses a new one) */
  if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) == 0) {
    /* the next pid this namespace hands out is host_pid (best effort, like /proc) */
    char last[24];
    snprintf(last, sizeof last, "%d", (int)host_pid - 1);
    write_file("/proc/sys/kernel/ns_last_pid", last);
  }
  pid_t cmd = fork();
  if (cmd < 0) die_step(STEP_PID_NAMESPACE, "can't start the command");
  if (cmd == 0) {
    close(report[1]);
    sigprocmask(SIG_SETMASK, &old, NULL);
    return;
  }
  forward_signals_to(cmd, &old);
  for (;;) {
    int status;
    pid_t done = wait(&status);
    if (done == cmd) {
      write_all(report[1], &status, sizeof status);
      _exit(0);
    }
    if (done < 0 && errno == ECHILD) exit_step(STEP_PID_NAMESPACE);
  }
}

/*
 * Creates a user namespace nested in the current one, with the same ids under the same
 * numbers, together with the namespaces in `more` (they then belong to it). The inner
 * maps must be written from the current namespace, by a process holding CAP_SETUID
 * there: a forked helper, as for the outer maps. It writes them directly; it has every
 * capability in the current namespace, so no setgroups "deny" is needed (the outer
 * namespace's setgroups setting is inherited either way).
 */
static void enter_identity_user_namespace(int more, const char *what) {
  static struct id_range uid_map[MAX_LIST], gid_map[MAX_LIST];
  struct map_job job = {uid_map, gid_map, 0, 0, NULL, NULL};
  if (read_identity_map("/proc/self/uid_map", uid_map, &job.n_uid_map) < 0)
    die_step(STEP_UID_MAP, "can't read the uid map for the nested namespace%s", what);
  if (read_identity_map("/proc/self/gid_map", gid_map, &job.n_gid_map) < 0)
    die_step(STEP_GID_MAP, "can't read the gid map for the nested namespace%s", what);
  int go_fd = -1, done_fd = -1;
  pid_t helper = start_map_helper(&job, &go_fd, &done_fd);
  if (helper < 0) die_step(STEP_MAP_HELPER, "can't start the id-map helper of the nested namespace%s", what);
  if (unshare(CLONE_NEWUSER | more) < 0) {
    if (errno == ENOSPC)
      die_step(STEP_UNSHARE, "can't create the nested user namespace%s (limit in /proc/sys/user/max_user_namespaces)", what);
    die_step(STEP_UNSHARE, "can't create the nested user namespace%s", what);
  }
  finish_map_helper(&job, helper, go_fd, done_fd, what);
}

/*
 * Moves into a user namespace nested in the sandbox's, with the same ids under the same
 * numbers, together with a new mount namespace: the copy of the sandbox's mount tree it
 * gets has every mount locked, because its owner differs from the one it was copied from
 * (mount_namespaces(7), "restrictions on mount namespaces"). The network, UTS and IPC
 * namespaces are made here too, so they belong to this namespace, where the test's uid 0
 * has its capabilities: a network namespace owned by the outer one would refuse port 80
 * and lo configuration to it, a UTS namespace sethostname.
 *
 * `inner_fd` >= 0 is that nested namespace, made and mapped once per run by the warm
 * holder: joining it costs a setns() instead of a helper process and two map writes.
 * Otherwise one is made here. `network_fd` >= 0 is a network namespace the holder made
 * ahead in that namespace, lo up: joined instead of made. Returns 1 when it was.
 */
static int lock_sandbox_mounts(const struct plan *p, int inner_fd, int network_fd) {
  int flags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | (p->host_network || network_fd >= 0 ? 0 : CLONE_NEWNET);
  if (inner_fd >= 0) {
    if (setns(inner_fd, CLONE_NEWUSER) < 0) die_step(STEP_SETNS, "can't join the warm nested user namespace (fd %d) that locks the mounts", inner_fd);
    close(inner_fd);
    if (unshare(flags) < 0) die_step(STEP_UNSHARE, "can't create the mount/network/UTS/IPC namespaces that lock the mounts");
  } else {
    enter_identity_user_namespace(flags, " that locks the mounts");
  }
  int joined = 0;
  if (network_fd >= 0) {
    /* one the holder made ahead, lo up; if it can't be joined, one of our own after all */
    joined = setns(network_fd, CLONE_NEWNET) == 0;
    close(network_fd);
    if (!joined && unshare(CLONE_NEWNET) < 0) die_step(STEP_UNSHARE, "can't create the network namespace");
  }
  /* our ids are the same numbers again; take them explicitly, as in the outer namespace */
  if (setresgid(0, 0, 0) < 0) die_step(STEP_SETID, "can't become gid 0 in the nested namespace");
  if (setgroups(0, NULL) < 0 && errno != EPERM) die_step(STEP_SETID, "can't drop supplementary groups in the nested namespace");
  if (setresuid(0, 0, 0) < 0) die_step(STEP_SETID, "can't become uid 0 in the nested namespace");
  return joined;
}

int main(int argc, char **argv) {
  struct plan p;
  take_status_fd(argc, argv);
  parse_plan(argc, argv, &p);
  const struct layers *l = &p.layers;
  /* a reset runs inside a worker's own process (addon.c), never as a process of its own */
  if (p.reset) usage_error("%s", "--reset is for the worker's in-process reset, not the launcher");
  if (status_fd >= 0 && status_fd == p.userns_fd) usage_error("%s", "--status-fd and --userns-fd must differ");

  /* The parent we must die with: Vitest, or the shell running `exec`. */
  pid_t parent = getppid();

  char cwd[PATH_MAX];
  int have_cwd = getcwd(cwd, sizeof cwd) != NULL;

  /*
   * Two user namespaces per sandbox. The outer one (created here, or joined from a warm
   * holder) maps the ids and owns the mount namespace in which the sandbox's own mounts
   * are made. The inner one (lock_sandbox_mounts below; made here, or the warm holder's)
   * mirrors its maps and gets a copy of that mount namespace, in which the kernel locks
   * every inherited mount: a test can add mounts but can't unmount or move ours
   * (mount_namespaces(7)). The network, UTS and IPC namespaces are created there, owned
   * by the inner namespace, where the test's uid 0 has its capabilities (port 80,
   * sethostname). Warm sandboxes of one run share both user namespaces, never a mount,
   * network, UTS, IPC or pid namespace.
   */
  /*
   * A network namespace the warm holder made ahead, taken first, while its socket in the
   * run's state dir is in sight (a tmpfs may hide it later); joined when the mounts are
   * locked. -1: none, and one is made there, as without the holder.
   */
  int network_fd = !p.hold && p.networks && !p.host_network ? take_network(p.networks) : -1;

  int inner_fd = -1;
  if (p.userns_fd >= 0) {
    /*
     * Warm path: the holder made both user namespaces once per run and passed the inner
     * one. Its parent, found through the fd (never a pid: immune to pid reuse), maps the
     * ids and owns the mount namespace where the sandbox's mounts are made; the inner
     * one is joined when the mounts are locked. No setuid helper runs per sandbox.
     */
    int outer_fd = ioctl(p.userns_fd, NS_GET_PARENT);
    if (outer_fd < 0) die_step(STEP_SETNS, "can't find the parent of user namespace fd %d", p.userns_fd);
    if (setns(outer_fd, CLONE_NEWUSER) < 0) die_step(STEP_SETNS, "can't join user namespace fd %d's parent", p.userns_fd);
    close(outer_fd);
    inner_fd = p.userns_fd;
    if (fcntl(inner_fd, F_SETFD, FD_CLOEXEC) < 0) die_step(STEP_SETNS, "bad user namespace fd %d", inner_fd);
    if (unshare(CLONE_NEWNS) < 0) die_step(STEP_UNSHARE, "can't create a mount namespace");
  } else {
    /* parent side: fork the map helper while we are still in the caller's user namespace */
    struct map_job job = {p.uid_map, p.gid_map, p.n_uid_map, p.n_gid_map, p.newuidmap, p.newgidmap};
    int go_fd = -1, done_fd = -1;
    pid_t helper = start_map_helper(&job, &go_fd, &done_fd);
    if (helper < 0) die_step(STEP_MAP_HELPER, "can't start the id-map helper");

    if (unshare(p.hold ? CLONE_NEWUSER : CLONE_NEWUSER | CLONE_NEWNS) < 0) {
      if (errno == ENOSPC)
        die_step(STEP_UNSHARE, "can't create a user namespace (limit in /proc/sys/user/max_user_namespaces)");
      die_step(STEP_UNSHARE, "can't create user/mount namespaces");
    }

    /* inside the new user namespace: let the helper map us from outside */
    finish_map_helper(&job, helper, go_fd, done_fd, "");
  }

  if (p.hold) {
    /*
     * Warm holder: the user namespace is mapped. The nested one every sandbox of the run
     * locks its mounts with is made now, once (see lock_sandbox_mounts), and we stay in
     * it: the pool opens /proc/<pid>/ns/user -- the nested namespace, whose parent is
     * the mapped one -- and keeps that fd, which keeps both alive for every later
     * launcher's setns(). We only have to exist until it has the fd: it closes our stdin.
     */
    enter_identity_user_namespace(0, " of the warm holder");
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(STEP_PDEATHSIG);
    /* with --networks, it stays for the run, making network namespaces ahead (networks.c) */
    int networks = p.networks ? listen_networks(p.networks) : -1;
    if (p.networks && networks < 0) die_step(STEP_HOLD, "can't listen on %s", p.networks);
    if (write_all(1, "ready\n", 6) < 0) die_step(STEP_HOLD, "can't report readiness");
    if (networks >= 0) serve_networks(networks);
    char sink[64];
    while (read_retry(0, sink, sizeof sink) > 0) {}
    _exit(0);
  }

  /*
   * Open what we will bind before any mount -- a tmpfs on the temp dir hides the hosts
   * file and the kept paths when they live there, as they usually do -- but after
   * unshare(CLONE_NEWNS): bind mounts only take sources from our own mount namespace.
   */
  int hosts_fd = -1, nsswitch_fd = -1;
  if (p.nsswitch_file) {
    nsswitch_fd = open(p.nsswitch_file, O_RDONLY | O_CLOEXEC);
    if (nsswitch_fd < 0) die_step(STEP_NSSWITCH, "can't open %s", p.nsswitch_file);
  }
  if (p.hosts_file) {
    hosts_fd = open(p.hosts_file, O_RDONLY | O_CLOEXEC);
    if (hosts_fd < 0) die_step(STEP_OPEN_HOSTS, "can't open hosts file %s", p.hosts_file);
  }
  int keep_fd[MAX_LIST];
  int keep_dir[MAX_LIST];
  for (int k = 0; k < l->n_keep; k++) {
    struct stat st;
    keep_fd[k] = open(l->keep[k], O_PATH | O_CLOEXEC);
    if (keep_fd[k] < 0 || fstat(keep_fd[k], &st) < 0) die_step(STEP_OPEN_KEEP, "can't open %s", l->keep[k]);
    keep_dir[k] = S_ISDIR(st.st_mode);
  }

  /*
   * Become uid/gid 0 inside. Supplementary groups from outside show up as "nogroup"
   * and can't be used for anything but confusion; drop them where setgroups is allowed.
   */
  if (setresgid(0, 0, 0) < 0) die_step(STEP_SETID, "can't become gid 0 in the sandbox");
  if (setgroups(0, NULL) < 0 && errno != EPERM) die_step(STEP_SETID, "can't drop supplementary groups");
  if (setresuid(0, 0, 0) < 0) die_step(STEP_SETID, "can't become uid 0 in the sandbox");

  /* Nothing we mount may propagate back to the host: make the whole tree private first. */
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) die_step(STEP_MOUNT_PRIVATE, "can't make / rprivate");

  /*
   * /etc/hosts: a private, writable copy per sandbox -- binding the run's file itself
   * would let one test's edit leak into every later sandbox. The copy lives on a small
   * tmpfs mounted over the hosts file's own directory (ours to hide: it is the run's
   * state dir), which is detached again once the copy is bound; the bind keeps it.
   */
  if (hosts_fd >= 0) {
    if (private_copy_bind(hosts_fd, p.hosts_file, "/etc/hosts") < 0)
      die_step(STEP_HOSTS, "can't put a private copy of %s on /etc/hosts", p.hosts_file);
    close(hosts_fd);
  }
  /*
   * /etc/nsswitch.conf: names are looked up in the hosts file alone. The sandbox reaches
   * no DNS server, and glibc would answer every other name with "temporary failure"
   * (EAI_AGAIN) where an offline machine says "not found" (ENOTFOUND).
   */
  if (nsswitch_fd >= 0) {
    if (private_copy_bind(nsswitch_fd, p.nsswitch_file, "/etc/nsswitch.conf") < 0)
      die_step(STEP_NSSWITCH, "can't put a private copy of %s on /etc/nsswitch.conf", p.nsswitch_file);
    close(nsswitch_fd);
  }

  /*
   * Each tmpfs target gets two layers. This one, the floor, is read-only and holds only
   * the kept paths; it is locked below, so no test can ever uncover what the host has
   * at that path. The writable tmpfs the test sees goes on top of it after the lock.
   */
  char opts[128];
  tmpfs_options(l, opts, sizeof opts);
  for (int t = 0; t < l->n_tmpfs; t++) {
    const struct tmpfs_mount *m = &l->tmpfs[t];
    if (mount("tmpfs", m->path, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0)
      die_step(STEP_TMPFS, "can't mount a tmpfs on %s", m->path);
    /* bind back what the plan lists for this tmpfs (project, node, caches); which path
       lies under which tmpfs was decided by the plan, not here */
    for (int k = m->first_keep; k < m->first_keep + m->n_keep; k++) {
      if (make_mountpoint(l->keep[k], keep_dir[k]) < 0) die_step(STEP_KEEP, "can't create %s", l->keep[k]);
      if (bind_fd(keep_fd[k], l->keep[k]) < 0) die_step(STEP_KEEP, "can't bind %s back", l->keep[k]);
    }
    if (mount(NULL, m->path, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
      die_step(STEP_TMPFS, "can't make the tmpfs under %s read-only", m->path);
  }
  for (int k = 0; k < l->n_keep; k++) close(keep_fd[k]);

  /*
   * The forwarder is forked while we are still in the host's network namespace, which it
   * stays in (forward.c): the ports this plan forwards reach the host's loopback through
   * it. Only those whose host side answers now get a listener inside: a connection to one
   * that doesn't is refused there, as on the host.
   */
  int forwarder = -1;
  pid_t forwarder_pid = -1;
  if (p.n_forwards > 0) {
    forwarder = start_forwarder(p.forwards, p.n_forwards, &forwarder_pid);
    if (forwarder < 0) die_step(STEP_FORWARD, "can't start the forwarder");
  }

  int network_ready = lock_sandbox_mounts(&p, inner_fd, network_fd);

  /*
   * The writable layer, made in the locked namespace and so not locked itself: a reused
   * worker's reset (--reset) replaces it between files. A test that unmounts it finds
   * the read-only floor, never the host's directory.
   */
  mount_writable_layers(l, opts);

  if (p.hostname && sethostname(p.hostname, strlen(p.hostname)) < 0)
    die_step(STEP_HOSTNAME, "can't set hostname %s", p.hostname);

  /* a new network namespace starts with lo down: 127.0.0.1 would be unreachable */
  if (!p.host_network && !network_ready && loopback_up() < 0) die_step(STEP_LOOPBACK, "can't bring up lo");

  if (forwarder >= 0) {
    if (send_forwards(forwarder, p.forwards, p.n_forwards, 0) < 0) die_step(STEP_FORWARD, "can't listen on a forwarded port inside the sandbox");
    /* the command keeps the control socket (a reused worker's reset sends new listeners) */
    char fd[16];
    snprintf(fd, sizeof fd, "%d", forwarder);
    if (fcntl(forwarder, F_SETFD, 0) < 0 || setenv(FORWARDER_ENV, fd, 1) < 0) die_step(STEP_FORWARD, "can't pass the forwarder on");
  }

  /* the old cwd may now be hidden under a tmpfs; re-resolve it through the new tree */
  if (have_cwd && chdir(cwd) < 0) die_step(STEP_CHDIR, "can't enter %s (add it to the kept paths)", cwd);

  /* no controlling terminal: a test can't push keystrokes into the user's shell (TIOCSTI) */
  if (p.new_session && setsid() < 0 && errno != EPERM) die_step(STEP_SESSION, "can't start a new session");

  if (p.pid_namespace) {
    /* the outer launcher stays behind as Vitest's child: it must die with Vitest too */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) die_step(STEP_PDEATHSIG, "can't set PR_SET_PDEATHSIG");
    if (getppid() != parent) { errno = 0; die_step(STEP_PDEATHSIG, "parent process exited before the sandbox started"); }
    enter_pid_namespace(forwarder_pid);
    parent = 1; /* from here on, our parent is the namespace's init */
  }

  /*
   * Die with the parent. PDEATHSIG is cleared by credential changes, so it is set last,
   * and the parent may already be gone by now: check after arming it.
   */
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) die_step(STEP_PDEATHSIG, "can't set PR_SET_PDEATHSIG");
  if (getppid() != parent) { errno = 0; die_step(STEP_PDEATHSIG, "parent process exited before the sandbox started"); }

  /*
   * Last: from here on every connect(2) of CMD and its children asks the forwarder first,
   * which connects the ones to forwarded ports straight to the host (connect.c). Only with
   * a pid namespace: a connect(2) that finds the forwarder gone fails (ENOSYS), and only
   * there does nothing of the sandbox outlive it; without one, the relay serves them all.
   */
  if (forwarder >= 0 && p.pid_namespace && !p.relay_only) send_connect_listener(forwarder);

  execvp(p.argv[0], p.argv);
  die_step(STEP_EXEC, "can't run %s", p.argv[0]);
}
