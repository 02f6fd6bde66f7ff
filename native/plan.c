/*
 * The plan's parser: launcher flags in, a struct plan out. Decides nothing about the
 * sandbox (the TypeScript side did); refuses only what can't be carried out as written.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sandbox.h"

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

void usage_error(const char *fmt, const char *arg) {
  char msg[512];
  snprintf(msg, sizeof msg, fmt, arg);
  errno = 0;
  die_step(STEP_USAGE, "%s (usage: launcher [--uid-map I:O:N]... [--gid-map I:O:N]... "
                       "[--newuidmap PATH --newgidmap PATH] [--userns-fd FD [--networks SOCKET]] [--tmpfs PATH [--keep PATH]...]... "
                       "[--tmpfs-size SIZE] [--hosts-file PATH] [--nsswitch-file PATH] [--hostname NAME] "
                       "[--forward INSIDE_PORT:HOST_PORT]... [--relay-only] [--host-network] "
                       "[--new-session] [--pid-namespace] [--status-fd FD] -- CMD [ARGS...] | --hold [--networks SOCKET] | "
                       "--reset [--tmpfs PATH [--keep PATH]...]... [--tmpfs-size SIZE] [--hostname NAME] "
                       "[--new-network] [--kill-others] [--unmount PATH]... [--forward INSIDE_PORT:HOST_PORT]...)",
           msg);
}

static int parse_forward(const char *s, struct forward *f) {
  char buf[16];
  if (strlen(s) >= sizeof buf) return -1;
  strcpy(buf, s);
  char *colon = strchr(buf, ':');
  if (!colon) return -1;
  *colon = 0;
  unsigned long inside, host;
  if (parse_ulong(buf, &inside) || parse_ulong(colon + 1, &host) || inside == 0 || inside > 65535 || host == 0 || host > 65535) return -1;
  f->inside = (uint16_t)inside;
  f->host = (uint16_t)host;
  return 0;
}

int parse_fd(const char *s) {
  unsigned long fd;
  return parse_ulong(s, &fd) || fd > INT_MAX ? -1 : (int)fd;
}

void parse_plan(int argc, char **argv, struct plan *p) {
  memset(p, 0, sizeof *p);
  p->userns_fd = -1;
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
    else if (strcmp(a, "--status-fd") == 0) NEED_VALUE(); /* the launcher's, taken before */
    else if (strcmp(a, "--tmpfs") == 0) {
      NEED_VALUE();
      struct layers *l = &p->layers;
      if (l->n_tmpfs >= MAX_LIST) usage_error("too many %s", a);
      l->tmpfs[l->n_tmpfs++] = (struct tmpfs_mount){.path = v, .first_keep = l->n_keep, .n_keep = 0};
    }
    else if (strcmp(a, "--tmpfs-size") == 0) { NEED_VALUE(); p->layers.tmpfs_size = v; }
    else if (strcmp(a, "--keep") == 0) {
      /* the plan says which tmpfs each kept path goes back onto: the --tmpfs before it */
      NEED_VALUE();
      struct layers *l = &p->layers;
      if (l->n_tmpfs == 0) usage_error("--keep %s comes before any --tmpfs", v);
      PUSH(l->keep, l->n_keep);
      l->tmpfs[l->n_tmpfs - 1].n_keep++;
    }
    else if (strcmp(a, "--hosts-file") == 0) { NEED_VALUE(); p->hosts_file = v; }
    else if (strcmp(a, "--nsswitch-file") == 0) { NEED_VALUE(); p->nsswitch_file = v; }
    else if (strcmp(a, "--forward") == 0) {
      NEED_VALUE();
      if (p->n_forwards >= MAX_LIST) usage_error("too many %s", a);
      if (parse_forward(v, &p->forwards[p->n_forwards])) usage_error("bad forward '%s', expected INSIDE_PORT:HOST_PORT", v);
      p->n_forwards++;
    }
    else if (strcmp(a, "--hostname") == 0) { NEED_VALUE(); p->hostname = v; }
    else if (strcmp(a, "--host-network") == 0) p->host_network = 1;
    else if (strcmp(a, "--new-session") == 0) p->new_session = 1;
    else if (strcmp(a, "--hold") == 0) p->hold = 1;
    else if (strcmp(a, "--networks") == 0) { NEED_VALUE(); p->networks = v; }
    else if (strcmp(a, "--reset") == 0) p->reset = 1;
    else if (strcmp(a, "--new-network") == 0) p->new_network = 1;
    else if (strcmp(a, "--kill-others") == 0) p->kill_others = 1;
    else if (strcmp(a, "--unmount") == 0) { NEED_VALUE(); PUSH(p->unmount, p->n_unmount); }
    else if (strcmp(a, "--pid-namespace") == 0) p->pid_namespace = 1;
    else if (strcmp(a, "--relay-only") == 0) p->relay_only = 1;
    else usage_error("unknown option '%s'", a);
#undef NEED_VALUE
#undef PUSH
  }
  if (p->reset) {
    if (i < argc || p->hold || p->userns_fd >= 0 || p->n_uid_map || p->n_gid_map || p->hosts_file || p->host_network || p->new_session || p->pid_namespace || p->networks)
      usage_error("%s", "--reset takes only --tmpfs, --keep, --tmpfs-size, --hostname, --new-network, --kill-others, --unmount and --forward");
    return;
  }
  if (p->new_network || p->kill_others || p->n_unmount)
    usage_error("%s", "--new-network, --kill-others and --unmount go with --reset");
  if (p->n_forwards && p->host_network)
    usage_error("%s", "--forward needs the sandbox's own network, not --host-network");
  if (p->hold) {
    if (i < argc || p->userns_fd >= 0) usage_error("%s", "--hold takes no command and no --userns-fd");
    if (p->n_uid_map == 0 || p->n_gid_map == 0) usage_error("%s", "--hold needs --uid-map and --gid-map");
    return;
  }
  if (i >= argc) usage_error("%s", "missing '-- CMD'");
  /* made ahead by the warm holder: they belong to the user namespace it hands out */
  if (p->networks && p->userns_fd < 0) usage_error("%s", "--networks goes with --userns-fd (or --hold)");
  if ((p->newuidmap == NULL) != (p->newgidmap == NULL))
    usage_error("%s", "--newuidmap and --newgidmap go together");
  if (p->userns_fd < 0 && (p->n_uid_map == 0 || p->n_gid_map == 0))
    usage_error("%s", "--uid-map and --gid-map are required unless --userns-fd is given");
  p->argv = argv + i;
}
