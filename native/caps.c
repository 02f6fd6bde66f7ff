/*
 * --enforce-permissions (`permissions: 'enforce'`): uid 0 in the sandbox without the three
 * capabilities that let root ignore file permissions, so `chmod 000 f` then reading f
 * fails with EACCES as it does for an ordinary owner (capabilities(7)). uid 0 keeps the
 * rest: chown, mount, ports below 1024, signals.
 *
 * Dropped from the bounding set, which exec(2) as uid 0 grants in full, and from the
 * current sets, so nothing after this op (init, the outer launcher) holds them either.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sandbox.h"

static const int permission_caps[] = {CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER};
#define N_CAPS (sizeof permission_caps / sizeof permission_caps[0])

int drop_permission_caps(void) {
  for (size_t i = 0; i < N_CAPS; i++)
    if (prctl(PR_CAPBSET_DROP, permission_caps[i], 0, 0, 0) < 0) return -1;
  struct __user_cap_header_struct header = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
  if (syscall(SYS_capget, &header, data) < 0) return -1;
  for (size_t i = 0; i < N_CAPS; i++) {
    int cap = permission_caps[i];
    __u32 bit = 1u << (cap % 32);
    data[cap / 32].effective &= ~bit;
    data[cap / 32].permitted &= ~bit;
    data[cap / 32].inheritable &= ~bit;
  }
  return syscall(SYS_capset, &header, data) < 0 ? -1 : 0;
}
