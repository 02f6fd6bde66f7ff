/*
 * Fuzz target: the launcher's argv parser (plan.c), which reads what the TypeScript side
 * builds from a user's options. An input is argv itself, its strings separated by NUL
 * bytes. Whatever it is, parse_plan() must either refuse it as usage, with one line and
 * no control character in it (a second line could be forged), or hand back a plan whose
 * values are what the kernel and the op loop can be given: id ranges that fit in 32 bits
 * (fault 1 of issue 26 wrapped), a tmpfs size that can't carry other mount options, an
 * op list within its array, and a command or a hold at its end.
 */
#define _GNU_SOURCE
#include <string.h>

#include "../sandbox.h"
#include "fuzz.h"

#define MAX_ARGV 512
#define ID_LIMIT 4294967296ULL

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  return 0;
}

static void check_refusal(void) {
  CHECK(failure.step == STEP_USAGE, "a parse error is a usage error, got step %d", failure.step);
  const char *prefix = "vitest-pool-rootless: usage: ";
  CHECK(strncmp(failure.line, prefix, strlen(prefix)) == 0, "line: %s", failure.line);
  for (const char *c = failure.line; *c; c++) CHECK((unsigned char)*c >= 0x20 && *c != 0x7f, "a control character in the error line");
}

static void check_ranges(const struct id_range *r, int n) {
  CHECK(n >= 0 && n <= MAX_LIST, "%d ranges", n);
  for (int i = 0; i < n; i++) {
    CHECK(r[i].count > 0, "empty range");
    CHECK((unsigned long long)r[i].inside + r[i].count <= ID_LIMIT, "range %lu:%lu:%lu wraps inside", r[i].inside, r[i].outside, r[i].count);
    CHECK((unsigned long long)r[i].outside + r[i].count <= ID_LIMIT, "range %lu:%lu:%lu wraps outside", r[i].inside, r[i].outside, r[i].count);
  }
}

static void check_plan(const struct plan *p) {
  check_ranges(p->uid_map, p->n_uid_map);
  check_ranges(p->gid_map, p->n_gid_map);
  CHECK(p->n_ops > 0 && p->n_ops <= MAX_OPS, "%d ops", p->n_ops);
  if (p->tmpfs_size) CHECK(*p->tmpfs_size && strlen(p->tmpfs_size) <= MAX_TMPFS_SIZE && !strchr(p->tmpfs_size, ','), "tmpfs size '%s'", p->tmpfs_size);
  CHECK(strchr(p->tmpfs_options, ',') == NULL || strncmp(p->tmpfs_options, "mode=1777,size=", 15) == 0, "options '%s'", p->tmpfs_options);
  CHECK(strchr(p->tmpfs_options + (p->tmpfs_size ? 15 : 0), ',') == NULL, "more than one size in '%s'", p->tmpfs_options);
  for (int i = 0; i < p->n_forwards; i++) CHECK(p->forwards[i].inside && p->forwards[i].host, "port 0 forwarded");
  CHECK(p->n_ranges >= 0 && p->n_ranges <= MAX_LIST, "%d port ranges", p->n_ranges);
  for (int i = 0; i < p->n_ranges; i++) CHECK(p->ranges[i].from > 0 && p->ranges[i].from <= p->ranges[i].to, "port range %u-%u", p->ranges[i].from, p->ranges[i].to);
  int keeps = 0;
  for (int t = 0; t < p->n_tmpfs; t++) {
    CHECK(p->tmpfs[t].first_keep == keeps, "kept paths out of order");
    keeps += p->tmpfs[t].n_keep;
  }
  CHECK(keeps == p->n_keep, "%d kept paths, %d counted", p->n_keep, keeps);
  if (p->status_fd >= 0) CHECK(p->status_fd != p->userns_fd, "status fd is the user namespace's");
  enum op_kind last = p->ops[p->n_ops - 1].kind;
  if (p->reset) CHECK(p->ops[0].kind == OP_IN_SANDBOX, "a reset that doesn't check where it runs");
  else if (p->hold) CHECK(last == OP_HOLD, "a hold that doesn't end holding");
  else CHECK(last == OP_EXEC && p->argv && p->argv[0] && p->argv[0] == p->ops[p->n_ops - 1].arg, "a launch that doesn't end in its command");
  for (int i = 0; i < p->n_ops; i++) CHECK(p->ops[i].fd == -1, "op %d holds an fd before it ran", i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static struct plan p; /* large */
  static char *argv[MAX_ARGV + 1];
  char *copy = malloc(size + 1);
  if (!copy) return 0;
  memcpy(copy, data, size);
  copy[size] = 0;
  int argc = 0;
  argv[argc++] = "launcher";
  for (size_t at = 0; at <= size && argc < MAX_ARGV; at += strlen(copy + at) + 1) argv[argc++] = copy + at;
  argv[argc] = NULL;
  memset(&failure, 0, sizeof failure);
  if (parse_plan(argc, argv, &p) < 0) check_refusal();
  else check_plan(&p);
  free(copy);
  return 0;
}
