/*
 * Exit statuses of the launcher, one per setup step. They sit in 230..252, far from
 * what a test process exits with (0..127 by convention, 128+N for "killed by signal N"
 * as reported by shells), so the pool can tell "the sandbox failed" from "the test
 * failed". src/plan/steps.ts holds the same table; a test keeps the two in line.
 */
#ifndef VPR_STEPS_H
#define VPR_STEPS_H

enum step {
  STEP_USAGE = 230,
  STEP_OPEN_HOSTS = 231,
  STEP_OPEN_KEEP = 232,
  STEP_MAP_HELPER = 233,
  STEP_UNSHARE = 234,
  STEP_SETNS = 235,
  STEP_UID_MAP = 236,
  STEP_GID_MAP = 237,
  STEP_SETID = 238,
  STEP_MOUNT_PRIVATE = 239,
  STEP_TMPFS = 240,
  STEP_KEEP = 241,
  STEP_HOSTS = 242,
  STEP_HOSTNAME = 243,
  STEP_LOOPBACK = 244,
  STEP_CHDIR = 245,
  STEP_SESSION = 246,
  STEP_PDEATHSIG = 247,
  STEP_EXEC = 248,
  STEP_HOLD = 249,
  STEP_PID_NAMESPACE = 250,
  STEP_FORWARD = 251,
  STEP_NSSWITCH = 252,
};

static inline const char *step_name(int step) {
  switch (step) {
  case STEP_USAGE: return "usage";
  case STEP_OPEN_HOSTS: return "open-hosts";
  case STEP_OPEN_KEEP: return "open-keep";
  case STEP_MAP_HELPER: return "map-helper";
  case STEP_UNSHARE: return "unshare";
  case STEP_SETNS: return "setns";
  case STEP_UID_MAP: return "uid-map";
  case STEP_GID_MAP: return "gid-map";
  case STEP_SETID: return "setid";
  case STEP_MOUNT_PRIVATE: return "mount-private";
  case STEP_TMPFS: return "tmpfs";
  case STEP_KEEP: return "keep";
  case STEP_HOSTS: return "hosts";
  case STEP_HOSTNAME: return "hostname";
  case STEP_LOOPBACK: return "loopback";
  case STEP_CHDIR: return "chdir";
  case STEP_SESSION: return "session";
  case STEP_PDEATHSIG: return "pdeathsig";
  case STEP_EXEC: return "exec";
  case STEP_HOLD: return "hold";
  case STEP_PID_NAMESPACE: return "pid-namespace";
  case STEP_FORWARD: return "forward";
  case STEP_NSSWITCH: return "nsswitch";
  default: return "unknown";
  }
}

#endif
