/*
 * --pid-namespace: outer launcher -> init (pid 1) -> CMD; without one, where there is a
 * forwarder: launcher -> CMD, so that the forwarder is reaped with it. The launcher's alone: the outer
 * launcher and init are processes of their own that no caller returns to, and die on a
 * failure; before the fork a failure is returned like any other op's.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox.h"

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

/* The launcher that stayed behind: CMD's end, once the forwarder is reaped too. */
static void outlive(pid_t child, pid_t forwarder, int report) __attribute__((noreturn));
static void outlive(pid_t child, pid_t forwarder, int report) {
  int status = 0, child_status = 0;
  ssize_t n = report >= 0 ? read_retry(report, &status, sizeof status) : 0;
  while (waitpid(child, &child_status, 0) < 0 && errno == EINTR) {}
  /* PDEATHSIG would end the forwarder only after we are gone: whoever waits for us
     would find it still there */
  if (forwarder > 0) {
    kill(forwarder, SIGKILL);
    while (waitpid(forwarder, NULL, 0) < 0 && errno == EINTR) {}
  }
  mirror_status(n == (ssize_t)sizeof status ? status : child_status);
}

/*
 * Without a pid namespace, a sandbox with a forwarder: the launcher forks CMD's process
 * and stays, passing signals on, so that the forwarder (its child, not CMD's) is killed
 * and reaped the moment CMD ends. Returns in the child.
 */
int stay_for_forwarder(pid_t forwarder) {
  sigset_t old;
  block_forwarded(&old);
  pid_t cmd = fork();
  if (cmd < 0) {
    sigprocmask(SIG_SETMASK, &old, NULL);
    return fail(STEP_FORWARD, "can't start the command");
  }
  if (cmd > 0) {
    forward_signals_to(cmd, &old);
    outlive(cmd, forwarder, -1);
  }
  sigprocmask(SIG_SETMASK, &old, NULL);
  return 0;
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
int enter_pid_namespace(pid_t forwarder) {
  pid_t host_pid = getpid();
  if (unshare(CLONE_NEWPID) < 0) return fail(STEP_PID_NAMESPACE, "can't create a pid namespace");
  int report[2];
  if (pipe2(report, O_CLOEXEC) < 0) return fail(STEP_PID_NAMESPACE, "can't create a pipe");
  sigset_t old;
  block_forwarded(&old);
  pid_t init = fork();
  if (init < 0) return fail(STEP_PID_NAMESPACE, "can't start init");
  if (init > 0) {
    /* outer launcher, in the caller's pid namespace: the process Vitest knows */
    close(report[1]);
    forward_signals_to(init, &old);
    outlive(init, forwarder, report[0]);
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
    return 0;
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
