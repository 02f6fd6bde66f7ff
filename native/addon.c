/*
 * The in-process half of the sandbox: a Node-API addon a reused worker loads (with
 * process.dlopen, from the same build as the launcher) to reset its sandbox between test
 * files. It exports one function:
 *
 *   reset(argv: string[]): void     argv as for `launcher --reset ...` (see layers.c)
 *
 *   prepareNetwork(): void          makes the next reset's network namespace ahead
 *
 *   boundSockets(): string          the listening sockets here, for the leak watch
 *
 * It has to run in the worker's own process, not a child: a fresh network namespace can
 * only be entered by the thread that will use it. The mounts and the hostname would work
 * from a child too, but here they cost no fork of a large process.
 *
 * Creating a network namespace is most of a reset's time (about 0.4 ms of 0.6), so a
 * thread of ours makes the next one while the test file runs -- a namespace belongs to a
 * thread, not to the process -- and hands it over as an fd; the reset then only enters
 * it. The thread blocks every signal: they stay Node's.
 *
 * A failed step raises an Error whose message is the launcher's one line for it
 * ("vitest-pool-rootless: <step>: <reason>") and whose `code` is the step's name. The
 * reset is the launcher's own op loop (ops.c), which returns its failure like the
 * launcher's: nothing jumps past the code that closes what the ops opened.
 *
 * The forwarder's control socket (a reset sends the fresh network's listeners through
 * it) is taken when the addon loads: made close-on-exec, and its variable removed from
 * the environment, so that no child process a test starts holds it.
 *
 * Node-API is a stable C ABI: the few functions used here are declared below, as
 * node_api.h declares them, so the addon builds without Node's headers, for any
 * architecture a C compiler targets.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/sockios.h>
#include <pthread.h>
#include <signal.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include "sandbox.h"

/*
 * The addon is loaded into whatever node runs the tests, so it asks of glibc no more
 * than Node 20 does (2.28: RHEL 8, Debian 10), whichever glibc built it: the functions
 * glibc moved into libc.so in 2.34 are bound to their first versions, which libpthread
 * still provides on the older ones. (layers.c does without fstat, a symbol since 2.33.)
 */
#if defined(__GLIBC__) && defined(__x86_64__)
__asm__(".symver pthread_create, pthread_create@GLIBC_2.2.5");
__asm__(".symver pthread_join, pthread_join@GLIBC_2.2.5");
#elif defined(__GLIBC__) && defined(__aarch64__)
__asm__(".symver pthread_create, pthread_create@GLIBC_2.17");
__asm__(".symver pthread_join, pthread_join@GLIBC_2.17");
#endif

/* ---- the subset of node_api.h used here (js_native_api_types.h, js_native_api.h) ---- */

typedef struct napi_env__ *napi_env;
typedef struct napi_value__ *napi_value;
typedef struct napi_callback_info__ *napi_callback_info;
typedef int napi_status; /* napi_ok is 0 */
typedef napi_value (*napi_callback)(napi_env env, napi_callback_info info);

napi_status napi_create_function(napi_env env, const char *utf8name, size_t length, napi_callback cb, void *data, napi_value *result);
napi_status napi_set_named_property(napi_env env, napi_value object, const char *utf8name, napi_value value);
napi_status napi_get_cb_info(napi_env env, napi_callback_info cbinfo, size_t *argc, napi_value *argv, napi_value *this_arg, void **data);
napi_status napi_get_array_length(napi_env env, napi_value value, uint32_t *result);
napi_status napi_get_element(napi_env env, napi_value object, uint32_t index, napi_value *result);
napi_status napi_get_value_string_utf8(napi_env env, napi_value value, char *buf, size_t bufsize, size_t *result);
napi_status napi_throw_error(napi_env env, const char *code, const char *msg);
napi_status napi_create_string_utf8(napi_env env, const char *str, size_t length, napi_value *result);
napi_value napi_register_module_v1(napi_env env, napi_value exports);

/* ---- prepareNetwork(): the next network namespace, made by a thread while tests run ---- */

static pthread_t preparer;
static int preparing;
/* written by the preparer, read after joining it */
static int prepared = -1;
/* with egress: the spawner (from the environment), and the prepared namespace's helper
   started by the preparer too -- its exit fd (slirp4netns), or -1 -- and whether it was */
static int spawner = -1;
static int prepared_exit = -1, prepared_egress;
/* the helper of the network in use; closing it ends a slirp4netns (pasta ends with its
   namespace); and a sock_diag socket of that network, to tell when the helper may go */
static int current_exit = -1, current_diag = -1;

static void *prepare(void *unused) {
  (void)unused;
  /* the namespace is this thread's alone; the fd outlives the thread */
  if (unshare(CLONE_NEWNET) < 0 || loopback_up() < 0) return NULL;
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return NULL;
  prepared = ioctl(s, SIOCGSKNS);
  close(s);
  /* the helper's start is the slow part of an egress network: off the reset's path too */
  if (prepared >= 0 && spawner >= 0) prepared_egress = attach_egress(spawner, prepared, &prepared_exit) == 0;
  return NULL;
}

/* The namespace made ahead, or -1: waits for a preparer still at work (it is quick). */
static int take_prepared(void) {
  if (preparing) {
    pthread_join(preparer, NULL);
    preparing = 0;
  }
  int fd = prepared;
  prepared = -1;
  return fd;
}

static void start_preparing(void) {
  if (preparing || prepared >= 0) return;
  sigset_t all, old;
  sigfillset(&all);
  /* the calling thread's mask (glibc's sigprocmask is pthread_sigmask), which the new one inherits */
  sigprocmask(SIG_SETMASK, &all, &old);
  preparing = pthread_create(&preparer, NULL, prepare, NULL) == 0;
  sigprocmask(SIG_SETMASK, &old, NULL);
}

static napi_value prepare_network(napi_env env, napi_callback_info info) {
  (void)env, (void)info;
  start_preparing();
  return NULL;
}

/* ---- reset(argv) ---- */

#define MAX_ARGS (4 * MAX_LIST + 16)

/* The forwarder's control socket, taken from the environment when the addon loads; -1: none. */
static int forwarder = -1;

static void take_forwarder(void) {
  const char *env = getenv(FORWARDER_ENV);
  int fd = env ? parse_fd(env) : -1;
  if (fd >= 0 && fcntl(fd, F_SETFD, FD_CLOEXEC) == 0) forwarder = fd;
  unsetenv(FORWARDER_ENV);
  /* the egress spawner likewise */
  env = getenv(EGRESS_ENV);
  fd = env ? parse_fd(env) : -1;
  if (fd >= 0 && fcntl(fd, F_SETFD, FD_CLOEXEC) == 0) spawner = fd;
  unsetenv(EGRESS_ENV);
}

/* Runs `--reset ARGS...`: 0, or -1 with `failure` set. */
static int run_reset(int argc, char **argv) {
  static struct plan p; /* large: off the stack of Node's main thread */
  if (parse_plan(argc, argv, &p) < 0) return -1;
  errno = 0;
  if (!p.reset) return fail(STEP_USAGE, "reset() takes --reset and its flags");
  struct run r;
  run_init(&r);
  r.forwarder = forwarder;
  r.spawner = spawner;
  r.network_fd = p.new_network ? take_prepared() : -1;
  /* made ahead with its helper running: OP_EGRESS has nothing left to do */
  r.network_ready = r.network_fd >= 0 && prepared_egress;
  r.egress_exit = r.network_ready ? prepared_exit : -1;
  int rc = run_ops(&p, &r);
  close_ops(&p, &r);
  /* a step that failed before the network's: the namespace made ahead waits for the next reset */
  if (r.network_fd >= 0) {
    prepared = r.network_fd;
  } else {
    if (p.new_network) {
      /* the old network's helper goes once its connections have (left-helpers.c); the new
         one's stays as long as it is in use */
      if (current_exit >= 0 && current_exit != r.egress_exit) {
        retire_helper(current_exit, current_diag);
        current_diag = -1;
      }
      if (current_exit != r.egress_exit && r.egress_exit >= 0) current_diag = network_diag_socket();
      current_exit = r.egress_exit;
      prepared_exit = -1, prepared_egress = 0;
      end_unneeded_helpers();
    }
    if (rc == 0 && p.new_network) start_preparing();
  }
  /* best effort: where the kernel can't, a module's server is out of the next file's reach.
     Only with a pid namespace (--kill-others): a child that outlived the worker would find
     no one answering its connects, which then fail (ENOSYS) */
  if (rc == 0 && p.new_network && p.kill_others) reach_earlier_networks();
  return rc;
}

static napi_value reset(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value list;
  uint32_t n = 0;
  if (napi_get_cb_info(env, info, &argc, &list, NULL, NULL) != 0 || argc < 1 || napi_get_array_length(env, list, &n) != 0) {
    napi_throw_error(env, "usage", "vitest-pool-rootless: reset() takes the launcher's --reset arguments, as an array of strings");
    return NULL;
  }
  if (n + 1 >= MAX_ARGS) {
    napi_throw_error(env, "usage", "vitest-pool-rootless: reset() got too many arguments");
    return NULL;
  }
  /* argv[0] is the program name, as for the launcher's parser */
  char *argv[MAX_ARGS] = {"reset"};
  int count = 1, bad = 0;
  for (uint32_t i = 0; i < n && !bad; i++) {
    napi_value item;
    size_t len = 0;
    bad = napi_get_element(env, list, i, &item) != 0 || napi_get_value_string_utf8(env, item, NULL, 0, &len) != 0 || !(argv[count] = malloc(len + 1));
    if (!bad && napi_get_value_string_utf8(env, item, argv[count++], len + 1, &len) != 0) bad = 1;
  }
  int rc = bad ? 0 : run_reset(count, argv);
  for (int i = 1; i < count; i++) free(argv[i]);
  if (bad) napi_throw_error(env, "usage", "vitest-pool-rootless: reset() takes an array of strings");
  else if (rc < 0) napi_throw_error(env, step_name(failure.step), failure.line);
  return NULL;
}

/* ---- boundSockets(): what listens in this thread's network, for the leak watch ---- */

/*
 * One line per listening TCP or bound UDP socket: "tcp|udp ADDRESS PORT INODE". The
 * leak watch (src/inside/leak-watch.ts) compares them before and after a test file.
 */
static napi_value bound_sockets_text(napi_env env, napi_callback_info info) {
  (void)info;
  static struct bound_socket found[1024];
  static char text[1024 * 72];
  int n = bound_sockets(found, 1024, 1);
  if (n < 0) {
    napi_throw_error(env, "sock_diag", "vitest-pool-rootless: can't list the sandbox's listening sockets");
    return NULL;
  }
  size_t used = 0;
  for (int i = 0; i < n; i++) {
    char address[INET6_ADDRSTRLEN] = "?";
    inet_ntop(found[i].family, found[i].address, address, sizeof address);
    used += (size_t)snprintf(text + used, sizeof text - used, "%s %s %u %u\n", found[i].protocol == IPPROTO_TCP ? "tcp" : "udp", address, (unsigned)found[i].port, (unsigned)found[i].inode);
  }
  napi_value result;
  return napi_create_string_utf8(env, text, used, &result) == 0 ? result : NULL;
}

napi_value napi_register_module_v1(napi_env env, napi_value exports) {
  napi_value fn, prep, sockets;
  take_forwarder();
  if (napi_create_function(env, "reset", 5, reset, NULL, &fn) != 0 || napi_set_named_property(env, exports, "reset", fn) != 0) return NULL;
  if (napi_create_function(env, "prepareNetwork", 14, prepare_network, NULL, &prep) != 0 || napi_set_named_property(env, exports, "prepareNetwork", prep) != 0)
    return NULL;
  if (napi_create_function(env, "boundSockets", 12, bound_sockets_text, NULL, &sockets) != 0 || napi_set_named_property(env, exports, "boundSockets", sockets) != 0)
    return NULL;
  return exports;
}
