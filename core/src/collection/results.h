/*
 * results.h: the layouts of the objects a read hands back, private to the collection
 * layer (which builds them and implements their public accessors, results.c).
 */
#ifndef SX_RESULTS_H
#define SX_RESULTS_H

#include "collection/collection.h"

struct sx_names {
  size_t n;
  char **names;
};
struct sx_record {
  char *id;
  float *vec;
  size_t dim;
  char *meta;
};
struct sx_results {
  size_t nq;
  size_t *off; /* nq + 1 offsets into hits */
  float *dist;
  char **ids;     /* into blob */
  char *blob;     /* every id, NUL-terminated, one allocation */
  size_t *id_off; /* total + 1 offsets into blob: id h at id_off[h], its NUL at id_off[h + 1] - 1 */
  char *meta;     /* included metadata texts, NUL-terminated; none: an empty range (or NULL) */
  size_t *meta_off; /* total + 1 offsets into meta, or NULL when not included */
  float *vecs;      /* included vectors, total * dim, or NULL */
  size_t vdim;      /* dim when vectors are included, else 0 */
};
struct sx_records {
  size_t n, dim;
  float *vec;           /* n * dim */
  unsigned char *found; /* n */
  char *ids;            /* NUL-terminated ids one after another */
  size_t *id_off;       /* n + 1 */
  char *meta;           /* NUL-terminated texts; none: an empty range */
  size_t *meta_off;     /* n + 1 */
};

#endif
