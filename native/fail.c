/*
 * The one record of a failed step, shared by every program built from this directory:
 * helpers return -1 with errno set, the step that called them records its line here
 * with fail(), and the owner of the policy decides what it means -- the launcher prints
 * it and exits with the step's status, the addon throws it to JavaScript.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sandbox.h"

struct failure failure;

int fail(int step, const char *fmt, ...) {
  int saved = errno;
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  /* the message quotes paths and values from argv: one of them with a newline would
     split the one line the pool reads, and could forge a second one */
  for (char *c = msg; *c; c++)
    if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
  failure.step = step;
  if (saved)
    snprintf(failure.line, sizeof failure.line, "vitest-pool-rootless: %s: %s: %s", step_name(step), msg, strerror(saved));
  else
    snprintf(failure.line, sizeof failure.line, "vitest-pool-rootless: %s: %s", step_name(step), msg);
  errno = saved;
  return -1;
}
