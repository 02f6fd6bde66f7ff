/*
 * Parse -> plan: launcher flags in, a struct plan out -- its options, checked together
 * in one place, and the ordered list of ops that carries them out (run by ops.c). Decides
 * nothing about the sandbox (the TypeScript side did); refuses only what can't be carried
 * out as written. Never exits: a refusal is a usage failure (fail.c) returned as -1, so
 * the addon and the fuzz target (native/fuzz/argv.c) can call it as the launcher does.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sandbox.h"

/* The largest id a user namespace map can name, plus one (user_namespaces(7)). */
#define ID_LIMIT 4294967296UL

static int parse_ulong(const char *s, unsigned long max, unsigned long *out) {
  char *end;
  if (*s < '0' || *s > '9') return -1; /* strtoul would take " 1", "+1" and "-1" */
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (errno || *end || v > max) return -1;
  *out = v;
  return 0;
}

/* INSIDE:OUTSIDE:COUNT, each range within the 32-bit ids on both sides. */
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
  /* each part below 2^32 first: the sums below can then not wrap, even in 32 bits */
  if (parse_ulong(a, ID_LIMIT - 1, &r->inside) || parse_ulong(b, ID_LIMIT - 1, &r->outside) || parse_ulong(c, ID_LIMIT - 1, &r->count)) return -1;
  if (r->count == 0 || r->count > ID_LIMIT - 1 - r->inside || r->count > ID_LIMIT - 1 - r->outside) return -1;
  return 0;
}

/* PORT=PATH: the sandbox's port, and the Unix socket the host reaches it through. */
static int parse_publish(const char *s, struct plan *p) {
  const char *eq = strchr(s, '=');
  char port[8];
  unsigned long v;
  if (!eq || eq == s || (size_t)(eq - s) >= sizeof port || eq[1] != '/') return -1;
  memcpy(port, s, (size_t)(eq - s));
  port[eq - s] = 0;
  if (parse_ulong(port, 65535, &v) || v == 0) return -1;
  p->publish_port = (uint16_t)v;
  p->publish_path = eq + 1;
  return 0;
}

/* A SEP B, each a port from 1 to 65535. */
static int parse_port_pair(const char *s, char sep, uint16_t *a, uint16_t *b) {
  char buf[16];
  if (strlen(s) >= sizeof buf) return -1;
  strcpy(buf, s);
  char *mid = strchr(buf, sep);
  if (!mid) return -1;
  *mid = 0;
  unsigned long x, y;
  if (parse_ulong(buf, 65535, &x) || parse_ulong(mid + 1, 65535, &y) || x == 0 || y == 0) return -1;
  *a = (uint16_t)x;
  *b = (uint16_t)y;
  return 0;
}

static int parse_forward(const char *s, struct forward *f) {
  return parse_port_pair(s, ':', &f->inside, &f->host);
}

/* FROM-TO, FROM at most TO. */
static int parse_port_range(const char *s, struct port_range *r) {
  return parse_port_pair(s, '-', &r->from, &r->to) < 0 || r->from > r->to ? -1 : 0;
}

int parse_fd(const char *s) {
  unsigned long fd;
  return parse_ulong(s, INT_MAX, &fd) ? -1 : (int)fd;
}

static int usage_error(const char *fmt, const char *arg) {
  char msg[512];
  snprintf(msg, sizeof msg, fmt, arg);
  errno = 0;
  return fail(STEP_USAGE, "%s (usage: launcher [--uid-map I:O:N]... [--gid-map I:O:N]... "
                          "[--newuidmap PATH --newgidmap PATH] [--userns-fd FD [--networks SOCKET]] [--tmpfs PATH [--keep PATH]...]... [--tmpfs-dir PATH]... "
                          "[--tmpfs-size SIZE] [--hosts-file PATH] [--nsswitch-file PATH] [--resolv-file PATH] [--hostname NAME] "
                          "[--forward INSIDE_PORT:HOST_PORT]... [--forward-range FROM-TO]... [--forward-host-fd FD] [--relay-only] [--publish PORT=PATH] [--enforce-permissions] [--read-only [--writable PATH]...] [--host-network | --egress KIND:PATH [--egress-allow ADDR[/LEN]]...] "
                          "[--new-session] [--pid-namespace] [--status-fd FD] -- CMD [ARGS...] | --hold [--networks SOCKET [--egress KIND:PATH]] | "
                          "--reset [--tmpfs PATH [--keep PATH]...]... [--tmpfs-dir PATH]... [--tmpfs-size SIZE] [--hostname NAME] "
                          "[--new-network [--egress KIND:PATH [--egress-allow ADDR[/LEN]]...]] [--kill-others] [--unmount PATH]... [--forward INSIDE_PORT:HOST_PORT]...)",
              msg);
}

/* ---- the op lists ---- */

static void add(struct plan *p, enum op_kind kind, const char *arg, int flag) {
  /* MAX_OPS holds the longest list the MAX_LIST limits allow */
  p->ops[p->n_ops++] = (struct op){.kind = kind, .arg = arg, .fd = -1, .flag = flag};
}

/* Each tmpfs target, then each kept path bound back onto it; `floor`: the read-only layer. */
static void add_layers(struct plan *p, int floor) {
  if (!floor && p->n_keep > 0) add(p, OP_OPEN_FLOOR, NULL, 0);
  for (int t = 0; t < p->n_tmpfs; t++) {
    add(p, OP_TMPFS, p->tmpfs[t].path, 0);
    for (int k = p->tmpfs[t].first_keep; k < p->tmpfs[t].first_keep + p->tmpfs[t].n_keep; k++) add(p, OP_KEEP, p->keep[k], !floor);
    if (floor) add(p, OP_READ_ONLY, p->tmpfs[t].path, 0);
  }
}

/*
 * A launch, in the order the ops must run; ops.c says why each is there and where it
 * runs. Two user namespaces per sandbox: the outer one (made, or joined from the warm
 * holder) maps the ids and owns the mount namespace where the sandbox's mounts are made;
 * the inner one (OP_LOCK) gets a copy of that tree in which the kernel locks every mount,
 * and owns the network, UTS and IPC namespaces, where the test's uid 0 has its capabilities.
 */
/* The temp dirs that lie in a tmpfs of the plan (TMPDIR=/tmp/user/1000): empty, made anew. */
static void add_dirs(struct plan *p) {
  for (int i = 0; i < p->n_dirs; i++) add(p, OP_MKDIR, p->dirs[i], 0);
}

static int has_forwarder(const struct plan *p) {
  return p->n_forwards > 0 || p->n_ranges > 0 || p->forward_host_fd >= 0;
}

static void plan_launch(struct plan *p) {
  if (p->networks && !p->host_network) add(p, OP_TAKE_NETWORK, p->networks, 0);
  if (p->userns_fd >= 0) add(p, OP_JOIN_USER, NULL, 0);
  else add(p, OP_NEW_USER, NULL, !p->hold);
  if (p->hold) {
    add(p, OP_HOLD, p->networks, 0);
    return;
  }
  add(p, OP_PREPARE, NULL, 0);
  add(p, OP_SETID, NULL, 0);
  add(p, OP_MOUNT_PRIVATE, NULL, 0);
  /* a read-only host: the writable paths copied first, then everything made read-only --
     before the private files and the tmpfs floors, which are new mounts and stay as made */
  if (p->read_only) {
    for (int w = 0; w < p->n_writable; w++) add(p, OP_WRITABLE, p->writable[w], 0);
    add(p, OP_READ_ONLY_ROOT, "/", 0);
  }
  if (p->hosts_file) add(p, OP_HOSTS, p->hosts_file, 0);
  if (p->nsswitch_file) add(p, OP_NSSWITCH, p->nsswitch_file, 0);
  if (p->resolv_file) add(p, OP_RESOLV, p->resolv_file, 0);
  add_layers(p, 1);
  /* back on the floor, where a writable path under a tmpfs target has its kept place: the
     lock then holds them too, and a reset binds them again with the kept paths */
  if (p->read_only && p->n_writable > 0) add(p, OP_PLACE_WRITABLE, NULL, 0);
  add(p, OP_LOCK, NULL, 0);
  add_layers(p, 0);
  add_dirs(p);
  if (p->hostname) add(p, OP_HOSTNAME, p->hostname, 0);
  if (!p->host_network) add(p, OP_LOOPBACK, NULL, 0);
  if (p->egress_kind) add(p, OP_EGRESS, NULL, 0);
  /* before the forwarder's connect filter: the publisher's own connects need no asking */
  if (p->publish_path) add(p, OP_PUBLISH, p->publish_path, 0);
  /* a forwarder the host may add ports to later is started with none too */
  if (has_forwarder(p)) add(p, OP_FORWARD, NULL, 0);
  add(p, OP_CHDIR, NULL, 0);
  if (p->new_session) add(p, OP_SESSION, NULL, 0);
  /* after every mount and file this launcher opens; before init and CMD exist */
  if (p->enforce_permissions) add(p, OP_DROP_CAPS, NULL, 0);
  if (p->pid_namespace) add(p, OP_PID_NAMESPACE, NULL, 0);
  else if (has_forwarder(p)) add(p, OP_STAY, NULL, 0);
  add(p, OP_PDEATHSIG, NULL, 0);
  add(p, OP_EXEC, p->argv[0], 0);
}

/*
 * A reset gives the sandbox back what a new one starts with: no process an earlier file
 * left, no mount it made, each tmpfs target's writable layer replaced by an empty one
 * with the kept paths bound again, nothing stacked on /etc/hosts, the hostname, and a
 * fresh network namespace with the same ports forwarded. The worker rewrites /etc/hosts.
 */
static void plan_reset(struct plan *p) {
  add(p, OP_IN_SANDBOX, NULL, 0);
  if (p->kill_others) add(p, OP_KILL_OTHERS, NULL, 0);
  /* what a test mounted, as the caller listed it: deepest first */
  for (int i = 0; i < p->n_unmount; i++) add(p, OP_UNMOUNT, p->unmount[i], 0);
  for (int t = 0; t < p->n_tmpfs; t++) add(p, OP_UNCOVER, p->tmpfs[t].path, 0);
  add(p, OP_UNCOVER, "/etc/hosts", 0);
  add_layers(p, 0);
  add_dirs(p);
  if (p->hostname) add(p, OP_HOSTNAME, p->hostname, 0);
  if (p->new_network) {
    add(p, OP_NEW_NETWORK, NULL, 0);
    if (p->egress_kind) add(p, OP_EGRESS, NULL, 1);
    /* the forwarder says what it forwards now (the host may have added ports): asked even
       where the plan has none; a worker without a forwarder skips it */
    add(p, OP_FORWARD, NULL, 1);
  }
}

/* ---- the flags ---- */

/*
 * Which flags go with which, all in one place: each mode takes its own, and some flags
 * only come in pairs.
 */
static int check_plan(struct plan *p, int has_command) {
  if (p->reset) {
    if (has_command || p->hold || p->userns_fd >= 0 || p->n_uid_map || p->n_gid_map || p->newuidmap || p->newgidmap || p->hosts_file || p->nsswitch_file ||
        p->host_network || p->new_session || p->pid_namespace || p->networks || p->relay_only || p->status_fd >= 0 || p->forward_host_fd >= 0 || p->n_ranges || p->publish_path || p->enforce_permissions || p->resolv_file ||
        p->read_only || p->n_writable)
      return usage_error("%s", "--reset takes only --tmpfs, --keep, --tmpfs-dir, --tmpfs-size, --hostname, --new-network, --kill-others, --unmount, --forward, --egress and --egress-allow");
    if (p->egress_kind && !p->new_network) return usage_error("%s", "--egress in a reset goes with --new-network");
    if (p->n_egress_allow && !p->egress_kind) return usage_error("%s", "--egress-allow goes with --egress");
    return 0;
  }
  if (p->n_egress_allow && !p->egress_kind) return usage_error("%s", "--egress-allow goes with --egress");
  if (p->new_network || p->kill_others || p->n_unmount)
    return usage_error("%s", "--new-network, --kill-others and --unmount go with --reset");
  if (p->n_writable && !p->read_only) return usage_error("%s", "--writable goes with --read-only");
  if (p->n_forwards && p->host_network)
    return usage_error("%s", "--forward needs the sandbox's own network, not --host-network");
  if (p->n_ranges && p->host_network)
    return usage_error("%s", "--forward-range needs the sandbox's own network, not --host-network");
  if (p->forward_host_fd >= 0 && p->host_network)
    return usage_error("%s", "--forward-host-fd needs the sandbox's own network, not --host-network");
  if (p->egress_kind && p->host_network)
    return usage_error("%s", "--egress needs the sandbox's own network, not --host-network");
  if (p->publish_path && p->host_network)
    return usage_error("%s", "--publish needs the sandbox's own network, not --host-network");
  if ((p->newuidmap == NULL) != (p->newgidmap == NULL))
    return usage_error("%s", "--newuidmap and --newgidmap go together");
  if (p->hold) {
    if (has_command || p->userns_fd >= 0 || p->forward_host_fd >= 0) return usage_error("%s", "--hold takes no command, no --userns-fd and no --forward-host-fd");
    if (p->n_uid_map == 0 || p->n_gid_map == 0) return usage_error("%s", "--hold needs --uid-map and --gid-map");
    if (p->egress_kind && !p->networks) return usage_error("%s", "--egress with --hold goes with --networks");
    return 0;
  }
  if (!has_command) return usage_error("%s", "missing '-- CMD'");
  /* made ahead by the warm holder: they belong to the user namespace it hands out */
  if (p->networks && p->userns_fd < 0) return usage_error("%s", "--networks goes with --userns-fd (or --hold)");
  if (p->userns_fd < 0 && (p->n_uid_map == 0 || p->n_gid_map == 0))
    return usage_error("%s", "--uid-map and --gid-map are required unless --userns-fd is given");
  if (p->status_fd >= 0 && p->status_fd == p->userns_fd) return usage_error("%s", "--status-fd and --userns-fd must differ");
  if (p->forward_host_fd >= 0 && (p->forward_host_fd <= 2 || p->forward_host_fd == p->status_fd || p->forward_host_fd == p->userns_fd))
    return usage_error("%s", "--forward-host-fd must be an fd of its own, not a standard stream, --status-fd or --userns-fd");
  return 0;
}

int parse_plan(int argc, char **argv, struct plan *p) {
  memset(p, 0, sizeof *p);
  p->userns_fd = -1;
  p->status_fd = -1;
  p->forward_host_fd = -1;
  int i = 1;
  for (; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VALUE() do { if (!v) return usage_error("%s needs a value", a); i++; } while (0)
/* a flag that takes one value takes it once: a second would be dropped silently */
#define ONCE(field) do { NEED_VALUE(); if (field) return usage_error("%s is given twice", a); field = v; } while (0)
#define PUSH(list, n) do { NEED_VALUE(); if (n >= MAX_LIST) return usage_error("too many %s", a); list[n++] = v; } while (0)
    if (strcmp(a, "--") == 0) { i++; break; }
    else if (strcmp(a, "--uid-map") == 0 || strcmp(a, "--gid-map") == 0) {
      NEED_VALUE();
      int is_uid = a[2] == 'u';
      struct id_range *list = is_uid ? p->uid_map : p->gid_map;
      int *n = is_uid ? &p->n_uid_map : &p->n_gid_map;
      if (*n >= MAX_LIST) return usage_error("too many %s", a);
      if (parse_range(v, &list[*n])) return usage_error("bad id range '%s', expected INSIDE:OUTSIDE:COUNT within 0..4294967295", v);
      (*n)++;
    }
    else if (strcmp(a, "--newuidmap") == 0) ONCE(p->newuidmap);
    else if (strcmp(a, "--newgidmap") == 0) ONCE(p->newgidmap);
    else if (strcmp(a, "--userns-fd") == 0 || strcmp(a, "--status-fd") == 0 || strcmp(a, "--forward-host-fd") == 0) {
      NEED_VALUE();
      int *fd = a[2] == 'u' ? &p->userns_fd : a[2] == 's' ? &p->status_fd : &p->forward_host_fd;
      if (*fd >= 0) return usage_error("%s is given twice", a);
      if ((*fd = parse_fd(v)) < 0) return usage_error("bad fd '%s'", v);
    }
    else if (strcmp(a, "--tmpfs") == 0) {
      NEED_VALUE();
      if (p->n_tmpfs >= MAX_LIST) return usage_error("too many %s", a);
      p->tmpfs[p->n_tmpfs].path = v;
      p->tmpfs[p->n_tmpfs].first_keep = p->n_keep;
      p->tmpfs[p->n_tmpfs++].n_keep = 0;
    }
    else if (strcmp(a, "--tmpfs-dir") == 0) {
      /* a directory made on the writable layer of the --tmpfs it lies in (a temp dir there) */
      PUSH(p->dirs, p->n_dirs);
      if (v[0] != '/') return usage_error("--tmpfs-dir %s is not an absolute path", v);
    }
    else if (strcmp(a, "--tmpfs-size") == 0) {
      ONCE(p->tmpfs_size);
      /* the kernel judges the size; a comma would smuggle in other mount options */
      if (!*v || strlen(v) > MAX_TMPFS_SIZE || strchr(v, ',')) return usage_error("bad tmpfs size '%s'", v);
    }
    else if (strcmp(a, "--writable") == 0) {
      PUSH(p->writable, p->n_writable);
      if (v[0] != '/') return usage_error("--writable %s is not an absolute path", v);
    }
    else if (strcmp(a, "--read-only") == 0) p->read_only = 1;
    else if (strcmp(a, "--keep") == 0) {
      /* the plan says which tmpfs each kept path goes back onto: the --tmpfs before it */
      if (v && p->n_tmpfs == 0) return usage_error("--keep %s comes before any --tmpfs", v);
      PUSH(p->keep, p->n_keep);
      p->tmpfs[p->n_tmpfs - 1].n_keep++;
    }
    else if (strcmp(a, "--hosts-file") == 0) ONCE(p->hosts_file);
    else if (strcmp(a, "--nsswitch-file") == 0) ONCE(p->nsswitch_file);
    else if (strcmp(a, "--resolv-file") == 0) ONCE(p->resolv_file);
    else if (strcmp(a, "--egress") == 0) {
      NEED_VALUE();
      if (p->egress_kind) return usage_error("%s is given twice", a);
      /* KIND:PATH -- which helper, and the absolute path the TypeScript side found it at */
      if (strncmp(v, "pasta:/", 7) == 0) p->egress_kind = EGRESS_PASTA, p->egress_path = v + 6;
      else if (strncmp(v, "slirp4netns:/", 13) == 0) p->egress_kind = EGRESS_SLIRP, p->egress_path = v + 12;
      else return usage_error("bad egress '%s', expected pasta:PATH or slirp4netns:PATH, PATH absolute", v);
    }
    else if (strcmp(a, "--egress-allow") == 0) {
      NEED_VALUE();
      if (p->n_egress_allow >= MAX_LIST) return usage_error("too many %s", a);
      if (parse_egress_allow(v, &p->egress_allow[p->n_egress_allow])) return usage_error("bad egress range '%s', expected ADDR or ADDR/LEN, IPv4 or IPv6", v);
      p->n_egress_allow++;
    }
    else if (strcmp(a, "--forward") == 0) {
      NEED_VALUE();
      if (p->n_forwards >= MAX_LIST) return usage_error("too many %s", a);
      if (parse_forward(v, &p->forwards[p->n_forwards])) return usage_error("bad forward '%s', expected INSIDE_PORT:HOST_PORT", v);
      p->n_forwards++;
    }
    else if (strcmp(a, "--forward-range") == 0) {
      NEED_VALUE();
      if (p->n_ranges >= MAX_LIST) return usage_error("too many %s", a);
      if (parse_port_range(v, &p->ranges[p->n_ranges])) return usage_error("bad forward range '%s', expected FROM-TO, ports from 1 to 65535 with FROM at most TO", v);
      p->n_ranges++;
    }
    else if (strcmp(a, "--hostname") == 0) ONCE(p->hostname);
    else if (strcmp(a, "--host-network") == 0) p->host_network = 1;
    else if (strcmp(a, "--new-session") == 0) p->new_session = 1;
    else if (strcmp(a, "--hold") == 0) p->hold = 1;
    else if (strcmp(a, "--networks") == 0) ONCE(p->networks);
    else if (strcmp(a, "--reset") == 0) p->reset = 1;
    else if (strcmp(a, "--new-network") == 0) p->new_network = 1;
    else if (strcmp(a, "--kill-others") == 0) p->kill_others = 1;
    else if (strcmp(a, "--unmount") == 0) PUSH(p->unmount, p->n_unmount);
    else if (strcmp(a, "--pid-namespace") == 0) p->pid_namespace = 1;
    else if (strcmp(a, "--relay-only") == 0) p->relay_only = 1;
    else if (strcmp(a, "--publish") == 0) {
      NEED_VALUE();
      if (p->publish_path) return usage_error("%s is given twice", a);
      if (parse_publish(v, p)) return usage_error("bad publish '%s', expected PORT=/PATH", v);
    }
    else if (strcmp(a, "--enforce-permissions") == 0) p->enforce_permissions = 1;
    else return usage_error("unknown option '%s'", a);
#undef NEED_VALUE
#undef ONCE
#undef PUSH
  }
  if (check_plan(p, i < argc) < 0) return -1;
  /* world-writable and sticky like /tmp, sized as the plan says */
  snprintf(p->tmpfs_options, sizeof p->tmpfs_options, "mode=1777%s%s", p->tmpfs_size ? ",size=" : "", p->tmpfs_size ? p->tmpfs_size : "");
  if (p->reset) {
    plan_reset(p);
  } else {
    if (!p->hold) p->argv = argv + i;
    plan_launch(p);
  }
  return 0;
}
