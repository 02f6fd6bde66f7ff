// Profiles that let the launcher do its work where CI machines confine it by default,
// printed by `vitest-pool-rootless apparmor` and `vitest-pool-rootless seccomp`.

/**
 * An AppArmor profile for the launcher at `launcher`: Ubuntu >= 23.10 (GitHub's
 * ubuntu-24.04 runners among them) lets only programs with a profile that grants
 * `userns` create user namespaces (kernel.apparmor_restrict_unprivileged_userns=1).
 * Unconfined otherwise, like the profiles Ubuntu ships for browsers and bwrap.
 */
export function apparmorProfile(launcher: string): string {
  return `# AppArmor profile for vitest-pool-rootless's launcher: lets it create user namespaces
# where AppArmor restricts them (Ubuntu >= 23.10). Made for ${launcher};
# make it again if that path changes (another checkout, another version).
#   npx vitest-pool-rootless apparmor | sudo tee /etc/apparmor.d/vitest-pool-rootless
#   sudo apparmor_parser -r /etc/apparmor.d/vitest-pool-rootless
abi <abi/4.0>,
include <tunables/global>

profile vitest-pool-rootless ${quoteAppArmorPath(launcher)} flags=(unconfined) {
  userns,

  include if exists <local/vitest-pool-rootless>
}
`
}

/** AppArmor takes a path with spaces or special characters in double quotes. */
function quoteAppArmorPath(path: string): string {
  return /^[\w@%+=:,./-]+$/.test(path) ? path : `"${path.replace(/(["\\])/g, '\\$1')}"`
}

/**
 * System calls a test sandbox never needs, that container runtimes' default profiles
 * deny: loading kernel code, the kernel's keyring, clocks, swap, reboot, tracing other
 * processes' memory, performance counters, io_uring. Everything the launcher does --
 * unshare, setns, mount, umount2, sethostname, clone with namespace flags -- is allowed,
 * which is what Docker's and containerd's default profiles take from a container
 * without CAP_SYS_ADMIN.
 */
export const SECCOMP_DENIED = [
  'acct', 'add_key', 'bpf', 'clock_adjtime', 'clock_settime', 'create_module', 'delete_module',
  'fanotify_init', 'finit_module', 'get_kernel_syms', 'init_module', 'io_uring_enter',
  'io_uring_register', 'io_uring_setup', 'ioperm', 'iopl', 'kcmp', 'kexec_file_load', 'kexec_load',
  'keyctl', 'lookup_dcookie', 'name_to_handle_at', 'nfsservctl', 'open_by_handle_at',
  'perf_event_open', 'process_vm_readv', 'process_vm_writev', 'query_module', 'quotactl',
  'reboot', 'request_key', 'settimeofday', 'stime', 'swapoff', 'swapon', 'syslog', '_sysctl',
  'umount', 'uselib', 'userfaultfd', 'ustat', 'vm86', 'vm86old',
] as const

/** A seccomp profile in the format Docker, Podman, containerd and Kubernetes take. */
export function seccompProfile(): string {
  const profile = {
    defaultAction: 'SCMP_ACT_ALLOW',
    architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32', 'SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'],
    syscalls: [{ names: [...SECCOMP_DENIED], action: 'SCMP_ACT_ERRNO', errnoRet: 1 }],
  }
  return `${JSON.stringify(profile, null, 2)}\n`
}
