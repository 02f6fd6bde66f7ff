/*
 * --egress-allow ADDR/LEN...: the allow-list of network: 'egress', as the routes of the
 * sandbox's own network namespace.
 *
 * Neither slirp4netns nor pasta can filter destinations, and nftables/iptables are not
 * on every machine; but uid 0 of the sandbox owns its network namespace, so its routing
 * table can say it. Once the helper has configured the tap device (its default route,
 * and the prefix route of its subnet -- pasta copies the host's, which would reach the
 * host's LAN), every route it made is replaced by:
 *   - one route per allowed range, through the helper's gateway (onlink: the subnet
 *     route is gone);
 *   - the helper's DNS forwarder, on the link: names still resolve;
 *   - an `unreachable` default route, IPv4 and IPv6: a connect(2) or sendto(2) to
 *     anything else fails at once with EHOSTUNREACH, for every process in the sandbox
 *     (not only Node), at no cost per connection.
 * It guards against a test reaching what it shouldn't by accident; uid 0 of the sandbox
 * could change its own routes back (as it could under `network: 'egress'` without a list).
 * Link-local and multicast routes stay: they lead to nothing beyond the helper.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sandbox.h"

/* The helpers' DNS forwarders (the addresses egress.c and src/plan/egress.ts name). */
#define SLIRP_DNS "10.0.2.3"
#define PASTA_DNS "169.254.1.1"

/* Routes of the main table looked at; a fresh namespace with its helper has a handful. */
#define MAX_ROUTES 32

struct request {
  struct nlmsghdr h;
  struct rtmsg r;
  char attrs[256];
};

struct route {
  int family;
  unsigned char dst[16];
  int dst_len;
  unsigned char gateway[16];
  int has_gateway;
  int oif;
  struct request raw; /* the kernel's message, sent back as RTM_DELROUTE */
};

int parse_egress_allow(const char *text, struct egress_allow *out) {
  char addr[INET6_ADDRSTRLEN];
  const char *slash = strchr(text, '/');
  size_t n = slash ? (size_t)(slash - text) : strlen(text);
  if (n == 0 || n >= sizeof addr) return -1;
  memcpy(addr, text, n);
  addr[n] = 0;
  memset(out, 0, sizeof *out);
  if (inet_pton(AF_INET, addr, out->addr) == 1) out->family = AF_INET;
  else if (inet_pton(AF_INET6, addr, out->addr) == 1) out->family = AF_INET6;
  else return -1;
  int max = out->family == AF_INET ? 32 : 128;
  out->len = max;
  if (slash) {
    char *end;
    long len = strtol(slash + 1, &end, 10);
    if (slash[1] == 0 || *end || len < 0 || len > max) return -1;
    out->len = (int)len;
  }
  /* the kernel takes a route's prefix only with its host bits clear: 10.1.2.3/8 is 10.0.0.0/8 */
  for (int bit = out->len; bit < max; bit++) out->addr[bit / 8] &= (unsigned char)~(0x80 >> (bit % 8));
  return 0;
}

static void add_attr(struct request *m, int type, const void *data, size_t len) {
  struct rtattr *a = (struct rtattr *)((char *)m + NLMSG_ALIGN(m->h.nlmsg_len));
  a->rta_type = (unsigned short)type;
  a->rta_len = (unsigned short)RTA_LENGTH(len);
  memcpy(RTA_DATA(a), data, len);
  m->h.nlmsg_len = NLMSG_ALIGN(m->h.nlmsg_len) + RTA_ALIGN(a->rta_len);
}

/* Sends one request and reads its acknowledgement: 0, or -1 with the kernel's errno. */
static int ask(int nl, struct request *m) {
  static unsigned seq;
  m->h.nlmsg_seq = ++seq;
  m->h.nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
  if (send(nl, m, m->h.nlmsg_len, 0) < 0) return -1;
  char buf[4096];
  for (;;) {
    ssize_t n = read_retry(nl, buf, sizeof buf);
    if (n < 0) return -1;
    for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_seq != m->h.nlmsg_seq || h->nlmsg_type != NLMSG_ERROR) continue;
      int error = ((struct nlmsgerr *)NLMSG_DATA(h))->error;
      if (error == 0) return 0;
      errno = -error;
      return -1;
    }
  }
}

/* The main table's routes of both families: their count, or -1. */
static int main_routes(int nl, struct route *routes) {
  struct request m = {.h = {.nlmsg_len = NLMSG_LENGTH(sizeof(struct rtmsg)), .nlmsg_type = RTM_GETROUTE, .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP, .nlmsg_seq = 1}};
  if (send(nl, &m, m.h.nlmsg_len, 0) < 0) return -1;
  int count = 0;
  char buf[16384];
  for (;;) {
    ssize_t n = read_retry(nl, buf, sizeof buf);
    if (n < 0) return -1;
    for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_type == NLMSG_DONE) return count;
      if (h->nlmsg_type == NLMSG_ERROR) {
        errno = -((struct nlmsgerr *)NLMSG_DATA(h))->error;
        return -1;
      }
      if (h->nlmsg_type != RTM_NEWROUTE || h->nlmsg_len > sizeof(struct request)) continue;
      struct rtmsg *r = NLMSG_DATA(h);
      if (r->rtm_table != RT_TABLE_MAIN || count >= MAX_ROUTES) continue;
      struct route *route = &routes[count++];
      memset(route, 0, sizeof *route);
      memcpy(&route->raw, h, h->nlmsg_len);
      route->family = r->rtm_family;
      route->dst_len = r->rtm_dst_len;
      size_t size = r->rtm_family == AF_INET6 ? 16 : 4;
      int left = (int)RTM_PAYLOAD(h);
      for (struct rtattr *a = RTM_RTA(r); RTA_OK(a, left); a = RTA_NEXT(a, left)) {
        if (a->rta_type == RTA_DST && RTA_PAYLOAD(a) == size) memcpy(route->dst, RTA_DATA(a), size);
        if (a->rta_type == RTA_GATEWAY && RTA_PAYLOAD(a) == size) memcpy(route->gateway, RTA_DATA(a), size), route->has_gateway = 1;
        if (a->rta_type == RTA_OIF && RTA_PAYLOAD(a) == sizeof(int)) memcpy(&route->oif, RTA_DATA(a), sizeof(int));
      }
    }
  }
}

/* Link-local (fe80::/10) and multicast (ff00::/8) routes lead nowhere beyond the helper. */
static int stays(const struct route *r) {
  return r->family == AF_INET6 && r->dst_len >= 8 && (r->dst[0] == 0xff || (r->dst[0] == 0xfe && (r->dst[1] & 0xc0) == 0x80));
}

/* A route of the main table to `dst`/`len`: through `via` (onlink), on the link (`via` NULL), or unreachable (`oif` 0). */
static int add_route(int nl, int family, const void *dst, int len, const void *via, int oif) {
  struct request m = {
      .h = {.nlmsg_len = NLMSG_LENGTH(sizeof(struct rtmsg)), .nlmsg_type = RTM_NEWROUTE, .nlmsg_flags = NLM_F_CREATE | NLM_F_REPLACE},
      .r = {.rtm_family = (unsigned char)family, .rtm_dst_len = (unsigned char)len, .rtm_table = RT_TABLE_MAIN, .rtm_protocol = RTPROT_STATIC,
            .rtm_scope = oif ? (via ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK) : RT_SCOPE_NOWHERE, .rtm_type = oif ? RTN_UNICAST : RTN_UNREACHABLE},
  };
  size_t size = family == AF_INET6 ? 16 : 4;
  if (len > 0) add_attr(&m, RTA_DST, dst, size);
  if (via) add_attr(&m, RTA_GATEWAY, via, size), m.r.rtm_flags |= RTNH_F_ONLINK;
  if (oif) add_attr(&m, RTA_OIF, &oif, sizeof oif);
  return ask(nl, &m);
}

int restrict_egress(const struct plan *p) {
  int nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (nl < 0) return fail(STEP_EGRESS, "can't open a netlink socket for the egress allow-list");
  struct route routes[MAX_ROUTES];
  int n = main_routes(nl, routes), rc = -1;
  if (n < 0) {
    fail(STEP_EGRESS, "can't read the sandbox's routes for the egress allow-list");
    goto out;
  }
  /* the helper's way out, per family: its default route's gateway and device */
  const struct route *out4 = NULL, *out6 = NULL;
  for (int i = 0; i < n; i++) {
    if (routes[i].dst_len != 0 || !routes[i].has_gateway || !routes[i].oif) continue;
    if (routes[i].family == AF_INET && !out4) out4 = &routes[i];
    if (routes[i].family == AF_INET6 && !out6) out6 = &routes[i];
  }
  if (!out4) {
    errno = 0;
    fail(STEP_EGRESS, "the egress helper made no IPv4 default route to restrict to the allow-list");
    goto out;
  }
  for (int i = 0; i < n; i++) {
    if (stays(&routes[i])) continue;
    routes[i].raw.h.nlmsg_type = RTM_DELROUTE;
    routes[i].raw.h.nlmsg_flags = 0;
    if (ask(nl, &routes[i].raw) < 0 && errno != ESRCH) {
      fail(STEP_EGRESS, "can't remove a route of the egress helper's for the egress allow-list");
      goto out;
    }
  }
  /* first the refusals, then what is allowed: an allowed 0.0.0.0/0 replaces the refusal */
  static const unsigned char any[16];
  if (add_route(nl, AF_INET, any, 0, NULL, 0) < 0) {
    fail(STEP_EGRESS, "can't add the unreachable default route of the egress allow-list");
    goto out;
  }
  /* a namespace with IPv6 switched off has nothing to refuse there */
  if (add_route(nl, AF_INET6, any, 0, NULL, 0) < 0 && errno != EAFNOSUPPORT && errno != EOPNOTSUPP && errno != EACCES) {
    fail(STEP_EGRESS, "can't add the unreachable IPv6 default route of the egress allow-list");
    goto out;
  }
  unsigned char dns[4];
  inet_pton(AF_INET, p->egress_kind == EGRESS_PASTA ? PASTA_DNS : SLIRP_DNS, dns);
  if (add_route(nl, AF_INET, dns, 32, NULL, out4->oif) < 0) {
    fail(STEP_EGRESS, "can't add the route to the egress helper's DNS forwarder");
    goto out;
  }
  for (int i = 0; i < p->n_egress_allow; i++) {
    const struct egress_allow *a = &p->egress_allow[i];
    const struct route *via = a->family == AF_INET ? out4 : out6;
    /* no IPv6 way out (slirp4netns without --enable-ipv6): unreachable either way */
    if (!via) continue;
    if (add_route(nl, a->family, a->addr, a->len, via->gateway, via->oif) < 0) {
      char text[INET6_ADDRSTRLEN] = "?";
      inet_ntop(a->family, a->addr, text, sizeof text);
      fail(STEP_EGRESS, "can't add the egress allow-list's route to %s/%d", text, a->len);
      goto out;
    }
  }
  rc = 0;
out:
  close(nl);
  return rc;
}
