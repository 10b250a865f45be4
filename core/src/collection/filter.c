/*
 * filter.c: filters over metadata (the language is documented in sextant.h, @ref
 * filters), compiled once per search and evaluated against each candidate's stored
 * metadata text.
 *
 * A filter's JSON text is parsed with jansson and compiled into a flat program: its
 * nodes in pre-order, each knowing the size of its subtree, so that a node's
 * children follow it one subtree after another. Strings (operands and path segments)
 * point into the parsed JSON, which the program keeps alive.
 *
 * Evaluation must not allocate per candidate: the metadata text is tokenized by jsmn
 * into a token array owned by the evaluation state (one per search thread, grown
 * when a text needs more tokens), and strings with escapes are decoded into the
 * state's scratch buffer. Metadata was validated when it was stored, but what is read
 * back from pages may be damaged: anything jsmn or the decoder rejects is
 * SX_CORRUPT naming the slot, never a crash.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define JSMN_STATIC
#define JSMN_STRICT
#include <jsmn.h>

#include "collection/collection.h"
#include "collection/results.h"

/* Deepest nesting of $and/$or/$not a filter may have (evaluation recurses on it). */
#define MAX_DEPTH 64

enum { F_TRUE, F_AND, F_OR, F_NOT, F_CMP };
enum { OP_EQ, OP_NE, OP_GT, OP_GTE, OP_LT, OP_LTE, OP_IN, OP_NIN, OP_EXISTS };
enum { V_NULL, V_BOOL, V_NUM, V_STR };

typedef struct fval {
  int type;
  int b;
  double num;
  const char *s;
  size_t len;
} fval;

typedef struct seg {
  const char *s;
  size_t len;
} seg;

typedef struct fnode {
  int kind, op;
  uint32_t size;   /* nodes in this subtree, itself included */
  uint32_t nkids;  /* AND, OR, NOT */
  uint32_t v0, nv; /* CMP: operands vals[v0 .. v0 + nv) */
  uint32_t p0, np; /* CMP: path segments segs[p0 .. p0 + np) */
  int exists;      /* OP_EXISTS: the operand */
} fnode;

struct sx__filter {
  json_t *json; /* keeps the strings alive */
  fnode *nodes;
  size_t nn, cn;
  fval *vals;
  size_t nv, cv;
  seg *segs;
  size_t ns, cs;
};

void sx__filter_free(sx__filter *f) {
  if (!f) return;
  json_decref(f->json);
  free(f->nodes);
  free(f->vals);
  free(f->segs);
  free(f);
}

/* ---- compiling ------------------------------------------------------------------ */

typedef struct comp {
  sx__filter *f;
  sx_error *err;
} comp;

static int grow(void **p, size_t *cap, size_t need, size_t elt) {
  if (need <= *cap) return 0;
  size_t nc = *cap ? *cap * 2 : 16;
  while (nc < need) nc *= 2;
  void *q = realloc(*p, nc * elt);
  if (!q) return -1;
  *p = q;
  *cap = nc;
  return 0;
}

static int new_node(comp *C, int kind, uint32_t *at) {
  sx__filter *f = C->f;
  if (grow((void **)&f->nodes, &f->cn, f->nn + 1, sizeof *f->nodes))
    return sx__err_set(C->err, SX_NOMEM, "out of memory for filter");
  *at = (uint32_t)f->nn++;
  memset(&f->nodes[*at], 0, sizeof *f->nodes);
  f->nodes[*at].kind = kind;
  return SX_OK;
}

/* A scalar operand into vals. */
static int add_value(comp *C, const char *where, const char *op, json_t *v) {
  sx__filter *f = C->f;
  fval x = {0};
  if (json_is_null(v)) {
    x.type = V_NULL;
  } else if (json_is_boolean(v)) {
    x.type = V_BOOL;
    x.b = json_is_true(v);
  } else if (json_is_number(v)) {
    x.type = V_NUM;
    x.num = json_number_value(v);
  } else if (json_is_string(v)) {
    x.type = V_STR;
    x.s = json_string_value(v);
    x.len = json_string_length(v);
  } else {
    return sx__err_set(C->err, SX_INVALID_ARGUMENT,
                       "filter: the value of %s on '%s' must be a string, number, boolean or null",
                       op, where);
  }
  if (grow((void **)&f->vals, &f->cv, f->nv + 1, sizeof *f->vals))
    return sx__err_set(C->err, SX_NOMEM, "out of memory for filter");
  f->vals[f->nv++] = x;
  return SX_OK;
}

static const struct {
  const char *name;
  int op;
} OPS[] = {{"$eq", OP_EQ},   {"$ne", OP_NE},   {"$gt", OP_GT},
           {"$gte", OP_GTE}, {"$lt", OP_LT},   {"$lte", OP_LTE},
           {"$in", OP_IN},   {"$nin", OP_NIN}, {"$exists", OP_EXISTS}};

/* One condition on field `key`: operator op (by name) with operand v. */
static int comp_cmp(comp *C, const char *key, const char *opname, json_t *v) {
  sx__filter *f = C->f;
  int op = -1;
  for (size_t i = 0; i < sizeof OPS / sizeof *OPS; i++)
    if (!strcmp(OPS[i].name, opname)) op = OPS[i].op;
  if (op < 0)
    return sx__err_set(C->err, SX_INVALID_ARGUMENT, "filter: unknown operator '%s' on '%s'", opname,
                       key);
  uint32_t at;
  int rc = new_node(C, F_CMP, &at);
  if (rc) return rc;
  fnode *n = &f->nodes[at];
  n->op = op;
  n->size = 1;
  /* The path, split at dots into segments that point into the key. */
  n->p0 = (uint32_t)f->ns;
  for (const char *s = key;;) {
    const char *dot = strchr(s, '.');
    size_t len = dot ? (size_t)(dot - s) : strlen(s);
    if (len == 0)
      return sx__err_set(C->err, SX_INVALID_ARGUMENT, "filter: field path '%s' has an empty part",
                         key);
    if (grow((void **)&f->segs, &f->cs, f->ns + 1, sizeof *f->segs))
      return sx__err_set(C->err, SX_NOMEM, "out of memory for filter");
    f->segs[f->ns++] = (seg){s, len};
    if (!dot) break;
    s = dot + 1;
  }
  n->np = (uint32_t)f->ns - n->p0;
  n->v0 = (uint32_t)f->nv;
  if (op == OP_EXISTS) {
    if (!json_is_boolean(v))
      return sx__err_set(C->err, SX_INVALID_ARGUMENT,
                         "filter: the value of $exists on '%s' must be a boolean", key);
    n->exists = json_is_true(v);
  } else if (op == OP_IN || op == OP_NIN) {
    if (!json_is_array(v))
      return sx__err_set(C->err, SX_INVALID_ARGUMENT,
                         "filter: the value of %s on '%s' must be an array", opname, key);
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
      if ((rc = add_value(C, key, opname, e))) return rc;
    }
  } else {
    if ((rc = add_value(C, key, opname, v))) return rc;
    int t = f->vals[f->nv - 1].type;
    if (op != OP_EQ && op != OP_NE && (t == V_NULL || t == V_BOOL))
      return sx__err_set(C->err, SX_INVALID_ARGUMENT,
                         "filter: the value of %s on '%s' must be a number or a string", opname,
                         key);
  }
  f->nodes[at].nv = (uint32_t)f->nv - f->nodes[at].v0;
  return SX_OK;
}

static int comp_object(comp *C, json_t *o, int depth);

/* $and / $or: a non-empty array of filter objects. */
static int comp_list(comp *C, const char *name, json_t *v, int kind, int depth) {
  if (!json_is_array(v) || json_array_size(v) == 0)
    return sx__err_set(C->err, SX_INVALID_ARGUMENT, "filter: %s needs a non-empty array of filters",
                       name);
  uint32_t at;
  int rc = new_node(C, kind, &at);
  if (rc) return rc;
  size_t i;
  json_t *e;
  json_array_foreach(v, i, e) {
    if (!json_is_object(e))
      return sx__err_set(C->err, SX_INVALID_ARGUMENT, "filter: item %zu of %s is not an object", i,
                         name);
    if ((rc = comp_object(C, e, depth + 1))) return rc;
  }
  C->f->nodes[at].nkids = (uint32_t)json_array_size(v);
  C->f->nodes[at].size = (uint32_t)(C->f->nn - at);
  return SX_OK;
}

/* One key of a filter object: a logical operator, or a field with its condition. */
static int comp_key(comp *C, const char *key, json_t *v, int depth) {
  int rc;
  if (key[0] == '$') {
    if (!strcmp(key, "$and")) return comp_list(C, key, v, F_AND, depth);
    if (!strcmp(key, "$or")) return comp_list(C, key, v, F_OR, depth);
    if (!strcmp(key, "$not")) {
      if (!json_is_object(v))
        return sx__err_set(C->err, SX_INVALID_ARGUMENT, "filter: $not needs a filter object");
      uint32_t at;
      if ((rc = new_node(C, F_NOT, &at))) return rc;
      if ((rc = comp_object(C, v, depth + 1))) return rc;
      C->f->nodes[at].nkids = 1;
      C->f->nodes[at].size = (uint32_t)(C->f->nn - at);
      return SX_OK;
    }
    return sx__err_set(C->err, SX_INVALID_ARGUMENT, "filter: unknown operator '%s'", key);
  }
  if (!json_is_object(v)) return comp_cmp(C, key, "$eq", v);
  /* {"field": {"$op": v, ...}}: every condition holds. */
  if (json_object_size(v) == 0)
    return sx__err_set(C->err, SX_INVALID_ARGUMENT, "filter: no operator on '%s'", key);
  uint32_t at = 0;
  int many = json_object_size(v) > 1;
  if (many && (rc = new_node(C, F_AND, &at))) return rc;
  const char *op;
  json_t *x;
  json_object_foreach(v, op, x) {
    if (op[0] != '$')
      return sx__err_set(C->err, SX_INVALID_ARGUMENT,
                         "filter: '%s' on '%s' is not an operator (a value must be a string, "
                         "number, boolean or null)",
                         op, key);
    if ((rc = comp_cmp(C, key, op, x))) return rc;
  }
  if (many) {
    C->f->nodes[at].nkids = (uint32_t)json_object_size(v);
    C->f->nodes[at].size = (uint32_t)(C->f->nn - at);
  }
  return SX_OK;
}

/* A filter object: every key holds (none: matches everything). */
static int comp_object(comp *C, json_t *o, int depth) {
  if (depth > MAX_DEPTH)
    return sx__err_set(C->err, SX_INVALID_ARGUMENT, "filter: nested deeper than %d", MAX_DEPTH);
  size_t n = json_object_size(o);
  uint32_t at = 0;
  int rc;
  if (n != 1) {
    if ((rc = new_node(C, n ? F_AND : F_TRUE, &at))) return rc;
  }
  const char *key;
  json_t *v;
  json_object_foreach(o, key, v) {
    if ((rc = comp_key(C, key, v, depth))) return rc;
  }
  if (n != 1) {
    C->f->nodes[at].nkids = (uint32_t)n;
    C->f->nodes[at].size = (uint32_t)(C->f->nn - at);
  }
  return SX_OK;
}

int sx__filter_compile(const char *text, sx__filter **out, sx_error *err) {
  *out = NULL;
  if (!text) return sx__err_set(err, SX_INVALID_ARGUMENT, "filter is NULL");
  json_error_t je;
  /* Integers as doubles: comparisons are between doubles anyway, and a big integer is
   * no error (jansson refuses those past 64 bits). */
  size_t flags =
      JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL;
  json_t *j = json_loads(text, flags, &je);
  if (!j)
    return sx__err_set(err, SX_INVALID_ARGUMENT,
                       "filter is not valid JSON: %s at line %d column %d", je.text, je.line,
                       je.column);
  if (!json_is_object(j)) {
    json_decref(j);
    return sx__err_set(err, SX_INVALID_ARGUMENT, "filter is not a JSON object");
  }
  sx__filter *f = calloc(1, sizeof *f);
  if (!f) {
    json_decref(j);
    return sx__err_set(err, SX_NOMEM, "out of memory for filter");
  }
  f->json = j;
  comp C = {f, err};
  int rc = comp_object(&C, j, 0);
  if (rc) {
    sx__filter_free(f);
    return rc;
  }
  *out = f;
  return SX_OK;
}

int sx__filter_always(const sx__filter *f) {
  return f->nn == 1 && f->nodes[0].kind == F_TRUE;
}

/* ---- evaluating ------------------------------------------------------------------- */

void sx__fstate_init(sx__fstate *s, const sx__coll *c, const uint8_t *h, const sx__filter *f) {
  memset(s, 0, sizeof *s);
  s->c = c;
  s->h = h;
  s->f = f;
  if (c) {
    sx__pa_cursor_init(&s->sc, &c->v, h + SX__H_PA_SLOTS);
    sx__pa_cursor_init(&s->hc, &c->v, h + SX__H_PA_HEAP);
    s->heaplen = sx__rd64(h + SX__H_HEAPLEN);
  }
}

void sx__fstate_free(sx__fstate *s) {
  free(s->tok);
  free(s->text);
  free(s->scr);
  s->tok = NULL;
  s->text = s->scr = NULL;
  s->ntok = s->tcap = s->scap = 0;
}

/* One evaluation: the text, its tokens, and where to report damage. */
typedef struct ev {
  sx__fstate *s;
  const char *js;
  const jsmntok_t *t;
  int nt;
  uint64_t slot;
  sx_error *err;
} ev;

static int corrupt(ev *e, const char *what) {
  if (e->s->c)
    sx__err_set(e->err, SX_CORRUPT,
                "metadata of slot %llu in collection '%s' is not valid JSON (%s)",
                (unsigned long long)e->slot, e->s->c->name, what);
  else
    sx__err_set(e->err, SX_CORRUPT, "metadata is not valid JSON (%s)", what);
  return -SX_CORRUPT;
}

/* The token after the subtree of token i. */
static int skip(const ev *e, int i) {
  int end = e->t[i].end;
  for (i++; i < e->nt && e->t[i].start < end; i++) {
  }
  return i;
}

static int hex4(const char *p, unsigned *out) {
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    char ch = p[i];
    v <<= 4;
    if (ch >= '0' && ch <= '9')
      v |= (unsigned)(ch - '0');
    else if (ch >= 'a' && ch <= 'f')
      v |= (unsigned)(ch - 'a' + 10);
    else if (ch >= 'A' && ch <= 'F')
      v |= (unsigned)(ch - 'A' + 10);
    else
      return -1;
  }
  *out = v;
  return 0;
}

static size_t put_utf8(char *o, unsigned cp) {
  if (cp < 0x80) {
    o[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = (char)(0xC0 | cp >> 6);
    o[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (char)(0xE0 | cp >> 12);
    o[1] = (char)(0x80 | (cp >> 6 & 0x3F));
    o[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  o[0] = (char)(0xF0 | cp >> 18);
  o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
  o[2] = (char)(0x80 | (cp >> 6 & 0x3F));
  o[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* The decoded bytes of string token i: the text itself when it has no escape, else
 * decoded into the scratch buffer (valid until the next decode). <0 on damage. */
static int str_of(ev *e, int i, const char **p, size_t *len) {
  const char *r = e->js + e->t[i].start;
  size_t n = (size_t)(e->t[i].end - e->t[i].start);
  if (!memchr(r, '\\', n)) {
    *p = r;
    *len = n;
    return 0;
  }
  sx__fstate *s = e->s;
  if (n + 1 > s->scap) {
    /* A decoded string is never longer than its text. */
    char *nb = realloc(s->scr, n + 1);
    if (!nb) {
      sx__err_set(e->err, SX_NOMEM, "out of memory for filter");
      return -SX_NOMEM;
    }
    s->scr = nb;
    s->scap = n + 1;
  }
  char *o = s->scr;
  for (size_t k = 0; k < n; k++) {
    if (r[k] != '\\') {
      *o++ = r[k];
      continue;
    }
    if (++k >= n) return corrupt(e, "bad escape");
    switch (r[k]) {
      case '"':
        *o++ = '"';
        break;
      case '\\':
        *o++ = '\\';
        break;
      case '/':
        *o++ = '/';
        break;
      case 'b':
        *o++ = '\b';
        break;
      case 'f':
        *o++ = '\f';
        break;
      case 'n':
        *o++ = '\n';
        break;
      case 'r':
        *o++ = '\r';
        break;
      case 't':
        *o++ = '\t';
        break;
      case 'u': {
        unsigned cp, lo;
        if (k + 4 >= n || hex4(r + k + 1, &cp)) return corrupt(e, "bad \\u escape");
        k += 4;
        if (cp >= 0xD800 && cp < 0xDC00) {
          if (k + 6 >= n || r[k + 1] != '\\' || r[k + 2] != 'u' || hex4(r + k + 3, &lo) ||
              lo < 0xDC00 || lo > 0xDFFF)
            return corrupt(e, "lone surrogate");
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          k += 6;
        } else if (cp >= 0xDC00 && cp < 0xE000) {
          return corrupt(e, "lone surrogate");
        }
        o += put_utf8(o, cp);
        break;
      }
      default:
        return corrupt(e, "bad escape");
    }
  }
  *p = s->scr;
  *len = (size_t)(o - s->scr);
  return 0;
}

/* A metadata scalar, classified. */
typedef struct mval {
  int type; /* V_*, or -1 for an object or array */
  int b;
  double num;
  const char *s;
  size_t len;
} mval;

/* JSON number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int is_number(const char *p, size_t n) {
  size_t i = 0;
  if (i < n && p[i] == '-') i++;
  if (i >= n) return 0;
  if (p[i] == '0')
    i++;
  else if (p[i] >= '1' && p[i] <= '9')
    while (i < n && p[i] >= '0' && p[i] <= '9') i++;
  else
    return 0;
  if (i < n && p[i] == '.') {
    size_t d = ++i;
    while (i < n && p[i] >= '0' && p[i] <= '9') i++;
    if (i == d) return 0;
  }
  if (i < n && (p[i] == 'e' || p[i] == 'E')) {
    i++;
    if (i < n && (p[i] == '+' || p[i] == '-')) i++;
    size_t d = i;
    while (i < n && p[i] >= '0' && p[i] <= '9') i++;
    if (i == d) return 0;
  }
  return i == n;
}

/* An integer of at most 15 digits (exact in a double), without strtod: most numbers
 * in metadata are. 0 for anything else (strtod then judges it). */
static int int_fast(const char *p, size_t n, double *out) {
  size_t i = p[0] == '-';
  if (n <= i || n - i > 15 || (p[i] == '0' && n - i > 1)) return 0;
  uint64_t v = 0;
  for (size_t j = i; j < n; j++) {
    unsigned d = (unsigned)(p[j] - '0');
    if (d > 9) return 0;
    v = v * 10 + d;
  }
  *out = i ? -(double)v : (double)v;
  return 1;
}

static int value_of(ev *e, int i, mval *v) {
  const jsmntok_t *t = &e->t[i];
  if (t->type == JSMN_STRING) {
    v->type = V_STR;
    return str_of(e, i, &v->s, &v->len);
  }
  if (t->type != JSMN_PRIMITIVE) {
    v->type = -1;
    return 0;
  }
  const char *p = e->js + t->start;
  size_t n = (size_t)(t->end - t->start);
  if (n == 4 && !memcmp(p, "true", 4)) {
    v->type = V_BOOL;
    v->b = 1;
  } else if (n == 5 && !memcmp(p, "false", 5)) {
    v->type = V_BOOL;
    v->b = 0;
  } else if (n == 4 && !memcmp(p, "null", 4)) {
    v->type = V_NULL;
  } else if (int_fast(p, n, &v->num)) {
    v->type = V_NUM;
  } else if (is_number(p, n)) {
    char buf[64];
    char *q = buf;
    if (n >= sizeof buf) {
      /* Long numbers (many digits) go through the scratch buffer. */
      if (n + 1 > e->s->scap) {
        char *nb = realloc(e->s->scr, n + 1);
        if (!nb) {
          sx__err_set(e->err, SX_NOMEM, "out of memory for filter");
          return -SX_NOMEM;
        }
        e->s->scr = nb;
        e->s->scap = n + 1;
      }
      q = e->s->scr;
    }
    memcpy(q, p, n);
    q[n] = 0;
    v->type = V_NUM;
    v->num = strtod(q, NULL);
  } else {
    return corrupt(e, "bad literal");
  }
  return 0;
}

static int bytes_cmp(const char *a, size_t la, const char *b, size_t lb) {
  int r = memcmp(a, b, la < lb ? la : lb);
  if (r) return r;
  return la < lb ? -1 : la > lb;
}

/* Whether metadata value m stands in relation op to operand x (same types only). */
static int rel(const mval *m, int op, const fval *x) {
  int c;
  if (m->type != x->type) return 0;
  switch (m->type) {
    case V_NULL:
      c = 0;
      break;
    case V_BOOL:
      c = m->b - x->b;
      break;
    case V_NUM:
      c = m->num < x->num ? -1 : m->num > x->num;
      break;
    case V_STR:
      c = bytes_cmp(m->s, m->len, x->s, x->len);
      break;
    default:
      return 0;
  }
  switch (op) {
    case OP_EQ:
    case OP_IN:
      return c == 0;
    case OP_GT:
      return c > 0 && m->type >= V_NUM;
    case OP_GTE:
      return c >= 0 && m->type >= V_NUM;
    case OP_LT:
      return c < 0 && m->type >= V_NUM;
    case OP_LTE:
      return c <= 0 && m->type >= V_NUM;
    default:
      return 0;
  }
}

/* Whether scalar token i satisfies the positive form of node n (EQ, IN, ranges). */
static int scalar_test(ev *e, const fnode *n, int i) {
  mval m;
  int rc = value_of(e, i, &m);
  if (rc < 0) return rc;
  if (m.type < 0) return 0;
  /* No operand ($in/$nin of an empty list): vals may be NULL, never index it. */
  if (n->nv == 0) return 0;
  const fval *vals = e->s->f->vals + n->v0;
  int op = n->op == OP_NE ? OP_EQ : n->op == OP_NIN ? OP_IN : n->op;
  for (uint32_t k = 0; k < n->nv; k++)
    if (rel(&m, op, &vals[k])) return 1;
  return 0;
}

/* Token of the field at node n's path, or -1 when missing. */
static int resolve(ev *e, const fnode *n, int *at) {
  const seg *sg = e->s->f->segs + n->p0;
  int cur = 0;
  for (uint32_t p = 0; p < n->np; p++) {
    if (e->t[cur].type != JSMN_OBJECT) {
      *at = -1;
      return 0;
    }
    int nk = e->t[cur].size, j = cur + 1, found = -1;
    for (int k = 0; k < nk && j < e->nt; k++) {
      if (j + 1 >= e->nt || e->t[j].type != JSMN_STRING) return corrupt(e, "bad key");
      const char *ks;
      size_t kl;
      int rc = str_of(e, j, &ks, &kl);
      if (rc < 0) return rc;
      if (kl == sg[p].len && !memcmp(ks, sg[p].s, kl)) {
        found = j + 1;
        break;
      }
      j = skip(e, j + 1);
    }
    if (found < 0) {
      *at = -1;
      return 0;
    }
    cur = found;
  }
  *at = cur;
  return 0;
}

static int eval_cmp(ev *e, const fnode *n) {
  int at;
  int rc = resolve(e, n, &at);
  if (rc < 0) return rc;
  if (n->op == OP_EXISTS) return (at >= 0) == n->exists;
  int neg = n->op == OP_NE || n->op == OP_NIN;
  if (at < 0) return neg;
  int hit = 0;
  if (e->t[at].type == JSMN_ARRAY) {
    /* An array matches when any element does (and $ne/$nin when none equals). */
    int cnt = e->t[at].size, j = at + 1;
    for (int k = 0; k < cnt && j < e->nt && !hit; k++) {
      rc = scalar_test(e, n, j);
      if (rc < 0) return rc;
      hit = rc;
      j = skip(e, j);
    }
  } else {
    rc = scalar_test(e, n, at);
    if (rc < 0) return rc;
    hit = rc;
  }
  return neg ? !hit : hit;
}

static int eval(ev *e, uint32_t i) {
  const fnode *n = &e->s->f->nodes[i];
  switch (n->kind) {
    case F_TRUE:
      return 1;
    case F_CMP:
      return eval_cmp(e, n);
    case F_NOT: {
      int r = eval(e, i + 1);
      return r < 0 ? r : !r;
    }
    default: { /* AND, OR */
      uint32_t c = i + 1;
      for (uint32_t k = 0; k < n->nkids; k++) {
        int r = eval(e, c);
        if (r < 0) return r;
        if (n->kind == F_AND && !r) return 0;
        if (n->kind == F_OR && r) return 1;
        c += e->s->f->nodes[c].size;
      }
      return n->kind == F_AND;
    }
  }
}

/* Tokenizes text[0..len) into the state's tokens (grown as needed). */
static int tokenize(ev *e, const char *text, size_t len) {
  sx__fstate *s = e->s;
  if (len > INT32_MAX) return corrupt(e, "too long");
  for (;;) {
    jsmn_parser p;
    jsmn_init(&p);
    int r = jsmn_parse(&p, text, len, (jsmntok_t *)s->tok, (unsigned)s->ntok);
    if (r == JSMN_ERROR_NOMEM || (r >= 0 && s->ntok == 0)) {
      /* Every token takes at least one byte, so len + 1 tokens always suffice. */
      size_t nc = s->ntok ? s->ntok * 4 : 64;
      if (nc > len + 1) nc = len + 1;
      if (nc <= s->ntok) return corrupt(e, "tokens");
      void *nt = realloc(s->tok, nc * sizeof(jsmntok_t));
      if (!nt) {
        sx__err_set(e->err, SX_NOMEM, "out of memory for filter");
        return -SX_NOMEM;
      }
      s->tok = nt;
      s->ntok = nc;
      continue;
    }
    if (r < 1) return corrupt(e, r == JSMN_ERROR_PART ? "truncated" : "syntax");
    e->t = s->tok;
    e->js = text;
    e->nt = r;
    if (e->t[0].type != JSMN_OBJECT || skip(e, 0) != r) return corrupt(e, "not one object");
    return 0;
  }
}

int sx__filter_text(sx__fstate *s, const char *text, size_t len, uint64_t slot, sx_error *err) {
  ev e = {s, NULL, NULL, 0, slot, err};
  if (sx__filter_always(s->f)) return 1;
  /* An item without metadata is an empty object: every field is missing. */
  if (!text) {
    text = "{}";
    len = 2;
  }
  int rc = tokenize(&e, text, len);
  if (rc < 0) return rc;
  return eval(&e, 0);
}

int sx__filter_slot(sx__fstate *s, uint64_t slot, sx_error *err) {
  if (sx__filter_always(s->f)) return 1;
  const uint8_t *rec;
  uint64_t off = slot * SX__SLOT_SIZE;
  int rc = sx__pa_leaf(&s->sc, off / s->sc.ps, &rec, err);
  if (rc) return -rc;
  rec += off % s->sc.ps;
  uint32_t mlen = sx__rd32(rec + 12);
  uint64_t moff = sx__rd64(rec + 16);
  if (mlen == SX__NO_META) return sx__filter_text(s, NULL, 0, slot, err);
  if (moff > s->heaplen || mlen > s->heaplen - moff)
    return -sx__err_set(err, SX_CORRUPT, "slot %llu of collection '%s' has bad metadata bounds",
                        (unsigned long long)slot, s->c->name);
  if (mlen > s->tcap) {
    char *nb = realloc(s->text, mlen);
    if (!nb) return -sx__err_set(err, SX_NOMEM, "out of memory for filter");
    s->text = nb;
    s->tcap = mlen;
  }
  const void *p;
  rc = sx__pa_ptr(&s->hc, moff, mlen, s->text, &p, err);
  if (rc) return -rc;
  return sx__filter_text(s, p, mlen, slot, err);
}
