/*
 * json.c: the check of metadata text (sx__json_check).
 *
 * Metadata is stored as the caller's text and handed back unchanged, so the core
 * never needs a JSON tree: it only decides whether the text is one JSON object per
 * RFC 8259 that every binding can read back. A general parser (jansson) refused
 * valid JSON that bindings write (an escaped NUL in a key, integers beyond int64,
 * numbers beyond double) and allowed nesting that recursive parsers in bindings
 * cannot read (Python: RecursionError). This scanner:
 *   - accepts exactly the RFC 8259 grammar, in UTF-8 (no overlong forms, no
 *     surrogate code points, no lone surrogate escapes), numbers of any length;
 *   - refuses a key given twice in one object (after unescaping), as before;
 *   - bounds nesting by SX_METADATA_DEPTH_MAX and never recurses: its stack is a
 *     fixed array, its only allocations the keys of the open objects.
 * Messages name the byte offset of the problem.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "collection/collection.h"

typedef struct key {
  size_t off, len; /* the unescaped key, in keys.buf */
} key;

typedef struct jscan {
  const unsigned char *s;
  size_t n, i;
  size_t item;
  sx_error *err;
  /* keys of the open objects, innermost last; buf holds their bytes */
  key *k;
  size_t nk, capk;
  char *buf;
  size_t nbuf, capbuf;
} jscan;

static int bad(jscan *j, const char *what) {
  return sx__err_set(j->err, SX_INVALID_ARGUMENT,
                     "metadata of item %zu is not valid JSON: %s at byte %zu", j->item, what, j->i);
}

static void skip_ws(jscan *j) {
  while (j->i < j->n &&
         (j->s[j->i] == ' ' || j->s[j->i] == '\t' || j->s[j->i] == '\n' || j->s[j->i] == '\r'))
    j->i++;
}

static int put(jscan *j, const char *b, size_t len) {
  if (j->nbuf + len > j->capbuf) {
    size_t cap = (j->nbuf + len) * 2 + 64;
    char *nb = realloc(j->buf, cap);
    if (!nb) return sx__err_set(j->err, SX_NOMEM, "out of memory checking metadata");
    j->buf = nb;
    j->capbuf = cap;
  }
  memcpy(j->buf + j->nbuf, b, len);
  j->nbuf += len;
  return SX_OK;
}

static int hex4(jscan *j, uint32_t *out) {
  uint32_t v = 0;
  if (j->n - j->i < 4) return bad(j, "short \\u escape");
  for (int k = 0; k < 4; k++) {
    unsigned char c = j->s[j->i + (size_t)k];
    v <<= 4;
    if (c >= '0' && c <= '9')
      v |= c - '0';
    else if (c >= 'a' && c <= 'f')
      v |= c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      v |= c - 'A' + 10;
    else
      return bad(j, "bad \\u escape");
  }
  j->i += 4;
  *out = v;
  return SX_OK;
}

/* One UTF-8 sequence starting at j->i (a byte >= 0x80); copied when keep. */
static int utf8_seq(jscan *j, int keep) {
  const unsigned char *s = j->s + j->i;
  size_t left = j->n - j->i, len;
  uint32_t cp;
  if (s[0] >= 0xc2 && s[0] <= 0xdf)
    len = 2, cp = s[0] & 0x1fu;
  else if (s[0] >= 0xe0 && s[0] <= 0xef)
    len = 3, cp = s[0] & 0x0fu;
  else if (s[0] >= 0xf0 && s[0] <= 0xf4)
    len = 4, cp = s[0] & 0x07u;
  else
    return bad(j, "invalid UTF-8");
  if (left < len) return bad(j, "invalid UTF-8");
  for (size_t k = 1; k < len; k++) {
    if ((s[k] & 0xc0) != 0x80) return bad(j, "invalid UTF-8");
    cp = (cp << 6) | (s[k] & 0x3fu);
  }
  if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
      (cp >= 0xd800 && cp <= 0xdfff))
    return bad(j, "invalid UTF-8");
  int rc = keep ? put(j, (const char *)s, len) : SX_OK;
  j->i += len;
  return rc;
}

/* A string (j->i at its opening quote); its unescaped bytes appended to buf when keep
 * (a key: a NUL is kept as a byte like any other, keys are compared with lengths). */
static int string(jscan *j, int keep) {
  j->i++;
  for (;;) {
    if (j->i >= j->n) return bad(j, "unterminated string");
    unsigned char c = j->s[j->i];
    if (c == '"') {
      j->i++;
      return SX_OK;
    }
    if (c < 0x20) return bad(j, "control character in string");
    int rc = SX_OK;
    if (c >= 0x80) {
      rc = utf8_seq(j, keep);
    } else if (c != '\\') {
      rc = keep ? put(j, (const char *)&c, 1) : SX_OK;
      j->i++;
    } else {
      j->i++;
      if (j->i >= j->n) return bad(j, "unterminated string");
      char e = (char)j->s[j->i++], out = 0;
      switch (e) {
        case '"':
          out = '"';
          break;
        case '\\':
          out = '\\';
          break;
        case '/':
          out = '/';
          break;
        case 'b':
          out = '\b';
          break;
        case 'f':
          out = '\f';
          break;
        case 'n':
          out = '\n';
          break;
        case 'r':
          out = '\r';
          break;
        case 't':
          out = '\t';
          break;
        case 'u': {
          uint32_t cp;
          if ((rc = hex4(j, &cp))) return rc;
          if (cp >= 0xdc00 && cp <= 0xdfff) return bad(j, "lone low surrogate escape");
          if (cp >= 0xd800 && cp <= 0xdbff) {
            uint32_t lo;
            if (j->n - j->i < 2 || j->s[j->i] != '\\' || j->s[j->i + 1] != 'u')
              return bad(j, "lone high surrogate escape");
            j->i += 2;
            if ((rc = hex4(j, &lo))) return rc;
            if (lo < 0xdc00 || lo > 0xdfff) return bad(j, "lone high surrogate escape");
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          }
          if (keep) {
            char u[4];
            size_t ul;
            if (cp < 0x80)
              u[0] = (char)cp, ul = 1;
            else if (cp < 0x800)
              u[0] = (char)(0xc0 | cp >> 6), u[1] = (char)(0x80 | (cp & 0x3f)), ul = 2;
            else if (cp < 0x10000)
              u[0] = (char)(0xe0 | cp >> 12), u[1] = (char)(0x80 | ((cp >> 6) & 0x3f)),
              u[2] = (char)(0x80 | (cp & 0x3f)), ul = 3;
            else
              u[0] = (char)(0xf0 | cp >> 18), u[1] = (char)(0x80 | ((cp >> 12) & 0x3f)),
              u[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), u[3] = (char)(0x80 | (cp & 0x3f)), ul = 4;
            rc = put(j, u, ul);
          }
          break;
        }
        default:
          j->i--;
          return bad(j, "bad escape");
      }
      if (out && keep) rc = put(j, &out, 1);
    }
    if (rc) return rc;
  }
}

static int digits(jscan *j) {
  size_t i0 = j->i;
  while (j->i < j->n && j->s[j->i] >= '0' && j->s[j->i] <= '9') j->i++;
  return j->i > i0;
}

static int number(jscan *j) {
  if (j->s[j->i] == '-') j->i++;
  if (j->i < j->n && j->s[j->i] == '0')
    j->i++;
  else if (!digits(j))
    return bad(j, "bad number");
  if (j->i < j->n && j->s[j->i] == '.') {
    j->i++;
    if (!digits(j)) return bad(j, "bad number");
  }
  if (j->i < j->n && (j->s[j->i] == 'e' || j->s[j->i] == 'E')) {
    j->i++;
    if (j->i < j->n && (j->s[j->i] == '+' || j->s[j->i] == '-')) j->i++;
    if (!digits(j)) return bad(j, "bad number");
  }
  return SX_OK;
}

static int word(jscan *j, const char *w) {
  size_t len = strlen(w);
  if (j->n - j->i < len || memcmp(j->s + j->i, w, len) != 0) return bad(j, "unexpected character");
  j->i += len;
  return SX_OK;
}

static int keycmp(const void *a, const void *b, void *ctx) {
  const key *x = a, *y = b;
  const char *buf = ctx;
  size_t m = x->len < y->len ? x->len : y->len;
  int c = m ? memcmp(buf + x->off, buf + y->off, m) : 0; /* buf is NULL while every key is empty */
  return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* Closes the innermost object, whose keys start at k[from]: any key twice? */
static int close_object(jscan *j, size_t from) {
  size_t nk = j->nk - from;
  if (nk > 1) {
    qsort_r(j->k + from, nk, sizeof *j->k, keycmp, j->buf);
    for (size_t i = from; i + 1 < j->nk; i++)
      if (keycmp(&j->k[i], &j->k[i + 1], j->buf) == 0)
        return sx__err_set(
            j->err, SX_INVALID_ARGUMENT,
            "metadata of item %zu is not valid JSON: the key '%.*s' appears twice in "
            "one object (before byte %zu)",
            j->item, (int)(j->k[i].len > 40 ? 40 : j->k[i].len),
            j->k[i].len ? j->buf + j->k[i].off : "", j->i);
  }
  /* Every key of this object was appended after all of its parent's. */
  j->nbuf = nk ? j->k[from].off : j->nbuf;
  for (size_t i = from; i < j->nk; i++)
    if (j->k[i].off < j->nbuf) j->nbuf = j->k[i].off;
  j->nk = from;
  return SX_OK;
}

static int add_key(jscan *j) {
  if (j->nk == j->capk) {
    size_t cap = j->capk * 2 + 16;
    key *nk = realloc(j->k, cap * sizeof *nk);
    if (!nk) return sx__err_set(j->err, SX_NOMEM, "out of memory checking metadata");
    j->k = nk;
    j->capk = cap;
  }
  size_t off = j->nbuf;
  int rc = string(j, 1);
  if (rc) return rc;
  j->k[j->nk++] = (key){off, j->nbuf - off};
  return SX_OK;
}

/* The text: one object, iteratively. stack[d] is '{' or '[' for each open level;
 * from[d] where that object's keys start. */
static int scan(jscan *j) {
  char stack[SX_METADATA_DEPTH_MAX];
  size_t from[SX_METADATA_DEPTH_MAX];
  int d = 0, rc;
  skip_ws(j);
  if (j->i >= j->n || j->s[j->i] != '{')
    return sx__err_set(j->err, SX_INVALID_ARGUMENT, "metadata of item %zu is not a JSON object",
                       j->item);
  /* Expecting a value (after ':' or ',' in an array, or at an array's start). */
  for (;;) {
    /* Here a value starts. */
    skip_ws(j);
    if (j->i >= j->n) return bad(j, "unexpected end");
    unsigned char c = j->s[j->i];
    if (c == '{' || c == '[') {
      if (d == SX_METADATA_DEPTH_MAX)
        return sx__err_set(j->err, SX_INVALID_ARGUMENT,
                           "metadata of item %zu is nested deeper than %d levels (at byte %zu)",
                           j->item, SX_METADATA_DEPTH_MAX, j->i);
      stack[d] = (char)c;
      from[d++] = j->nk;
      j->i++;
      skip_ws(j);
      if (j->i < j->n && j->s[j->i] == (c == '{' ? '}' : ']')) {
        j->i++;
        d--;
        if (c == '{' && (rc = close_object(j, from[d]))) return rc;
        goto after_value;
      }
      if (c == '[') continue;
      goto object_key;
    }
    if (c == '"')
      rc = string(j, 0);
    else if (c == '-' || (c >= '0' && c <= '9'))
      rc = number(j);
    else if (c == 't')
      rc = word(j, "true");
    else if (c == 'f')
      rc = word(j, "false");
    else if (c == 'n')
      rc = word(j, "null");
    else
      rc = bad(j, "unexpected character");
    if (rc) return rc;
  after_value:
    /* A value ended: close what ends here, or go on after a ','. */
    for (;;) {
      if (d == 0) {
        skip_ws(j);
        return j->i == j->n ? SX_OK : bad(j, "text after the object");
      }
      skip_ws(j);
      if (j->i >= j->n) return bad(j, "unexpected end");
      c = j->s[j->i];
      if (c == ',') {
        j->i++;
        if (stack[d - 1] == '[') break;
        goto object_key;
      }
      if (c != (stack[d - 1] == '{' ? '}' : ']'))
        return bad(j, "expected ',' or a closing bracket");
      j->i++;
      d--;
      if (stack[d] == '{' && (rc = close_object(j, from[d]))) return rc;
    }
    continue;
  object_key:
    skip_ws(j);
    if (j->i >= j->n || j->s[j->i] != '"') return bad(j, "expected a key");
    if ((rc = add_key(j))) return rc;
    skip_ws(j);
    if (j->i >= j->n || j->s[j->i] != ':') return bad(j, "expected ':'");
    j->i++;
  }
}

int sx__json_check(const char *text, size_t len, size_t item, sx_error *err) {
  jscan j = {.s = (const unsigned char *)text, .n = len, .item = item, .err = err};
  int rc = scan(&j);
  free(j.k);
  free(j.buf);
  return rc;
}
