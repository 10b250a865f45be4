/*
 * par.c: sx__par_for, the one way the core runs work on several threads (the HNSW
 * index's parallel linking and repair, and searches split across threads). Threads
 * live for one call; nothing here keeps state between calls.
 */
#include <pthread.h>
#include <stdlib.h>

#include "os/os.h"

typedef struct part {
  void (*fn)(void *arg, int i);
  void *arg;
  int i;
} part;

static void *run_part(void *a) {
  part *p = a;
  p->fn(p->arg, p->i);
  return NULL;
}

void sx__par_for(int n, void (*fn)(void *arg, int i), void *arg) {
  if (n <= 0) return;
  pthread_t *tids = n > 1 ? malloc((size_t)n * sizeof *tids) : NULL;
  part *parts = n > 1 ? malloc((size_t)n * sizeof *parts) : NULL;
  int started = 0; /* parts 1..started run on their own threads */
  if (tids && parts) {
    for (int i = 1; i < n; i++) {
      parts[i] = (part){fn, arg, i};
      if (pthread_create(&tids[i], NULL, run_part, &parts[i]) != 0) break;
      started = i;
    }
  }
  fn(arg, 0);
  for (int i = 1; i <= started; i++) pthread_join(tids[i], NULL);
  for (int i = started + 1; i < n; i++) fn(arg, i); /* could not start a thread */
  free(tids);
  free(parts);
}
