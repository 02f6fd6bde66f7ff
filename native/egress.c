/*
 * --egress KIND:PATH: a default route out of the sandbox's network namespace through a
 * user-mode network stack the distribution ships -- pasta (package passt) or slirp4netns
 * -- as rootless Podman and RootlessKit do. Not a network stack of our own: the helper
 * opens a tap device in the sandbox's namespace and makes every outbound connection
 * itself, as an ordinary socket of the host's network. The sandbox keeps its own
 * loopback and ports; the helper maps nothing of the host's loopback in
 * (pasta --no-map-gw, slirp4netns --disable-host-loopback) and publishes no port
 * (pasta -t/-u/-T/-U none).
 *
 * The helper has to be started from the host's network namespace, so a small spawner
 * process stays there: forked by the warm holder before it leaves the host's network
 * (each namespace it makes ahead gets its helper before it is handed out), or by a
 * launcher in OP_PREPARE (its own namespace, and a reused worker's fresh ones). It is
 * handed a network namespace as an fd, starts the helper on it, and answers once the
 * helper says the tap device is configured.
 *
 * Lifetime: pasta exits by itself when its namespace goes. slirp4netns doesn't; it gets
 * --exit-fd, the read end of a pipe whose write end goes along with the namespace and is
 * held by whatever holds the sandbox (its launcher, or the worker): when that ends, so
 * does the helper. Both die with the spawner where their credentials allow
 * (PR_SET_PDEATHSIG; pasta drops it with its capabilities, and ends with its namespace).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sandbox.h"

/* How long a helper gets to configure the tap device before the sandbox gives up on it. */
#define READY_TIMEOUT_MS 10000
/* The address the sandbox's resolv.conf names: the helper answers DNS there by forwarding
   to the host's resolvers (pasta --dns-forward; slirp4netns has 10.0.2.3 built in) */
#define PASTA_DNS "169.254.1.1"

/* argv of the helper for a namespace at fd `ns`: ready on fd `ready`, exit on fd `exit_r` */
static void helper_argv(const struct plan *p, int ns, int ready, int exit_r, char **argv, char bufs[4][48]) {
  int n = 0;
  argv[n++] = (char *)p->egress_path;
  if (p->egress_kind == EGRESS_PASTA) {
    snprintf(bufs[0], sizeof bufs[0], "/proc/self/fd/%d", ns);
    snprintf(bufs[1], sizeof bufs[1], "/proc/self/fd/%d", ready);
    /* foreground (the spawner waits for it); uid 0 of the sandbox, not "nobody"; nothing
       published either way; the host's loopback not mapped to the gateway */
    const char *fixed[] = {"--config-net", "-f", "-q", "--runas", "0", "-t", "none", "-u", "none", "-T", "none", "-U", "none",
                           "--no-map-gw", "--dns-forward", PASTA_DNS, "--netns", bufs[0], "-P", bufs[1], NULL};
    for (int i = 0; fixed[i]; i++) argv[n++] = (char *)fixed[i];
  } else {
    snprintf(bufs[0], sizeof bufs[0], "--ready-fd=%d", ready);
    snprintf(bufs[1], sizeof bufs[1], "--exit-fd=%d", exit_r);
    snprintf(bufs[2], sizeof bufs[2], "/proc/self/fd/%d", ns);
    const char *fixed[] = {"--configure", "--mtu=65520", "--disable-host-loopback", "--netns-type=path", bufs[0], bufs[1], bufs[2], "tap0", NULL};
    for (int i = 0; fixed[i]; i++) argv[n++] = (char *)fixed[i];
  }
  argv[n] = NULL;
}

/*
 * Starts the helper on the namespace `ns` and waits until it is ready: 0 and, for
 * slirp4netns, the write end of its exit pipe in *exit_w; or -1 with the reason in `why`.
 */
static int start_helper(const struct plan *p, int ns, int *exit_w, char *why, size_t why_len) {
  int ready[2] = {-1, -1}, exits[2] = {-1, -1}, rc = -1;
  int log = memfd_create("egress-log", MFD_CLOEXEC);
  *exit_w = -1;
  if (log < 0 || pipe2(ready, O_CLOEXEC) < 0 || (p->egress_kind == EGRESS_SLIRP && pipe2(exits, O_CLOEXEC) < 0)) {
    snprintf(why, why_len, "can't make its pipes: %s", strerror(errno));
    goto out;
  }
  pid_t pid = fork();
  if (pid < 0) {
    snprintf(why, why_len, "can't fork: %s", strerror(errno));
    goto out;
  }
  if (pid == 0) {
    /* dies with the spawner (until it changes its credentials); its output goes to the log */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(log, 1);
    dup2(log, 2);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
    int keep[] = {ns, ready[1], exits[0]};
    for (int i = 0; i < 3; i++) if (keep[i] >= 0) fcntl(keep[i], F_SETFD, 0);
    char *argv[32], bufs[4][48];
    helper_argv(p, ns, ready[1], exits[0], argv, bufs);
    execv(p->egress_path, argv);
    dprintf(2, "can't run %s: %s", p->egress_path, strerror(errno));
    _exit(127);
  }
  close(ready[1]), ready[1] = -1;
  if (exits[0] >= 0) close(exits[0]), exits[0] = -1;
  struct pollfd wait_ready = {.fd = ready[0], .events = POLLIN};
  int polled;
  while ((polled = poll(&wait_ready, 1, READY_TIMEOUT_MS)) < 0 && errno == EINTR) {}
  char byte;
  if (polled > 0 && read_retry(ready[0], &byte, 1) == 1) {
    rc = 0;
    *exit_w = exits[1], exits[1] = -1;
    goto out;
  }
  /* never ready: what it said is the reason */
  kill(pid, SIGKILL);
  char said[400] = {0};
  ssize_t got = pread(log, said, sizeof said - 1, 0);
  for (ssize_t i = 0; i < got; i++) if (said[i] == '\n' || said[i] == '\r') said[i] = ' ';
  snprintf(why, why_len, "%s %s (%s)", p->egress_path, polled == 0 ? "wasn't ready in time" : "exited before it was ready",
           got > 0 ? said : "it said nothing");
out:
  for (int i = 0; i < 2; i++) {
    if (ready[i] >= 0) close(ready[i]);
    if (exits[i] >= 0) close(exits[i]);
  }
  if (log >= 0) close(log);
  return rc;
}

/* The spawner: one helper per namespace it is sent, until its socket closes. */
static void run_spawner(int ctl, const struct plan *p) __attribute__((noreturn));
static void run_spawner(int ctl, const struct plan *p) {
  /* helpers are reaped by the kernel: the spawner only needs to know they got ready */
  signal(SIGCHLD, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);
  for (;;) {
    char byte;
    int ns = -1;
    ssize_t n = recv_with_fd(ctl, &byte, 1, &ns);
    if (n == 0 || (n < 0 && errno != EBADMSG)) _exit(0);
    if (ns < 0) continue;
    char answer[512] = "k";
    int exit_w = -1;
    if (start_helper(p, ns, &exit_w, answer + 1, sizeof answer - 1) < 0) answer[0] = 'e';
    close(ns);
    send_with_fd(ctl, answer, answer[0] == 'k' ? 1 : strlen(answer), exit_w);
    if (exit_w >= 0) close(exit_w);
  }
}

int start_egress_spawner(const struct plan *p, int own_mounts, pid_t *spawner) {
  int ctl;
  pid_t pid = fork_helper(&ctl, NULL);
  if (pid < 0) return -1;
  if (pid == 0) {
    fcntl(ctl, F_SETFD, FD_CLOEXEC);
    /*
     * The helpers read the host's /etc/resolv.conf (their DNS forwarder asks the host's
     * nameservers), but a launcher's spawner shares the sandbox's mount namespace, where
     * the sandbox's own resolv.conf is about to be bound: it keeps a copy of the tree as
     * it is now, before any mount of ours, and says so before the launcher goes on.
     */
    if (own_mounts && (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)) _exit(1);
    if (write_all(ctl, "r", 1) < 0) _exit(1);
    run_spawner(ctl, p);
  }
  char ready;
  if (read_retry(ctl, &ready, 1) != 1) {
    close(ctl);
    errno = ECHILD;
    return -1;
  }
  *spawner = pid;
  return ctl;
}

int request_egress(int spawner, int ns) {
  if (send_with_fd(spawner, "n", 1, ns) < 0) return fail(STEP_EGRESS, "can't reach the egress helper's spawner");
  return 0;
}

int egress_answer(int spawner, int *exit_w) {
  char answer[512];
  *exit_w = -1;
  ssize_t n = recv_with_fd(spawner, answer, sizeof answer - 1, exit_w);
  errno = 0;
  if (n <= 0) return fail(STEP_EGRESS, "the egress helper's spawner ended");
  answer[n] = 0;
  if (answer[0] != 'k') {
    if (*exit_w >= 0) close(*exit_w), *exit_w = -1;
    return fail(STEP_EGRESS, "can't start the user-mode network: %s", answer + 1);
  }
  return 0;
}

int attach_egress(int spawner, int ns, int *exit_w) {
  *exit_w = -1;
  return request_egress(spawner, ns) < 0 ? -1 : egress_answer(spawner, exit_w);
}
