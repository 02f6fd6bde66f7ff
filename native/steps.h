/*
 * Exit statuses of the launcher, one per setup step: the one list of them. They sit in
 * 230..253, far from what a test process exits with (0..127 by convention, 128+N for
 * "killed by signal N" as reported by shells), so the pool can tell "the sandbox failed"
 * from "the test failed".
 *
 * The list is an X-macro: this header makes the enum and step_name() from it, and
 * scripts/build-native.mjs makes src/plan/steps.ts from it at every build. C is the
 * source because the C is what ships and builds on its own (a package's first-use build
 * has native/ but no TypeScript sources); the TypeScript table is a build product.
 * Each name is its symbol in kebab case (a unit test holds that).
 */
#ifndef VPR_STEPS_H
#define VPR_STEPS_H

#define STEPS(X)                    \
  X(USAGE, 230, "usage")            \
  X(OPEN_HOSTS, 231, "open-hosts")  \
  X(OPEN_KEEP, 232, "open-keep")    \
  X(MAP_HELPER, 233, "map-helper")  \
  X(UNSHARE, 234, "unshare")        \
  X(SETNS, 235, "setns")            \
  X(UID_MAP, 236, "uid-map")        \
  X(GID_MAP, 237, "gid-map")        \
  X(SETID, 238, "setid")            \
  X(MOUNT_PRIVATE, 239, "mount-private") \
  X(TMPFS, 240, "tmpfs")            \
  X(KEEP, 241, "keep")              \
  X(HOSTS, 242, "hosts")            \
  X(HOSTNAME, 243, "hostname")      \
  X(LOOPBACK, 244, "loopback")      \
  X(CHDIR, 245, "chdir")            \
  X(SESSION, 246, "session")        \
  X(PDEATHSIG, 247, "pdeathsig")    \
  X(EXEC, 248, "exec")              \
  X(HOLD, 249, "hold")              \
  X(PID_NAMESPACE, 250, "pid-namespace") \
  X(FORWARD, 251, "forward")        \
  X(NSSWITCH, 252, "nsswitch")     \
  X(EGRESS, 253, "egress")

enum step {
#define STEP_ENUM(symbol, code, name) STEP_##symbol = code,
  STEPS(STEP_ENUM)
#undef STEP_ENUM
};

static inline const char *step_name(int step) {
  switch (step) {
#define STEP_CASE(symbol, code, name) case STEP_##symbol: return name;
  STEPS(STEP_CASE)
#undef STEP_CASE
  default: return "unknown";
  }
}

#endif
