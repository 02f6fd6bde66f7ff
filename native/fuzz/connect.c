/*
 * Fuzz target: the address check of the connect supervisor (connect_target() in
 * ../connect.c), which reads the sockaddr of every connect(2) a sandboxed process makes.
 * An input is the length the process passed (8 bytes, little-endian; any 64-bit value,
 * as the syscall's argument is) and then the bytes of the address. The target gets
 * exactly the bytes that length names (ASan: not one byte past), or none past a full
 * sockaddr_storage, as answer_connect() reads them; and it must name a loopback port only
 * for 127.0.0.1, ::1 and ::ffff:127.0.0.1 with a whole address of their family.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "../forwarder.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  return 0;
}

/* The expected answer, worked out from the bytes. */
static uint16_t expected(const uint8_t *a, uint64_t len, int *v6) {
  uint16_t family;
  if (len > sizeof(struct sockaddr_storage) || len < sizeof family) return 0;
  memcpy(&family, a, sizeof family);
  static const uint8_t lo4[4] = {127, 0, 0, 1};
  static const uint8_t lo6[16] = {[15] = 1};
  static const uint8_t mapped[16] = {[10] = 0xff, [11] = 0xff, [12] = 127, [15] = 1};
  uint16_t port = len >= 4 ? (uint16_t)(a[2] << 8 | a[3]) : 0; /* where both families keep it */
  if (family == AF_INET && len >= sizeof(struct sockaddr_in)) return memcmp(a + 4, lo4, 4) == 0 ? (*v6 = 0, port) : 0;
  if (family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
    if (memcmp(a + 8, lo6, 16) == 0) return *v6 = 1, port;
    if (memcmp(a + 8, mapped, 16) == 0) return *v6 = 0, port;
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 8) return 0;
  uint64_t len = 0;
  for (int i = 7; i >= 0; i--) len = len << 8 | data[i];
  data += 8, size -= 8;
  /* what answer_connect() would have read: `len` bytes, or nothing past a whole storage */
  size_t have = len > sizeof(struct sockaddr_storage) ? sizeof(struct sockaddr_storage) : (size_t)len;
  uint8_t *bytes = malloc(have ? have : 1);
  if (!bytes) return 0;
  memset(bytes, 0, have ? have : 1);
  memcpy(bytes, data, size < have ? size : have);
  int v6 = -1, want_v6 = -1;
  uint16_t port = connect_target((const struct sockaddr_storage *)bytes, len, &v6);
  uint16_t want = expected(bytes, len, &want_v6);
  CHECK(port == want, "length %llu: port %u, expected %u", (unsigned long long)len, port, want);
  if (port) CHECK(v6 == want_v6, "length %llu: v6 loopback %d, expected %d", (unsigned long long)len, v6, want_v6);
  free(bytes);
  return 0;
}
