/*
 * vitest-pool-rootless launcher: build a rootless sandbox, then exec a command in it.
 *
 *   launcher [OPTIONS] -- CMD [ARGS...]
 *
 * The TypeScript side (src/ns) validates options and decides every policy question;
 * this program only executes the plan it is handed, one step at a time, in one narrated
 * main(). It must stay single-threaded: unshare(CLONE_NEWUSER) and setns() into a user
 * namespace fail with EINVAL in a multithreaded process (user_namespaces(7)), which is
 * why Node cannot do this itself.
 *
 * A failing step exits with its own status (see steps.h) and prints exactly one line:
 *   vitest-pool-rootless: <step>: <reason>
 * With --status-fd N it also writes that status as one byte to fd N. The exit status
 * alone can't tell a failed step from a command that exits with 230..250 itself; the fd
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

#include "steps.h"

#define MAX_LIST 64

extern char **environ;

struct id_range {
  unsigned long inside, outside, count;
};

/* One private tmpfs and the kept paths bound back onto it: keep[first_keep..+n_keep). */
struct tmpfs_mount {
  const char *path;
  int first_keep, n_keep;
};

struct plan {
  struct id_range uid_map[MAX_LIST];
  int n_uid_map;
  struct id_range gid_map[MAX_LIST];
  int n_gid_map;
  const char *newuidmap; /* NULL: write maps directly */
  const char *newgidmap;
  int userns_fd;         /* >= 0: join this user namespace instead of creating one */
  struct tmpfs_mount tmpfs[MAX_LIST]; /* in argv order, which is mount order */
  int n_tmpfs;
  const char *tmpfs_size; /* NULL: kernel default */
  const char *keep[MAX_LIST]; /* grouped by tmpfs: each --keep follows its --tmpfs */
  int n_keep;
  const char *hosts_file;
  const char *hostname;
  int host_network;
  int new_session;
  int hold;              /* create only the user namespace, report, wait for stdin EOF */
  int reset;             /* inside a sandbox: replace its writable layers (reused worker) */
  int pid_namespace;     /* run CMD as pid 2 under a small init in a new pid namespace */
  char **argv;
};

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

static void die_step(int step, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));
static void die_step(int step, const char *fmt, ...) {
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

static ssize_t write_all(int fd, const void *buf, size_t len) {
  const char *p = buf;
  size_t done = 0;
  while (done < len) {
    ssize_t n = write(fd, p + done, len - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    done += (size_t)n;
  }
  return (ssize_t)done;
}

static ssize_t read_retry(int fd, void *buf, size_t len) {
  ssize_t n;
  do n = read(fd, buf, len); while (n < 0 && errno == EINTR);
  return n;
}

static int write_file(const char *path, const char *content) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = write_all(fd, content, strlen(content));
  int saved = errno;
  close(fd);
  errno = saved;
  return n < 0 ? -1 : 0;
}

/* ---- parsing the plan ---- */

static int parse_ulong(const char *s, unsigned long *out) {
  char *end;
  if (!*s || *s == '-') return -1;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (errno || *end) return -1;
  *out = v;
  return 0;
}

static int parse_range(const char *s, struct id_range *r) {
  char buf[96];
  if (strlen(s) >= sizeof buf) return -1;
  strcpy(buf, s);
  char *a = buf, *b = strchr(a, ':');
  if (!b) return -1;
  *b++ = 0;
  char *c = strchr(b, ':');
  if (!c) return -1;
  *c++ = 0;
  if (parse_ulong(a, &r->inside) || parse_ulong(b, &r->outside) || parse_ulong(c, &r->count)) return -1;
  if (r->count == 0 || r->inside + r->count > 4294967295UL || r->outside + r->count > 4294967295UL) return -1;
  return 0;
}

static void usage_error(const char *fmt, const char *arg) __attribute__((noreturn));
static void usage_error(const char *fmt, const char *arg) {
  char msg[512];
  snprintf(msg, sizeof msg, fmt, arg);
  errno = 0;
  die_step(STEP_USAGE, "%s (usage: launcher [--uid-map I:O:N]... [--gid-map I:O:N]... "
                       "[--newuidmap PATH --newgidmap PATH] [--userns-fd FD] [--tmpfs PATH [--keep PATH]...]... "
                       "[--tmpfs-size SIZE] [--hosts-file PATH] [--hostname NAME] [--host-network] "
                       "[--new-session] [--pid-namespace] [--status-fd FD] -- CMD [ARGS...] | --hold | --reset)",
           msg);
}

static int parse_fd(const char *s) {
  unsigned long fd;
  return parse_ulong(s, &fd) || fd > INT_MAX ? -1 : (int)fd;
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
    if (fd < 0) usage_error("bad fd '%s'", argv[i + 1]);
    if (fd <= 2) usage_error("--status-fd %s would be a standard stream", argv[i + 1]);
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) usage_error("--status-fd %s is not an open fd", argv[i + 1]);
    status_fd = fd;
    return;
  }
}

static void parse_plan(int argc, char **argv, struct plan *p) {
  memset(p, 0, sizeof *p);
  p->userns_fd = -1;
  take_status_fd(argc, argv);
  int i = 1;
  for (; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VALUE() do { if (!v) usage_error("%s needs a value", a); i++; } while (0)
#define PUSH(list, n) do { if (n >= MAX_LIST) usage_error("too many %s", a); list[n++] = v; } while (0)
    if (strcmp(a, "--") == 0) { i++; break; }
    else if (strcmp(a, "--uid-map") == 0 || strcmp(a, "--gid-map") == 0) {
      NEED_VALUE();
      int is_uid = a[2] == 'u';
      struct id_range *list = is_uid ? p->uid_map : p->gid_map;
      int *n = is_uid ? &p->n_uid_map : &p->n_gid_map;
      if (*n >= MAX_LIST) usage_error("too many %s", a);
      if (parse_range(v, &list[*n])) usage_error("bad id range '%s', expected INSIDE:OUTSIDE:COUNT", v);
      (*n)++;
    }
    else if (strcmp(a, "--newuidmap") == 0) { NEED_VALUE(); p->newuidmap = v; }
    else if (strcmp(a, "--newgidmap") == 0) { NEED_VALUE(); p->newgidmap = v; }
    else if (strcmp(a, "--userns-fd") == 0) {
      NEED_VALUE();
      if ((p->userns_fd = parse_fd(v)) < 0) usage_error("bad fd '%s'", v);
    }
    else if (strcmp(a, "--status-fd") == 0) NEED_VALUE(); /* taken already */
    else if (strcmp(a, "--tmpfs") == 0) {
      NEED_VALUE();
      if (p->n_tmpfs >= MAX_LIST) usage_error("too many %s", a);
      p->tmpfs[p->n_tmpfs++] = (struct tmpfs_mount){.path = v, .first_keep = p->n_keep, .n_keep = 0};
    }
    else if (strcmp(a, "--tmpfs-size") == 0) { NEED_VALUE(); p->tmpfs_size = v; }
    else if (strcmp(a, "--keep") == 0) {
      /* the plan says which tmpfs each kept path goes back onto: the --tmpfs before it */
      NEED_VALUE();
      if (p->n_tmpfs == 0) usage_error("--keep %s comes before any --tmpfs", v);
      PUSH(p->keep, p->n_keep);
      p->tmpfs[p->n_tmpfs - 1].n_keep++;
    }
    else if (strcmp(a, "--hosts-file") == 0) { NEED_VALUE(); p->hosts_file = v; }
    else if (strcmp(a, "--hostname") == 0) { NEED_VALUE(); p->hostname = v; }
    else if (strcmp(a, "--host-network") == 0) p->host_network = 1;
    else if (strcmp(a, "--new-session") == 0) p->new_session = 1;
    else if (strcmp(a, "--hold") == 0) p->hold = 1;
    else if (strcmp(a, "--reset") == 0) p->reset = 1;
    else if (strcmp(a, "--pid-namespace") == 0) p->pid_namespace = 1;
    else usage_error("unknown option '%s'", a);
#undef NEED_VALUE
#undef PUSH
  }
  if (p->reset) {
    if (i < argc || p->hold || p->userns_fd >= 0 || p->n_uid_map || p->n_gid_map || p->hosts_file || p->host_network || p->new_session || p->pid_namespace)
      usage_error("%s", "--reset takes only --tmpfs, --keep, --tmpfs-size and --hostname");
    return;
  }
  if (p->hold) {
    if (i < argc || p->userns_fd >= 0) usage_error("%s", "--hold takes no command and no --userns-fd");
    if (p->n_uid_map == 0 || p->n_gid_map == 0) usage_error("%s", "--hold needs --uid-map and --gid-map");
    return;
  }
  if (i >= argc) usage_error("%s", "missing '-- CMD'");
  if ((p->newuidmap == NULL) != (p->newgidmap == NULL))
    usage_error("%s", "--newuidmap and --newgidmap go together");
  if (status_fd >= 0 && status_fd == p->userns_fd) usage_error("%s", "--status-fd and --userns-fd must differ");
  if (p->userns_fd < 0 && (p->n_uid_map == 0 || p->n_gid_map == 0))
    usage_error("%s", "--uid-map and --gid-map are required unless --userns-fd is given");
  p->argv = argv + i;
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

/* ---- mounts ---- */

/* mkdir -p for directories, and an empty file as the last component for file binds. */
static int make_mountpoint(const char *path, int is_dir) {
  char buf[PATH_MAX];
  if (strlen(path) >= sizeof buf) { errno = ENAMETOOLONG; return -1; }
  strcpy(buf, path);
  for (char *s = buf + 1; *s; s++) {
    if (*s != '/') continue;
    *s = 0;
    if (mkdir(buf, 0755) < 0 && errno != EEXIST) return -1;
    *s = '/';
  }
  if (is_dir) return mkdir(buf, 0755) < 0 && errno != EEXIST ? -1 : 0;
  int fd = open(buf, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return errno == EISDIR ? 0 : -1;
  close(fd);
  return 0;
}

static int bind_fd(int fd, const char *target) {
  char src[64];
  snprintf(src, sizeof src, "/proc/self/fd/%d", fd);
  return mount(src, target, NULL, MS_BIND | MS_REC, NULL);
}

/* Copies src_fd's content into a scratch tmpfs over dirname(src_path), binds it on target. */
static int private_copy_bind(int src_fd, const char *src_path, const char *target) {
  char dir[PATH_MAX], copy[PATH_MAX + 16], buf[65536];
  if (strlen(src_path) >= sizeof dir) { errno = ENAMETOOLONG; return -1; }
  strcpy(dir, src_path);
  char *slash = strrchr(dir, '/');
  if (!slash || slash == dir) { errno = EINVAL; return -1; }
  *slash = 0;
  if (mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m") < 0) return -1;
  snprintf(copy, sizeof copy, "%s/hosts", dir);
  int out = open(copy, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0) return -1;
  ssize_t n;
  while ((n = read_retry(src_fd, buf, sizeof buf)) > 0)
    if (write_all(out, buf, (size_t)n) < 0) { close(out); return -1; }
  close(out);
  if (n < 0) return -1;
  if (mount(copy, target, NULL, MS_BIND, NULL) < 0) return -1;
  return umount2(dir, MNT_DETACH);
}

/* ---- network ---- */

static int loopback_up(void) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return -1;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strcpy(ifr.ifr_name, "lo");
  int rc = ioctl(s, SIOCGIFFLAGS, &ifr);
  if (rc == 0) {
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    rc = ioctl(s, SIOCSIFFLAGS, &ifr);
  }
  int saved = errno;
  close(s);
  errno = saved;
  return rc;
}

/* ---- pid namespace: outer launcher -> init (pid 1) -> CMD (pid 2) ---- */

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
 * Returns in the process that goes on to exec CMD, as pid 2 of a new pid namespace.
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
static void enter_pid_namespace(void) {
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
  mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
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
 * Otherwise one is made here.
 */
static void lock_sandbox_mounts(const struct plan *p, int inner_fd) {
  int flags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | (p->host_network ? 0 : CLONE_NEWNET);
  if (inner_fd >= 0) {
    if (setns(inner_fd, CLONE_NEWUSER) < 0) die_step(STEP_SETNS, "can't join the warm nested user namespace (fd %d) that locks the mounts", inner_fd);
    close(inner_fd);
    if (unshare(flags) < 0) die_step(STEP_UNSHARE, "can't create the mount/network/UTS/IPC namespaces that lock the mounts");
  } else {
    enter_identity_user_namespace(flags, " that locks the mounts");
  }
  /* our ids are the same numbers again; take them explicitly, as in the outer namespace */
  if (setresgid(0, 0, 0) < 0) die_step(STEP_SETID, "can't become gid 0 in the nested namespace");
  if (setgroups(0, NULL) < 0 && errno != EPERM) die_step(STEP_SETID, "can't drop supplementary groups in the nested namespace");
  if (setresuid(0, 0, 0) < 0) die_step(STEP_SETID, "can't become uid 0 in the nested namespace");
}

/* tmpfs mount options: world-writable and sticky like /tmp, sized as the plan says */
static void tmpfs_options(const struct plan *p, char *buf, size_t len) {
  if (p->tmpfs_size) snprintf(buf, len, "mode=1777,size=%s", p->tmpfs_size);
  else snprintf(buf, len, "mode=1777");
}

/*
 * Puts an empty writable tmpfs on each target, over its locked read-only floor, and binds
 * the kept paths again from the floor's binds (recursively: locked mounts below them stay
 * locked). Every kept path is opened before any upper tmpfs, so each resolves as the
 * floor shows it; one a later tmpfs of the plan hides there (a --keep listed with the
 * wrong --tmpfs) is hidden on the upper layer too: not bound at all.
 */
static void mount_writable_layers(const struct plan *p, const char *opts) {
  int keep_fd[MAX_LIST], keep_dir[MAX_LIST];
  for (int k = 0; k < p->n_keep; k++) {
    struct stat st;
    keep_fd[k] = open(p->keep[k], O_PATH | O_CLOEXEC);
    if (keep_fd[k] < 0 && errno != ENOENT) die_step(STEP_KEEP, "can't open %s on the read-only floor", p->keep[k]);
    if (keep_fd[k] >= 0 && fstat(keep_fd[k], &st) < 0) die_step(STEP_KEEP, "can't stat %s on the read-only floor", p->keep[k]);
    keep_dir[k] = keep_fd[k] >= 0 && S_ISDIR(st.st_mode);
  }
  for (int t = 0; t < p->n_tmpfs; t++) {
    const struct tmpfs_mount *m = &p->tmpfs[t];
    if (mount("tmpfs", m->path, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0)
      die_step(STEP_TMPFS, "can't mount a tmpfs on %s", m->path);
    for (int k = m->first_keep; k < m->first_keep + m->n_keep; k++) {
      if (keep_fd[k] < 0) continue;
      if (make_mountpoint(p->keep[k], keep_dir[k]) < 0) die_step(STEP_KEEP, "can't create %s", p->keep[k]);
      if (bind_fd(keep_fd[k], p->keep[k]) < 0) die_step(STEP_KEEP, "can't bind %s back", p->keep[k]);
    }
  }
  for (int k = 0; k < p->n_keep; k++) if (keep_fd[k] >= 0) close(keep_fd[k]);
}

/* Most mounts a test can stack on one path before --reset gives up on it. */
#define MAX_STACKED 64

/*
 * Unmounts whatever covers `path` down to the first locked mount -- for a tmpfs target its
 * read-only floor, for /etc/hosts the private copy: everything the launcher mounted is
 * locked, so the kernel refuses (EINVAL) to go further, and the host's directory stays
 * covered whatever was stacked on it or taken away.
 */
static void uncover(const char *path) {
  for (int n = 0; n <= MAX_STACKED; n++) {
    if (umount2(path, MNT_DETACH) == 0) continue;
    if (errno == EINVAL) return;
    die_step(STEP_TMPFS, "can't unmount what covers %s", path);
  }
  errno = 0;
  die_step(STEP_TMPFS, "more than %d mounts stacked on %s", MAX_STACKED, path);
}

/*
 * --reset: run by a reused worker (isolate: false) before each test file after the first,
 * as its child: in the worker's own mount and UTS namespaces, as their root. Gives the
 * sandbox back what a new one starts with -- each tmpfs target's writable layer replaced
 * by an empty one with the kept paths bound again (what a test stacked on it, or took
 * away, makes no difference), nothing stacked on /etc/hosts, and the hostname. The
 * worker rewrites /etc/hosts itself.
 */
static void reset_sandbox(const struct plan *p) __attribute__((noreturn));
static void reset_sandbox(const struct plan *p) {
  for (int t = 0; t < p->n_tmpfs; t++) uncover(p->tmpfs[t].path);
  uncover("/etc/hosts");
  char opts[128];
  tmpfs_options(p, opts, sizeof opts);
  mount_writable_layers(p, opts);
  if (p->hostname && sethostname(p->hostname, strlen(p->hostname)) < 0)
    die_step(STEP_HOSTNAME, "can't set hostname %s", p->hostname);
  _exit(0);
}

int main(int argc, char **argv) {
  struct plan p;
  parse_plan(argc, argv, &p);
  if (p.reset) reset_sandbox(&p);

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
    if (write_all(1, "ready\n", 6) < 0) die_step(STEP_HOLD, "can't report readiness");
    char sink[64];
    while (read_retry(0, sink, sizeof sink) > 0) {}
    _exit(0);
  }

  /*
   * Open what we will bind before any mount -- a tmpfs on the temp dir hides the hosts
   * file and the kept paths when they live there, as they usually do -- but after
   * unshare(CLONE_NEWNS): bind mounts only take sources from our own mount namespace.
   */
  int hosts_fd = -1;
  if (p.hosts_file) {
    hosts_fd = open(p.hosts_file, O_RDONLY | O_CLOEXEC);
    if (hosts_fd < 0) die_step(STEP_OPEN_HOSTS, "can't open hosts file %s", p.hosts_file);
  }
  int keep_fd[MAX_LIST];
  int keep_dir[MAX_LIST];
  for (int k = 0; k < p.n_keep; k++) {
    struct stat st;
    keep_fd[k] = open(p.keep[k], O_PATH | O_CLOEXEC);
    if (keep_fd[k] < 0 || fstat(keep_fd[k], &st) < 0) die_step(STEP_OPEN_KEEP, "can't open %s", p.keep[k]);
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
   * Each tmpfs target gets two layers. This one, the floor, is read-only and holds only
   * the kept paths; it is locked below, so no test can ever uncover what the host has
   * at that path. The writable tmpfs the test sees goes on top of it after the lock.
   */
  char opts[128];
  tmpfs_options(&p, opts, sizeof opts);
  for (int t = 0; t < p.n_tmpfs; t++) {
    const struct tmpfs_mount *m = &p.tmpfs[t];
    if (mount("tmpfs", m->path, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0)
      die_step(STEP_TMPFS, "can't mount a tmpfs on %s", m->path);
    /* bind back what the plan lists for this tmpfs (project, node, caches); which path
       lies under which tmpfs was decided by the plan, not here */
    for (int k = m->first_keep; k < m->first_keep + m->n_keep; k++) {
      if (make_mountpoint(p.keep[k], keep_dir[k]) < 0) die_step(STEP_KEEP, "can't create %s", p.keep[k]);
      if (bind_fd(keep_fd[k], p.keep[k]) < 0) die_step(STEP_KEEP, "can't bind %s back", p.keep[k]);
    }
    if (mount(NULL, m->path, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
      die_step(STEP_TMPFS, "can't make the tmpfs under %s read-only", m->path);
  }
  for (int k = 0; k < p.n_keep; k++) close(keep_fd[k]);

  lock_sandbox_mounts(&p, inner_fd);

  /*
   * The writable layer, made in the locked namespace and so not locked itself: a reused
   * worker's reset (--reset) replaces it between files. A test that unmounts it finds
   * the read-only floor, never the host's directory.
   */
  mount_writable_layers(&p, opts);

  if (p.hostname && sethostname(p.hostname, strlen(p.hostname)) < 0)
    die_step(STEP_HOSTNAME, "can't set hostname %s", p.hostname);

  /* a new network namespace starts with lo down: 127.0.0.1 would be unreachable */
  if (!p.host_network && loopback_up() < 0) die_step(STEP_LOOPBACK, "can't bring up lo");

  /* the old cwd may now be hidden under a tmpfs; re-resolve it through the new tree */
  if (have_cwd && chdir(cwd) < 0) die_step(STEP_CHDIR, "can't enter %s (add it to the kept paths)", cwd);

  /* no controlling terminal: a test can't push keystrokes into the user's shell (TIOCSTI) */
  if (p.new_session && setsid() < 0 && errno != EPERM) die_step(STEP_SESSION, "can't start a new session");

  if (p.pid_namespace) {
    /* the outer launcher stays behind as Vitest's child: it must die with Vitest too */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) die_step(STEP_PDEATHSIG, "can't set PR_SET_PDEATHSIG");
    if (getppid() != parent) { errno = 0; die_step(STEP_PDEATHSIG, "parent process exited before the sandbox started"); }
    enter_pid_namespace();
    parent = 1; /* from here on, our parent is the namespace's init */
  }

  /*
   * Die with the parent. PDEATHSIG is cleared by credential changes, so it is set last,
   * and the parent may already be gone by now: check after arming it.
   */
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) die_step(STEP_PDEATHSIG, "can't set PR_SET_PDEATHSIG");
  if (getppid() != parent) { errno = 0; die_step(STEP_PDEATHSIG, "parent process exited before the sandbox started"); }

  execvp(p.argv[0], p.argv);
  die_step(STEP_EXEC, "can't run %s", p.argv[0]);
}
