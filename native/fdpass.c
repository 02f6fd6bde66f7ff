/*
 * Reading and writing whole buffers, and passing fds over Unix sockets (SCM_RIGHTS):
 * the forwarder's control socket and the warm holder's network namespaces. EINTR is
 * retried everywhere; every fd received is close-on-exec.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sandbox.h"

ssize_t write_all(int fd, const void *buf, size_t len) {
  const char *p = buf;
  size_t done = 0;
  while (done < len) {
    ssize_t n = write(fd, p + done, len - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    done += (size_t)n;
  }
  return (ssize_t)done;
}

ssize_t read_retry(int fd, void *buf, size_t len) {
  ssize_t n;
  do n = read(fd, buf, len); while (n < 0 && errno == EINTR);
  return n;
}

int write_file(const char *path, const char *content) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = write_all(fd, content, strlen(content));
  int saved = errno;
  close(fd);
  errno = saved;
  return n < 0 ? -1 : 0;
}

/* Room for more fds than any message of ours carries, so that a message with extra ones
   is seen as such and each of them closed (the kernel closes those that don't fit). */
#define MAX_RECEIVED 8
union fds_control {
  struct cmsghdr h;
  char buf[CMSG_SPACE(MAX_RECEIVED * sizeof(int))];
};

ssize_t send_with_fd(int sock, const void *buf, size_t len, int fd) {
  struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
  union fds_control control;
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
  if (fd >= 0) {
    memset(&control, 0, sizeof control);
    m.msg_control = control.buf;
    m.msg_controllen = CMSG_SPACE(sizeof(int));
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  ssize_t n;
  do n = sendmsg(sock, &m, MSG_NOSIGNAL); while (n < 0 && errno == EINTR);
  return n;
}

ssize_t recv_with_fd(int sock, void *buf, size_t len, int *fd) {
  struct iovec iov = {.iov_base = buf, .iov_len = len};
  union fds_control control;
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control.buf};
  ssize_t n;
  do n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC); while (n < 0 && errno == EINTR);
  *fd = -1;
  if (n < 0) return -1;
  /* every fd that came, whatever the message: none may stay open unnoticed */
  int received[MAX_RECEIVED], count = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len < CMSG_LEN(0)) continue;
    size_t in = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < in && count < MAX_RECEIVED; i++) memcpy(&received[count++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
  }
  if (count <= 1 && !(m.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
    if (count == 1) *fd = received[0];
    return n;
  }
  for (int i = 0; i < count; i++) close(received[i]);
  errno = EBADMSG;
  return -1;
}

pid_t fork_helper(int *ctl, int *keep) {
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0) return -1;
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    int saved = errno;
    close(pair[0]);
    close(pair[1]);
    errno = saved;
    return -1;
  }
  if (pid == 0) {
    /* a helper dies with its parent (the launcher, the holder): the sandbox is gone then.
       A parent that exited before we asked (a later step failed at once) sends nothing */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(0);
    /* hold nothing of the sandbox's: its stdio, the runner's IPC channel, the status pipe
       (each would stay open as long as we do); only our end of the control socket */
    /* `keep` out of the way of 3 and 4 first: it may be either */
    int moved = keep && *keep >= 0 ? fcntl(*keep, F_DUPFD_CLOEXEC, 5) : -1;
    *ctl = dup2(pair[1], 3) < 0 ? pair[1] : 3;
    /* the one other fd a helper may need, at 4 (dup2 drops close-on-exec: no exec follows) */
    int kept = moved >= 0 && *ctl == 3 ? dup2(moved, 4) : -1;
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    for (int fd = 0; fd < 3 && null >= 0; fd++) dup2(null, fd);
    int first = kept == 4 ? 5 : 4;
    if (*ctl != 3 || syscall(SYS_close_range, (unsigned)first, ~0U, 0U) < 0)
      for (int fd = first; fd < 1024; fd++) if (fd != *ctl) close(fd);
    if (keep) *keep = kept;
    return 0;
  }
  close(pair[1]);
  *ctl = pair[0];
  return pid;
}
