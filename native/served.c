/*
 * Which TCP ports something listens on in the forwarder's network (the host's), for the
 * control protocol's 'Q'. Asked of the kernel's socket tables, not by connecting: a test
 * connection would reach the service (a server that greets first gets reset), and a busy
 * machine can make a connect look like no answer.
 *
 * Read once per round of questions (a start or a reset asks about every port before
 * anything else), through sock_diag(7) for listening sockets only: the kernel walks just
 * its listening hash, about 0.1 ms. /proc/net/tcp{,6}, the fallback where netlink is
 * refused, walks every bucket of the established hash too: 10-30 ms a read on a host
 * with much memory, whatever few sockets it holds.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "forwarder.h"

#define TCP_LISTEN_STATE 10 /* TCP_LISTEN of the kernel's tcp_states.h */

static uint8_t served[65536 / 8];
static int served_known;  /* the tables were read for this round */
static int tables_read;   /* ...and could be: where they can't, every port counts as served */

static void mark(uint8_t *ports, unsigned long port) {
  if (port > 0 && port < 65536) ports[port / 8] |= (uint8_t)(1u << (port % 8));
}

static void mark_listener(const void *message, void *ports) {
  mark(ports, ntohs(((const struct inet_diag_msg *)message)->id.idiag_sport));
}

/* The listening TCP sockets of both families in the network of the sock_diag socket `s`,
   marked in `ports`; -1 where it can't be asked. */
static int dump_listening(int s, uint8_t *ports) {
  int rc = sock_diag_dump(s, AF_INET, IPPROTO_TCP, 1u << TCP_LISTEN_STATE, mark_listener, ports);
  return rc == 0 ? sock_diag_dump(s, AF_INET6, IPPROTO_TCP, 1u << TCP_LISTEN_STATE, mark_listener, ports) : rc;
}

/* The host's, by sock_diag. */
static int read_diag(void) {
  int s = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (s < 0) return -1;
  int rc = dump_listening(s, served);
  close(s);
  return rc;
}

int listens_in(int diag, uint16_t port) {
  uint8_t ports[65536 / 8];
  memset(ports, 0, sizeof ports);
  if (dump_listening(diag, ports) < 0) return -1;
  return (ports[port / 8] & (1u << (port % 8))) != 0;
}

/* The same from /proc/self/net/tcp{,6}; -1 where neither can be read. */
static int read_proc(void) {
  const char *tables[] = {"/proc/self/net/tcp", "/proc/self/net/tcp6"};
  int read_any = -1;
  for (int t = 0; t < 2; t++) {
    FILE *f = fopen(tables[t], "re");
    if (!f) continue;
    read_any = 0;
    char line[512];
    if (fgets(line, sizeof line, f)) /* the header */
      while (fgets(line, sizeof line, f)) {
        /* "  sl: ADDRESS:PORT REMOTE:PORT ST ..." with hex PORT and ST 0A for LISTEN */
        char local[64];
        unsigned state;
        if (sscanf(line, " %*s %63s %*s %x", local, &state) != 2 || state != TCP_LISTEN_STATE) continue;
        const char *colon = strrchr(local, ':');
        mark(served, colon ? strtoul(colon + 1, NULL, 16) : 0);
      }
    fclose(f);
  }
  return read_any;
}

static void read_served(void) {
  memset(served, 0, sizeof served);
  tables_read = read_diag() == 0;
  if (!tables_read) {
    memset(served, 0, sizeof served);
    tables_read = read_proc() == 0;
  }
  served_known = 1;
}

void forget_served(void) {
  served_known = 0;
}

/* Wrongly refused would cut a sandbox off its database; wrongly served only resets a
   connection to a dead port: tables that can't be read count every port as served. */
int host_serves(uint16_t port) {
  if (!served_known) read_served();
  return !tables_read || (served[port / 8] & (1u << (port % 8)));
}
