// API-sequence fuzzer: input bytes decode to calls on two handles on one database
// file (create, drop, upsert with or without metadata, delete, get, count, describe,
// search with or without a filter, begin, commit, abort, read sessions, checkpoint,
// compact, check, close and reopen), each checked against a small in-memory model
// after every step. Collections c0 and c1 are flat, c2 and c3 HNSW (m 2 to 9), c4 and
// c5 HNSW with int8 codes; all l2 over small integer vectors, so distances are exact
// in float32 and ties break by id. Flat searches and exact searches of HNSW
// collections must equal the model's top k; an HNSW search must return live ids
// only, each with its exact distance (int8: after the rerank), sorted, without
// duplicates, and the exact top k once its candidate list (ef) covers the
// collection. Metadata (small JSON objects made from the input, sometimes invalid:
// then INVALID_ARGUMENT and nothing changes) must come back as stored. Filters (made
// from the input over the fields the metadata uses, sometimes invalid: then
// INVALID_ARGUMENT) are evaluated by the model from the language's documentation
// (sextant.h, "Filters") over the jansson tree of each item's metadata: a filtered
// flat search must equal the model's filtered top k, an HNSW one hold matching hits
// only (and the filtered top k when exact). The write session (one at a time, over
// both handles) sees its own changes; a read session keeps the snapshot it began with
// whatever the other handle commits; a new read session on either handle sees every
// commit. A difference aborts (the finding), as does any crash or sanitizer report.
//
// Input: pairs of an operation byte (bit 7: which handle; the rest modulo 30: 0-14
// the first operations, 15-29 those added with metadata and filters) and a
// collection byte (below 0xc0: c0-c3 by its value modulo 4, else c4 or c5 by its
// low bit), each followed by the bytes the operation reads. SX_FUZZ_SEEDS=<dir>
// writes the seed corpus there and exits; SX_FUZZ_TRACE=1 prints each operation (to
// read a finding).
#include <jansson.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

extern "C" {
#include "fuzz_common.h"
}

namespace {

const size_t kDim = 3;
// "c0", "c1": flat; "c2", "c3": HNSW; "c4", "c5": HNSW, int8
const int kIds = 24;
const int kBulkMin = 41, kBulkMax = 48;  // a bulk upsert's ids "b0".."b47": 41 or more
const int kBulksPerRun = 1;              // and one a run (they cost the most)

struct Item {
  std::vector<float> v;
  bool has_meta = false;
  std::string meta;              // the text as upserted
  std::shared_ptr<json_t> tree;  // meta as the model reads it (or {} when none)
  void SetMeta(bool has, const std::string &text);
};
struct Coll {
  std::map<std::string, Item> items;  // id -> item
  uint32_t m = 0, efc = 0;            // HNSW parameters as created
};
typedef std::map<int, Coll> Model;  // collection -> contents

struct In {
  const uint8_t *d;
  size_t n, i = 0;
  bool more() const {
    return i < n;
  }
  uint8_t byte() {
    return i < n ? d[i++] : 0;
  }
};

bool Trace() {
  static const bool trace = getenv("SX_FUZZ_TRACE") != nullptr;
  return trace;
}

[[noreturn]] void Fail(const char *what, const std::string &detail) {
  fprintf(stderr, "MODEL MISMATCH: %s: %s\n", what, detail.c_str());
  abort();
}

std::string Id(uint8_t b) {
  return std::string("id") + std::to_string(b % kIds);
}
std::string Name(int c) {
  return "c" + std::to_string(c);
}

// An item's id and vector from the input (a byte 0xff is a NaN component: *bad).
void ItemFrom(In &in, std::vector<std::string> *ids, std::vector<float> *v, bool *bad) {
  ids->push_back(Id(in.byte()));
  for (size_t d = 0; d < kDim; d++) {
    uint8_t b = in.byte();
    if (b == 0xff) *bad = true;
    v->push_back(b == 0xff ? NAN : (float)((int)(b % 9) - 4));
  }
}
bool Hnsw(int c) {
  return c >= 2;
}
bool Int8(int c) {
  return c >= 4;
}
// The collection a byte names: the first four as before, the int8 ones from 0xc0 up.
int CollOf(uint8_t b) {
  return b >= 0xc0 ? 4 + (b & 1) : b % 4;
}

float Dist(const std::vector<float> &a, const float *b) {
  float s = 0;
  for (size_t i = 0; i < kDim; i++) s += (a[i] - b[i]) * (a[i] - b[i]);
  return s;
}

// ---- JSON: metadata texts and filters ----------------------------------------------

typedef std::unique_ptr<json_t, void (*)(json_t *)> Json;
Json Parse(const char *text, size_t flags) {
  json_error_t je;
  return Json(json_loads(text, flags, &je), json_decref);
}
// How the model reads metadata: numbers as doubles (as the filter compares them),
// "\u0000" allowed, a key twice refused.
const size_t kMetaFlags = JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL;

int Depth(const json_t *j) {
  int d = 0;
  if (json_is_object(j)) {
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)j, k, v) d = std::max(d, Depth(v));
    return d + 1;
  }
  if (json_is_array(j)) {
    size_t i;
    json_t *v;
    json_array_foreach(j, i, v) d = std::max(d, Depth(v));
    return d + 1;
  }
  return 0;
}

// Whether metadata text is what sx_write_upsert accepts: one JSON object, no key twice,
// nested at most SX_METADATA_DEPTH_MAX. (jansson refuses some valid JSON, numbers
// beyond double for one; the generator below makes none.)
bool MetaValid(const std::string &text) {
  if (text.size() != strlen(text.c_str())) return false;
  Json j = Parse(text.c_str(), kMetaFlags);
  return j && json_is_object(j.get()) && Depth(j.get()) <= SX_METADATA_DEPTH_MAX;
}

// Scalars as metadata text (two spellings each) and as filter operands.
struct Scalar {
  const char *text, *alt;
};
const Scalar kScalars[] = {
    {"null", "null"},
    {"true", "true"},
    {"false", "false"},
    {"0", "0.0"},
    {"1", "1e0"},
    {"-1", "-1.0"},
    {"2", "2.0"},
    {"1.5", "15e-1"},
    {"-0", "-0.0"},
    {"3", "0.3e1"},
    {"\"x\"", "\"\\u0078\""},
    {"\"y\"", "\"y\""},
    {"\"\"", "\"\""},
    {"\"xy\"", "\"x\\u0079\""},
    {"\"\xc3\xa9\"", "\"\\u00e9\""},
    {"\"a\\\"b\"", "\"a\\u0022b\""},
    {"\"\xf0\x9f\x98\x80\"", "\"\\ud83d\\ude00\""},
    {"\"x\\u0000y\"", "\"x\\u0000y\""},
    {"-0.35", "-3.5e-1"},
    {"\"\\n\"", "\"\\u000a\""},
    {"10", "1e1"},
    {"\"X\"", "\"\\/X\""},
    {"1e20", "100000000000000000000"},
    {"\"x/\"", "\"x\\/\""},
};
const int kNScalars = sizeof kScalars / sizeof *kScalars;

// The filter operand of scalar i (its first spelling, parsed by jansson).
json_t *ScalarJson(int i) {
  json_error_t je;
  return json_loads(kScalars[i].text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
}

// Metadata keys: top level (some with an escaped spelling, one holding a dot, which
// no filter path can name) and inside nested objects.
const char *const kKeys[] = {"a", "b", "c", "d", "n", "p", "p.q", "\xc3\xa9"};
const char *const kKeysAlt[] = {"\\u0061", "b", "c", "d", "n", "p", "p.q", "\\u00e9"};
const int kNKeys = 8;
const char *const kSubKeys[] = {"x", "y", "z", "q"};

void MetaValue(In &in, std::string &o, int depth, bool sp) {
  uint8_t b = in.byte();
  if (b < 200 || depth >= 3) {
    const Scalar &x = kScalars[b % kNScalars];
    o += (b / kNScalars) & 1 ? x.alt : x.text;
  } else if (b < 228) {  // an object of up to three of x, y, z, q
    o += "{";
    int n = b % 4;
    for (int i = 0; i < n; i++) {
      if (i) o += sp ? ", " : ",";
      o += std::string("\"") + kSubKeys[(b / 4 + i) % 4] + "\":";
      MetaValue(in, o, depth + 1, sp);
    }
    o += "}";
  } else {  // an array of up to three values
    o += "[";
    int n = b % 4;
    for (int i = 0; i < n; i++) {
      if (i) o += sp ? ", " : ",";
      MetaValue(in, o, depth + 1, sp);
    }
    o += "]";
  }
}

// Texts sx_write_upsert must refuse (the model asks jansson, so one it accepts is
// expected to be stored).
std::string BadMeta(uint8_t b) {
  switch (b % 26) {
    case 0:
      return "";
    case 1:
      return "{";
    case 2:
      return "[]";
    case 3:
      return "1";
    case 4:
      return "{\"a\":}";
    case 5:
      return "{\"a\":1,}";
    case 6:
      return "{a:1}";
    case 7:
      return "{\"a\":1,\"a\":2}";
    case 8:
      return "{\"a\":1,\"\\u0061\":2}";
    case 9:
      return "{\"a\":\"\\ud800\"}";
    case 10:
      return "{\"a\":tru}";
    case 11:
      return "{\"a\":01}";
    case 12:
      return "{\"a\":\"\x01\"}";
    case 13:
      return "{\"a\":\"\xff\"}";
    case 14:
      return "{\"a\":" + std::string(128, '[') + std::string(128, ']') + "}";
    case 15:
      return "{} x";
    case 16:
      return "{\"a\":1}{}";
    case 17:
      return "null";
    case 18:
      return "{\"a\":[1,]}";
    case 19:
      return "{\"a\":-}";
    case 20:
      return "{\"a\":1.}";
    case 21:
      return "{\"n\":{\"x\":1,\"x\":2}}";
    case 22:
      return "{\"a\":" + std::string(127, '[') + std::string(127, ']') + "}";  // fine
    case 23:
      return "{\"a\":\"\\x\"}";
    case 24:
      return " {\"a\" : 1}\n";  // fine
    default:
      return "{\"a\":\"\xed\xa0\x80\"}";  // a surrogate in UTF-8
  }
}

// Metadata for one item from the input: none, an object of up to four keys, or (one
// time in sixteen) a text from BadMeta.
void GenMeta(In &in, bool *has, std::string *text) {
  uint8_t b = in.byte();
  int mode = b & 15;
  *has = true;
  text->clear();
  if (mode == 15) {
    *text = BadMeta(in.byte());
    return;
  }
  if (mode >= 12) {
    *has = false;
    return;
  }
  bool sp = (b >> 4) & 1;
  int n = mode % 5;
  bool used[kNKeys] = {};
  *text = "{";
  for (int i = 0; i < n; i++) {
    uint8_t k = in.byte();
    int ki = k % kNKeys;
    while (used[ki]) ki = (ki + 1) % kNKeys;
    used[ki] = true;
    if (i) *text += sp ? ", " : ",";
    *text += std::string("\"") + ((k >> 3) & 1 ? kKeysAlt[ki] : kKeys[ki]) + (sp ? "\": " : "\":");
    if ((ki == 4 || ki == 5) && (k >> 4) & 1) {  // n or p: an object of x, y, z, q
      *text += "{";
      int m = (k >> 5) % 4;
      for (int j = 0; j < m; j++) {
        if (j) *text += ",";
        *text += std::string("\"") + kSubKeys[(k + j) % 4] + "\":";
        MetaValue(in, *text, 2, sp);
      }
      *text += "}";
    } else {
      MetaValue(in, *text, 1, sp);
    }
  }
  *text += "}";
}

// Filters: built as jansson trees from the input, sent as text.
const char *const kPaths[] = {"a",   "b", "c",    "d",        "n",   "n.x",   "n.y",
                              "p.q", "p", "n.z",  "\xc3\xa9", "a.x", "p.q.x", "n.q",
                              "z",   "",  "a..b", ".a",       "n."};
const int kNPaths = sizeof kPaths / sizeof *kPaths;
const int kNGoodPaths = 15;  // the rest have an empty part
const char *const kOps[] = {"$eq",  "$ne", "$gt",  "$gte",    "$lt",
                            "$lte", "$in", "$nin", "$exists", "$regex"};

json_t *GenFilter(In &in, int depth);

// An operand for op (sometimes of the wrong kind).
json_t *GenOperand(In &in, int op) {
  uint8_t b = in.byte();
  bool wrong = b >= 0xf0;
  if (op == 8) return wrong ? json_integer(1) : json_boolean(b & 1);
  if (op == 6 || op == 7) {
    if (wrong) return (b & 1) ? ScalarJson(b % kNScalars) : json_object();
    json_t *a = json_array();
    int n = b % 4;
    for (int i = 0; i < n; i++) json_array_append_new(a, ScalarJson(in.byte() % kNScalars));
    if (b & 0x80 && n) json_array_append_new(a, json_array());  // an element not scalar
    return a;
  }
  if (wrong) return (b & 1) ? json_array() : json_object();
  return ScalarJson(b % kNScalars);  // null and booleans are wrong for the ranges
}

// One key of a filter object into o.
void GenClause(In &in, json_t *o, int depth) {
  uint8_t b = in.byte();
  int kind = b % 8;
  if (depth >= 3 && kind >= 4 && kind < 7) kind = 0;
  if (kind < 4) {  // a field: a value, or an object of operators
    uint8_t pb = in.byte();
    const char *path = kPaths[pb < 0xf8 ? pb % kNGoodPaths : pb % kNPaths];
    json_t *v;
    if ((b >> 3) & 1) {
      v = ScalarJson(in.byte() % kNScalars);
    } else {
      v = json_object();
      int n = 1 + ((b >> 4) & 3 ? 0 : 1);
      for (int i = 0; i < n; i++) {
        uint8_t ob = in.byte();
        int op = ob % 10;
        if (op == 9 && ob < 0xf0) op = ob % 9;  // the unknown operator rarely
        json_object_set_new(v, kOps[op], GenOperand(in, op));
      }
    }
    json_object_set_new(o, path, v);
  } else if (kind < 6) {  // $and, $or: 1-3 filters (rarely none, or not a filter)
    json_t *a = json_array();
    int n = 1 + (b >> 3) % 3;
    if (b >= 0xf8) n = 0;
    for (int i = 0; i < n; i++) json_array_append_new(a, GenFilter(in, depth + 1));
    if ((b >> 5) == 6) json_array_append_new(a, json_integer(1));
    json_object_set_new(o, kind == 4 ? "$and" : "$or", a);
  } else if (kind == 6) {
    json_object_set_new(o, "$not", (b >> 3) == 31 ? json_true() : GenFilter(in, depth + 1));
  } else {  // rarer forms: no operator, a key that is not one, an unknown $ key
    switch ((b >> 3) % 4) {
      case 0:
        json_object_set_new(o, "n", json_object());
        break;
      case 1: {
        json_t *v = json_object();
        json_object_set_new(v, "x", json_integer(1));
        json_object_set_new(o, "n", v);
        break;
      }
      case 2:
        json_object_set_new(o, "$nor", json_array());
        break;
      default:
        json_object_set_new(o, "a", json_array());
        break;
    }
  }
}

json_t *GenFilter(In &in, int depth) {
  json_t *o = json_object();
  uint8_t b = in.byte();
  static const int kKeysN[8] = {1, 1, 1, 2, 0, 1, 2, 3};
  int n = kKeysN[b % 8];
  for (int i = 0; i < n; i++) GenClause(in, o, depth);
  return o;
}

// A filter text: a generated tree, sometimes 64 or 65 $not deep, cut short, or not an
// object.
std::string GenFilterText(In &in) {
  uint8_t b = in.byte();
  json_t *f = GenFilter(in, 0);
  if (b >= 0xfc) {  // 64 $not deep is allowed, 65 is not
    for (int i = 0; i < 64 + (b & 1); i++) {
      json_t *o = json_object();
      json_object_set_new(o, "$not", f);
      f = o;
    }
  } else if (b >= 0xf8 && b < 0xfa) {
    json_t *a = json_array();
    json_array_append_new(a, f);
    f = a;
  }
  char *t = json_dumps(f, JSON_COMPACT | JSON_ENCODE_ANY);
  std::string text = t ? t : "";
  free(t);
  json_decref(f);
  if (b >= 0xfa && b < 0xfc) text.resize(text.size() * (b & 1 ? 1 : 2) / 3);  // cut
  return text;
}

// Whether a filter is valid (sextant.h, "Filters: Errors").
bool IsScalar(const json_t *v) {
  return json_is_null(v) || json_is_boolean(v) || json_is_number(v) || json_is_string(v);
}
bool PathValid(const char *p) {
  if (!*p) return false;
  for (const char *s = p; *s; s++)
    if (*s == '.' && (s == p || !s[1] || s[1] == '.')) return false;
  return true;
}
bool FilterValid(const json_t *o, int depth);
bool OpValid(const char *op, const json_t *v) {
  if (!strcmp(op, "$eq") || !strcmp(op, "$ne")) return IsScalar(v);
  if (!strcmp(op, "$gt") || !strcmp(op, "$gte") || !strcmp(op, "$lt") || !strcmp(op, "$lte"))
    return json_is_number(v) || json_is_string(v);
  if (!strcmp(op, "$in") || !strcmp(op, "$nin")) {
    if (!json_is_array(v)) return false;
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) if (!IsScalar(e)) return false;
    return true;
  }
  if (!strcmp(op, "$exists")) return json_is_boolean(v);
  return false;
}
bool FilterValid(const json_t *o, int depth) {
  if (!json_is_object(o) || depth > 64) return false;
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)o, key, v) {
    if (!strcmp(key, "$and") || !strcmp(key, "$or")) {
      if (!json_is_array(v) || json_array_size(v) == 0) return false;
      size_t i;
      json_t *e;
      json_array_foreach(v, i, e) if (!FilterValid(e, depth + 1)) return false;
    } else if (!strcmp(key, "$not")) {
      if (!FilterValid(v, depth + 1)) return false;
    } else if (key[0] == '$' || !PathValid(key)) {
      return false;
    } else if (json_is_object(v)) {
      if (json_object_size(v) == 0) return false;
      const char *op;
      json_t *x;
      json_object_foreach(v, op, x) if (!OpValid(op, x)) return false;
    } else if (!IsScalar(v)) {
      return false;
    }
  }
  return true;
}

// Evaluation (sextant.h, "Filters: Semantics") over the model's metadata tree.
const json_t *Resolve(const json_t *m, const char *path) {
  std::string p = path;
  size_t at = 0;
  for (;;) {
    size_t dot = p.find('.', at);
    std::string part = p.substr(at, dot == std::string::npos ? std::string::npos : dot - at);
    if (!json_is_object(m)) return nullptr;
    m = json_object_get(m, part.c_str());
    if (!m) return nullptr;
    if (dot == std::string::npos) return m;
    at = dot + 1;
  }
}
// -1, 0, 1 for two scalars of one type (numbers by value, strings bytewise); 2 when
// they are not comparable.
int Cmp(const json_t *a, const json_t *b) {
  if (json_is_null(a) && json_is_null(b)) return 0;
  if (json_is_boolean(a) && json_is_boolean(b)) return json_is_true(a) - json_is_true(b);
  if (json_is_number(a) && json_is_number(b)) {
    double x = json_number_value(a), y = json_number_value(b);
    return x < y ? -1 : x > y;
  }
  if (json_is_string(a) && json_is_string(b)) {
    size_t la = json_string_length(a), lb = json_string_length(b);
    int r = memcmp(json_string_value(a), json_string_value(b), std::min(la, lb));
    return r ? (r < 0 ? -1 : 1) : la < lb ? -1 : la > lb;
  }
  return 2;
}
// The positive test of op ($eq, $in or a range) on one value (a scalar, else false).
bool Positive(const char *op, const json_t *m, const json_t *x) {
  if (!IsScalar(m)) return false;
  if (!strcmp(op, "$in")) {
    size_t i;
    json_t *e;
    json_array_foreach(x, i, e) if (Cmp(m, e) == 0) return true;
    return false;
  }
  int c = Cmp(m, x);
  if (!strcmp(op, "$eq")) return c == 0;
  bool ordered = json_is_number(m) || json_is_string(m);
  if (c == 2 || !ordered) return false;
  if (!strcmp(op, "$gt")) return c > 0;
  if (!strcmp(op, "$gte")) return c >= 0;
  if (!strcmp(op, "$lt")) return c < 0;
  return c <= 0;  // $lte
}
bool CondMatch(const json_t *m, const char *path, const char *op, const json_t *x) {
  const json_t *f = Resolve(m, path);
  if (!strcmp(op, "$exists")) return (f != nullptr) == json_is_true(x);
  bool neg = !strcmp(op, "$ne") || !strcmp(op, "$nin");
  const char *pos = !strcmp(op, "$ne") ? "$eq" : !strcmp(op, "$nin") ? "$in" : op;
  if (!f) return neg;
  bool hit = false;
  if (json_is_array(f)) {
    size_t i;
    json_t *e;
    json_array_foreach(f, i, e) hit = hit || Positive(pos, e, x);
  } else {
    hit = Positive(pos, f, x);
  }
  return neg ? !hit : hit;
}
bool Matches(const json_t *o, const json_t *m) {
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)o, key, v) {
    bool ok;
    if (!strcmp(key, "$and") || !strcmp(key, "$or")) {
      bool any = false, all = true;
      size_t i;
      json_t *e;
      json_array_foreach(v, i, e) {
        bool r = Matches(e, m);
        any = any || r;
        all = all && r;
      }
      ok = key[1] == 'a' ? all : any;
    } else if (!strcmp(key, "$not")) {
      ok = !Matches(v, m);
    } else if (json_is_object(v)) {
      ok = true;
      const char *op;
      json_t *x;
      json_object_foreach(v, op, x) ok = ok && CondMatch(m, key, op, x);
    } else {
      ok = CondMatch(m, key, "$eq", v);
    }
    if (!ok) return false;
  }
  return true;
}

void Item::SetMeta(bool has, const std::string &text) {
  has_meta = has;
  meta = has ? text : "";
  json_error_t je;
  tree.reset(has ? json_loads(meta.c_str(), kMetaFlags, &je) : json_object(), json_decref);
  if (!tree) Fail("model", "metadata the model cannot read: " + meta);
}

// A filter as the model reads it: valid or not, and the items it matches.
struct Filter {
  std::string text;
  Json tree{nullptr, json_decref};
  bool valid = false;
  explicit Filter(const std::string &t) : text(t) {
    if (strlen(text.c_str()) != text.size()) return;  // the C API reads up to a NUL
    tree = Parse(text.c_str(), JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL |
                                   JSON_DECODE_INT_AS_REAL);
    valid = tree && FilterValid(tree.get(), 0);
  }
  bool Match(const Item &it) const {
    return Matches(tree.get(), it.tree.get());
  }
};

// ---- the checks ------------------------------------------------------------------

struct Handle {
  sx_db *db = nullptr;
  sx_read *r = nullptr;
  Model snap;  // what the read session sees
};

struct State {
  std::string path;
  Handle h[2];
  sx_write *w = nullptr;  // at most one write session, on handle wh
  int wh = -1;
  Model committed, pending;
  int bulks = 0, bulk_compacts = 0;
  sx_error err = SX_ERROR_INIT;

  void Open(int k) {
    h[k].db = fz_open(path.c_str(), 0);
    if (!h[k].db) Fail("open", "cannot open the database");
  }
  void EndWrite(bool commit) {
    if (!w) return;
    int rc = commit ? sx_write_commit(w, &err) : sx_write_abort(w);
    if (commit && rc) Fail("commit", err.message);
    if (commit) committed = pending;
    pending = committed;
    sx_write_free(w);
    w = nullptr;
    wh = -1;
  }
  void EndRead(int k) {
    if (!h[k].r) return;
    sx_read_end(h[k].r);
    sx_read_free(h[k].r);
    h[k].r = nullptr;
  }
  void Close(int k) {
    if (wh == k) EndWrite(false);
    EndRead(k);
    sx_db_free(h[k].db);
    h[k].db = nullptr;
  }
};

typedef std::vector<std::pair<float, std::string>> Hits;

// k and ef as a caller may pass them: mostly small, one time in four (both top bits
// of b) a k from 2^31 up, one in thirty-two an ef from 2^31 up or 0. A k of 2^62 once
// divided by zero in a filtered HNSW search; an ef of 2^31 failed with NOMEM.
size_t PickK(uint8_t b) {
  static const size_t big[] = {(size_t)1 << 31, (size_t)1 << 62, SIZE_MAX};
  return (b >> 6) == 3 ? big[b % 3] : 1 + b % 6;
}

uint32_t PickEf(size_t k, uint8_t e) {
  static const uint32_t big[] = {0, (uint32_t)1 << 31, UINT32_MAX};
  if (e >= 0xf8) return big[e % 3];
  return k > 64 ? 0 : (uint32_t)(k + e % 32);
}

// Whether an HNSW search is exhaustive: its candidate list (at least k) covers the
// collection.
bool Covers(const Coll &mc, size_t k, uint32_t ef) {
  return ef >= mc.items.size() || k >= mc.items.size();
}

// The model's top k for q: by distance, then id; only the items f matches, if given.
Hits TopK(const Coll &mc, const float *q, size_t k, const Filter *f = nullptr) {
  Hits want;
  for (auto &e : mc.items)
    if (!f || f->Match(e.second)) want.push_back({Dist(e.second.v, q), e.first});
  std::sort(want.begin(), want.end());
  if (want.size() > k) want.resize(k);
  return want;
}

void SameHits(const char *what, sx_results *res, size_t qq, const Hits &want) {
  if (sx_results_count(res, qq) != want.size())
    Fail(what, std::to_string(sx_results_count(res, qq)) + " hits vs model " +
                   std::to_string(want.size()));
  for (size_t i = 0; i < want.size(); i++) {
    if (want[i].second != sx_results_id(res, qq, i) ||
        want[i].first != sx_results_distance(res, qq, i))
      Fail(what, "hit " + std::to_string(i) + " is " + sx_results_id(res, qq, i) + " at " +
                     std::to_string(sx_results_distance(res, qq, i)) + " vs model " +
                     want[i].second + " at " + std::to_string(want[i].first));
  }
}

// What any search must give: live ids, each once, at its exact distance, sorted; with
// a filter, only items it matches; with include_meta, each hit's metadata as stored.
void ValidHits(const char *what, sx_results *res, size_t qq, const Coll &mc, const float *q,
               size_t k, const Filter *f = nullptr, bool include_meta = false) {
  size_t n = sx_results_count(res, qq);
  if (n > k || n > mc.items.size())
    Fail(what, std::to_string(n) + " hits for k " + std::to_string(k) + " and " +
                   std::to_string(mc.items.size()) + " items");
  std::set<std::string> seen;
  float last = -1;
  for (size_t i = 0; i < n; i++) {
    std::string id = sx_results_id(res, qq, i);
    auto it = mc.items.find(id);
    if (it == mc.items.end()) Fail(what, "hit " + id + " is not live");
    if (!seen.insert(id).second) Fail(what, "hit " + id + " twice");
    float d = sx_results_distance(res, qq, i);
    if (d != Dist(it->second.v, q))
      Fail(what, "hit " + id + " at " + std::to_string(d) + " vs exact " +
                     std::to_string(Dist(it->second.v, q)));
    if (d < last) Fail(what, "hits out of order at " + id);
    last = d;
    if (f && !f->Match(it->second))
      Fail(what, "hit " + id + " (" + it->second.meta + ") does not match " + f->text);
    const char *m = sx_results_metadata(res, qq, i);
    if (include_meta && (it->second.has_meta ? !m || it->second.meta != m : m != nullptr))
      Fail(what, "hit " + id + " metadata " + (m ? m : "none") + " vs model " + it->second.meta);
    if (!include_meta && m) Fail(what, "metadata not asked for");
  }
}

// A record's metadata against the model's item: the very text, JSON-equal besides.
void SameMeta(const char *what, const std::string &id, const char *got, const Item &it) {
  if (!it.has_meta) {
    if (got) Fail(what, id + " has metadata " + got + " vs none in the model");
    return;
  }
  if (!got) Fail(what, id + " has no metadata vs model " + it.meta);
  Json a = Parse(got, kMetaFlags), b = Parse(it.meta.c_str(), kMetaFlags);
  if (!a || !b || !json_equal(a.get(), b.get()) || it.meta != got)
    Fail(what, id + " metadata " + got + " vs model " + it.meta);
}

// sx_collection_describe against the model.
void CheckDescribe(State &s, sx_collection *c, const Coll &mc, int coll) {
  sx_collection_info info = SX_COLLECTION_INFO_INIT;
  if (sx_collection_describe(c, &info, &s.err)) Fail("describe", s.err.message);
  uint32_t m = Hnsw(coll) ? mc.m : 0, efc = Hnsw(coll) ? mc.efc : 0;
  if (Name(coll) != info.name || info.dim != kDim || info.metric != SX_METRIC_L2 ||
      info.index != (Hnsw(coll) ? SX_INDEX_HNSW : SX_INDEX_FLAT) ||
      info.quantization != (Int8(coll) ? SX_QUANTIZATION_INT8 : SX_QUANTIZATION_NONE) ||
      info.hnsw_m != m || info.hnsw_ef_construction != efc || info.count != mc.items.size())
    Fail("describe", std::string(info.name) + ": index " + std::to_string(info.index) +
                         " quantization " + std::to_string(info.quantization) + " m " +
                         std::to_string(info.hnsw_m) + " efc " +
                         std::to_string(info.hnsw_ef_construction) + " count " +
                         std::to_string(info.count) + " vs model m " + std::to_string(m) + " efc " +
                         std::to_string(efc) + " count " + std::to_string(mc.items.size()));
}

// Checks a view against the model's collection.
void CheckView(State &s, sx_collection *c, const Model &m, int coll, In &in) {
  auto it = m.find(coll);
  if (it == m.end()) Fail("view", "collection exists in the database but not in the model");
  const Coll &mc = it->second;
  uint64_t n = 0;
  if (sx_collection_count(c, &n, &s.err)) Fail("count", s.err.message);
  if (n != mc.items.size())
    Fail("count", std::to_string(n) + " vs model " + std::to_string(mc.items.size()));
  CheckDescribe(s, c, mc, coll);
  // get
  std::string id = Id(in.byte());
  sx_record *rec = nullptr;
  int rc = sx_collection_get(c, id.c_str(), &rec, &s.err);
  auto mi = mc.items.find(id);
  if (mi == mc.items.end()) {
    if (rc != SX_NOT_FOUND) Fail("get", id + " should be missing, rc " + std::to_string(rc));
  } else {
    if (rc) Fail("get", id + ": " + s.err.message);
    size_t dim = 0;
    const float *v = sx_record_vector(rec, &dim);
    if (dim != kDim || memcmp(v, mi->second.v.data(), kDim * 4) != 0)
      Fail("get", id + " vector differs");
    SameMeta("get", id, sx_record_metadata(rec), mi->second);
  }
  sx_record_free(rec);
  // search: exact top k by (distance, id); HNSW: valid hits, exact when asked or when
  // ef covers the collection
  float q[kDim];
  for (size_t i = 0; i < kDim; i++) q[i] = (float)((int)(in.byte() % 9) - 4);
  uint8_t b = in.byte();
  size_t k = PickK(b);
  sx_search_options so = SX_SEARCH_OPTIONS_INIT;
  so.threads = 1;
  so.exact = (b >> 3) & 1;
  so.ef = PickEf(k, in.byte());
  Hits want = TopK(mc, q, k);
  bool exact = !Hnsw(coll) || so.exact || Covers(mc, k, so.ef);
  sx_results *res = nullptr;
  rc = sx_collection_search(c, q, kDim, k, &so, &res, &s.err);
  if (rc) Fail("search", s.err.message);
  ValidHits("search", res, 0, mc, q, k);
  if (exact) SameHits("search", res, 0, want);
  sx_results_free(res);
  // a batch of two queries: the same hits for both (the first with 2 threads)
  float qs[2 * kDim];
  memcpy(qs, q, sizeof q);
  memcpy(qs + kDim, q, sizeof q);
  so.threads = (b >> 4) & 1 ? 2 : 1;
  res = nullptr;
  rc = sx_collection_search_batch(c, qs, 2, kDim, k, &so, &res, &s.err);
  if (rc) Fail("search_batch", s.err.message);
  for (size_t qq = 0; qq < 2; qq++) {
    ValidHits("search_batch", res, qq, mc, q, k);
    if (exact) SameHits("search_batch", res, qq, want);
  }
  sx_results_free(res);
}

// A filtered search of a view (coll's view c, or none when the collection is
// missing: the bytes are read all the same). Flat, or exact: the model's filtered top
// k; HNSW: matching valid hits. An invalid filter: INVALID_ARGUMENT, for
// sx_filter_check too.
void CheckFiltered(State &s, sx_collection *c, const Model &m, int coll, In &in) {
  Filter f(GenFilterText(in));
  float q[kDim];
  for (size_t i = 0; i < kDim; i++) q[i] = (float)((int)(in.byte() % 9) - 4);
  uint8_t b = in.byte();
  size_t k = PickK(b);
  sx_search_options so = SX_SEARCH_OPTIONS_INIT;
  so.threads = 1;
  so.exact = (b >> 3) & 1;
  so.include = (b >> 5) & 1 ? SX_INCLUDE_METADATA : 0;
  so.ef = PickEf(k, in.byte());
  so.filter = f.text.c_str();
  int rc = sx_filter_check(so.filter, &s.err);
  if (f.valid ? rc != SX_OK : rc != SX_INVALID_ARGUMENT)
    Fail("filter_check", f.text + ": rc " + std::to_string(rc) + " " + s.err.message);
  if (Trace()) fprintf(stderr, "  filter %s (%s)\n", f.text.c_str(), f.valid ? "valid" : "invalid");
  if (!c) return;
  const Coll &mc = m.at(coll);
  sx_results *res = nullptr;
  rc = sx_collection_search(c, q, kDim, k, &so, &res, &s.err);
  if (!f.valid) {
    if (rc != SX_INVALID_ARGUMENT)
      Fail("filtered search", "invalid filter " + f.text + ": rc " + std::to_string(rc));
    sx_results_free(res);
    return;
  }
  if (rc) Fail("filtered search", f.text + ": " + s.err.message);
  if (Trace())
    fprintf(stderr, "  %zu hits of %zu items (k %zu, ef %u, exact %u)\n", sx_results_count(res, 0),
            mc.items.size(), k, so.ef, so.exact);
  bool exact = !Hnsw(coll) || so.exact;
  Hits want;
  if (exact) want = TopK(mc, q, k, &f);
  ValidHits("filtered search", res, 0, mc, q, k, &f, so.include);
  if (exact) SameHits("filtered search", res, 0, want);
  // the same query twice in a batch: the hits of the single search
  Hits one;
  for (size_t i = 0; i < sx_results_count(res, 0); i++)
    one.push_back({sx_results_distance(res, 0, i), sx_results_id(res, 0, i)});
  sx_results_free(res);
  float qs[2 * kDim];
  memcpy(qs, q, sizeof q);
  memcpy(qs + kDim, q, sizeof q);
  so.threads = (b >> 4) & 1 ? 2 : 1;
  res = nullptr;
  rc = sx_collection_search_batch(c, qs, 2, kDim, k, &so, &res, &s.err);
  if (rc) Fail("filtered search_batch", f.text + ": " + s.err.message);
  for (size_t qq = 0; qq < 2; qq++) {
    ValidHits("filtered search_batch", res, qq, mc, q, k, &f, so.include);
    if (exact)
      SameHits("filtered search_batch", res, qq, want);
    else if (!Int8(coll))
      SameHits("filtered search_batch", res, qq, one);
  }
  sx_results_free(res);
}

void CheckList(State &s, sx_names *names, const Model &m) {
  (void)s;
  std::string got, want;
  for (size_t i = 0; i < sx_names_count(names); i++)
    got += std::string(sx_names_get(names, i)) + ",";
  for (auto &e : m) want += Name(e.first) + ",";
  if (got != want) Fail("list", got + " vs model " + want);
}

// Every id and an exact search of every collection, through a new read session.
void CheckAll(State &s, sx_db *db, const Model &m) {
  sx_read *r = nullptr;
  if (sx_read_begin(db, &r, &s.err)) Fail("begin_read", s.err.message);
  sx_names *names = nullptr;
  if (sx_read_list_collections(r, &names, &s.err)) Fail("list", s.err.message);
  CheckList(s, names, m);
  sx_names_free(names);
  for (auto &e : m) {
    sx_collection *c = nullptr;
    if (sx_read_collection(r, Name(e.first).c_str(), &c, &s.err)) Fail("final view", s.err.message);
    uint64_t n = 0;
    if (sx_collection_count(c, &n, &s.err) || n != e.second.items.size())
      Fail("final count", std::to_string(n));
    CheckDescribe(s, c, e.second, e.first);
    std::set<std::string> ids;
    for (int i = 0; i < kIds; i++) ids.insert(Id((uint8_t)i));
    for (auto &x : e.second.items) ids.insert(x.first);
    for (auto &id : ids) {
      sx_record *rec = nullptr;
      int rc = sx_collection_get(c, id.c_str(), &rec, &s.err);
      auto mi = e.second.items.find(id);
      if (mi == e.second.items.end() ? rc != SX_NOT_FOUND : rc != SX_OK)
        Fail("final get", id + ": rc " + std::to_string(rc));
      size_t dim = 0;
      if (!rc && memcmp(sx_record_vector(rec, &dim), mi->second.v.data(), kDim * 4) != 0)
        Fail("final get", id + " vector differs");
      if (!rc) SameMeta("final get", id, sx_record_metadata(rec), mi->second);
      sx_record_free(rec);
    }
    const float q[kDim] = {1, -1, 0};
    sx_search_options so = SX_SEARCH_OPTIONS_INIT;
    so.threads = 1;
    so.ef = (uint32_t)std::max<size_t>(kIds, e.second.items.size());
    sx_results *res = nullptr;
    if (sx_collection_search(c, q, kDim, 8, &so, &res, &s.err)) Fail("final search", s.err.message);
    SameHits("final search", res, 0, TopK(e.second, q, 8));
    sx_results_free(res);
    sx_collection_free(c);
  }
  sx_read_end(r);
  sx_read_free(r);
}

enum {
  kBegin,
  kCommit,
  kAbort,
  kCreate,
  kDrop,
  kUpsert,
  kDelete,
  kWriteReads,
  kBeginRead,
  kReadReads,
  kEndRead,
  kCheckpoint,
  kReopen,
  kCheck,
  kCompact,
  kUpsertMeta,   // 15-20
  kWriteFilter,  // 21-24: a filtered search through the write session
  kReadFilter,   // 25-28: through this handle's read session
  kBulk,         // 29: 41-64 items with metadata, so filtered HNSW searches can walk
  kNops
};
// Operation bytes (low 7 bits) are taken modulo 30: 0-14 as they always were, so
// older inputs replay the same calls (one kept in regress/api has a 104 = 14 mod 30).
const int kOpMod = 30;
int OpOf(uint8_t b) {
  int o = (b & 0x7f) % kOpMod;
  if (o < kUpsertMeta) return o;
  if (o <= 20) return kUpsertMeta;
  if (o <= 24) return kWriteFilter;
  if (o <= 28) return kReadFilter;
  return kBulk;
}
// The byte that names op (the first of its values), for the seeds.
uint8_t OpByte(int op) {
  static const int first[] = {15, 21, 25, 29};
  return (uint8_t)(op < kUpsertMeta ? op : first[op - kUpsertMeta]);
}

const char *const kOpNames[kNops] = {
    "begin",       "commit",      "abort",        "create",      "drop",       "upsert", "delete",
    "write_reads", "begin_read",  "read_reads",   "end_read",    "checkpoint", "reopen", "check",
    "compact",     "upsert_meta", "write_filter", "read_filter", "bulk"};

void Step(State &s, In &in) {
  const bool trace = Trace();
  uint8_t ob = in.byte();
  int hk = ob >> 7;
  Handle &hd = s.h[hk];
  int op = OpOf(ob);
  int coll = CollOf(in.byte());
  const std::string name = Name(coll);
  if (trace) fprintf(stderr, "h%d %s %s\n", hk, kOpNames[op], name.c_str());
  switch (op) {
    case kBegin: {  // begin a write session; busy while either handle has one
      sx_write *w = nullptr;
      int rc = sx_write_begin(hd.db, 0, &w, &s.err);
      if (s.w) {
        if (rc != SX_BUSY) Fail("begin_write", "a second write session: rc " + std::to_string(rc));
        sx_write_free(w);
        break;
      }
      if (rc) Fail("begin_write", s.err.message);
      s.w = w;
      s.wh = hk;
      s.pending = s.committed;
      break;
    }
    case kCommit:
      s.EndWrite(true);
      break;
    case kAbort:
      s.EndWrite(false);
      break;
    case kCreate: {
      if (!s.w) break;
      sx_collection_options co = SX_COLLECTION_OPTIONS_INIT;
      co.dim = kDim;
      co.index = Hnsw(coll) ? SX_INDEX_HNSW : SX_INDEX_FLAT;
      uint8_t b = in.byte();
      if (Hnsw(coll)) {
        co.hnsw_m = 2 + b % 8;
        co.hnsw_ef_construction = 4 + (b >> 3) % 32;
      }
      if (Int8(coll)) co.quantization = SX_QUANTIZATION_INT8;
      if (!Hnsw(coll) && b >= 0x80) {  // int8 codes are for HNSW only
        sx_collection_options bad = co;
        bad.quantization = SX_QUANTIZATION_INT8;
        if (sx_write_create_collection(s.w, name.c_str(), &bad, &s.err) != SX_INVALID_ARGUMENT)
          Fail("create", name + ": a flat int8 collection accepted");
      }
      int rc = sx_write_create_collection(s.w, name.c_str(), &co, &s.err);
      bool exists = s.pending.count(coll);
      if (exists ? rc != SX_EXISTS : rc != SX_OK) Fail("create", name + ": " + s.err.message);
      if (!exists) {
        Coll &mc = s.pending[coll];
        mc.m = co.hnsw_m;
        mc.efc = co.hnsw_ef_construction;
      }
      break;
    }
    case kDrop: {
      if (!s.w) break;
      int rc = sx_write_drop_collection(s.w, name.c_str(), &s.err);
      bool exists = s.pending.count(coll);
      if (exists ? rc != SX_OK : rc != SX_NOT_FOUND) Fail("drop", name + ": " + s.err.message);
      s.pending.erase(coll);
      break;
    }
    case kUpsert: {  // 1-4 items; maybe one bad (a NaN), then nothing changes
      if (!s.w) break;
      size_t n = 1 + in.byte() % 4;
      std::vector<std::string> ids;
      std::vector<const char *> ip;
      std::vector<float> v;
      bool bad = false;
      for (size_t i = 0; i < n; i++) {
        ItemFrom(in, &ids, &v, &bad);
      }
      for (auto &x : ids) ip.push_back(x.c_str());
      int rc = sx_write_upsert(s.w, name.c_str(), n, ip.data(), v.data(), kDim, nullptr, &s.err);
      auto it = s.pending.find(coll);
      if (it == s.pending.end()) {
        if (rc != SX_NOT_FOUND) Fail("upsert", "into a missing collection: " + std::to_string(rc));
      } else if (bad) {
        if (rc != SX_INVALID_ARGUMENT) Fail("upsert", "a NaN accepted");
      } else {
        if (rc) Fail("upsert", s.err.message);
        for (size_t i = 0; i < n; i++)
          it->second.items[ids[i]].v = std::vector<float>(&v[i * kDim], &v[i * kDim + kDim]);
        for (size_t i = 0; i < n; i++) it->second.items[ids[i]].SetMeta(false, "");
      }
      break;
    }
    case kDelete: {  // 1-3 ids
      if (!s.w) break;
      size_t n = 1 + in.byte() % 3;
      std::vector<std::string> ids;
      std::vector<const char *> ip;
      for (size_t i = 0; i < n; i++) ids.push_back(Id(in.byte()));
      for (auto &x : ids) ip.push_back(x.c_str());
      size_t deleted = 99;
      int rc = sx_write_delete(s.w, name.c_str(), n, ip.data(), &deleted, &s.err);
      auto it = s.pending.find(coll);
      if (it == s.pending.end()) {
        if (rc != SX_NOT_FOUND) Fail("delete", "from a missing collection");
      } else {
        if (rc) Fail("delete", s.err.message);
        size_t want = 0;
        for (auto &x : ids) want += it->second.items.erase(x);
        if (deleted != want)
          Fail("delete", std::to_string(deleted) + " deleted vs model " + std::to_string(want));
      }
      break;
    }
    case kWriteReads: {  // reads through the write session
      if (!s.w) break;
      sx_names *names = nullptr;
      if (sx_write_list_collections(s.w, &names, &s.err)) Fail("list", s.err.message);
      CheckList(s, names, s.pending);
      sx_names_free(names);
      sx_collection *c = nullptr;
      int rc = sx_write_collection(s.w, name.c_str(), &c, &s.err);
      if (!s.pending.count(coll)) {
        if (rc != SX_NOT_FOUND) Fail("view", "a dropped collection opened");
      } else {
        if (rc) Fail("view", s.err.message);
        CheckView(s, c, s.pending, coll, in);
      }
      sx_collection_free(c);
      break;
    }
    case kBeginRead: {  // a read session on this handle: a snapshot of what is committed
      s.EndRead(hk);
      if (sx_read_begin(hd.db, &hd.r, &s.err)) Fail("begin_read", s.err.message);
      hd.snap = s.committed;
      break;
    }
    case kReadReads: {  // reads through this handle's read session
      if (!hd.r) break;
      sx_names *names = nullptr;
      if (sx_read_list_collections(hd.r, &names, &s.err)) Fail("list", s.err.message);
      CheckList(s, names, hd.snap);
      sx_names_free(names);
      sx_collection *c = nullptr;
      int rc = sx_read_collection(hd.r, name.c_str(), &c, &s.err);
      if (!hd.snap.count(coll)) {
        if (rc != SX_NOT_FOUND) Fail("read view", "a missing collection opened");
      } else {
        if (rc) Fail("read view", s.err.message);
        CheckView(s, c, hd.snap, coll, in);
      }
      sx_collection_free(c);
      break;
    }
    case kEndRead:
      s.EndRead(hk);
      break;
    case kCheckpoint: {  // busy while a write session is open
      int rc = sx_db_checkpoint(hd.db, 0, &s.err);
      if (rc && (rc != SX_BUSY || !s.w)) Fail("checkpoint", s.err.message);
      break;
    }
    case kReopen:  // close and reopen this handle: its write session is aborted
      s.Close(hk);
      s.Open(hk);
      break;
    case kCheck: {
      int rc = sx_db_check(hd.db, &s.err);
      if (rc) Fail("check", s.err.message);
      break;
    }
    case kCompact: {  // rewrites every collection (HNSW graphs rebuilt); busy while writing
      // After a bulk upsert a compaction rebuilds a graph of 41 or more: two at most.
      if (s.bulks && s.bulk_compacts++ >= 2) break;
      int rc = sx_db_compact(hd.db, nullptr, &s.err);
      if (s.w ? rc != SX_BUSY : rc != SX_OK)
        Fail("compact", "rc " + std::to_string(rc) + ": " + s.err.message);
      break;
    }
    case kUpsertMeta: {  // 1-4 items with metadata, maybe packed; a bad item changes nothing
      uint8_t nb = in.byte();
      size_t n = 1 + nb % 4;
      bool packed = (nb >> 2) & 1;
      std::vector<std::string> ids, metas;
      std::vector<bool> has;
      std::vector<float> v;
      bool bad = false;
      for (size_t i = 0; i < n; i++) {
        ItemFrom(in, &ids, &v, &bad);
        bool h;
        std::string t;
        GenMeta(in, &h, &t);
        if (packed && h && t.empty()) h = false;  // an empty item means none when packed
        if (h && !MetaValid(t)) bad = true;
        has.push_back(h);
        metas.push_back(t);
      }
      if (!s.w) break;
      int rc;
      if (packed) {
        std::string idb, mb;
        std::vector<size_t> io{0}, mo{0};
        for (size_t i = 0; i < n; i++) {
          idb += ids[i];
          io.push_back(idb.size());
          if (has[i]) mb += metas[i];
          mo.push_back(mb.size());
        }
        rc = sx_write_upsert_packed(s.w, name.c_str(), n, idb.data(), io.data(), v.data(), kDim,
                                    mb.data(), mo.data(), &s.err);
      } else {
        std::vector<const char *> ip, mp;
        for (size_t i = 0; i < n; i++) {
          ip.push_back(ids[i].c_str());
          mp.push_back(has[i] ? metas[i].c_str() : nullptr);
        }
        rc = sx_write_upsert(s.w, name.c_str(), n, ip.data(), v.data(), kDim, mp.data(), &s.err);
      }
      if (Trace())
        for (size_t i = 0; i < n; i++)
          fprintf(stderr, "  %s %s%s\n", ids[i].c_str(), has[i] ? metas[i].c_str() : "(none)",
                  has[i] && !MetaValid(metas[i]) ? " (invalid)" : "");
      auto it = s.pending.find(coll);
      if (it == s.pending.end()) {
        if (rc != SX_NOT_FOUND) Fail("upsert", "into a missing collection: " + std::to_string(rc));
      } else if (bad) {
        std::string all;
        for (auto &t : metas) all += t + " ";
        if (rc != SX_INVALID_ARGUMENT) Fail("upsert", "a NaN or bad metadata accepted: " + all);
      } else {
        if (rc) Fail("upsert", s.err.message);
        for (size_t i = 0; i < n; i++) {
          Item &x = it->second.items[ids[i]];
          x.v.assign(&v[i * kDim], &v[i * kDim + kDim]);
          x.SetMeta(has[i], metas[i]);
        }
      }
      break;
    }
    case kWriteFilter:
    case kReadFilter: {  // a filtered search through the write session or the read session
      const Model *m = op == kWriteFilter ? &s.pending : &hd.snap;
      bool can = op == kWriteFilter ? s.w != nullptr : hd.r != nullptr;
      sx_collection *c = nullptr;
      if (can) {
        int rc = op == kWriteFilter ? sx_write_collection(s.w, name.c_str(), &c, &s.err)
                                    : sx_read_collection(hd.r, name.c_str(), &c, &s.err);
        if (m->count(coll) ? rc != SX_OK : rc != SX_NOT_FOUND)
          Fail("view", name + ": rc " + std::to_string(rc));
      }
      CheckFiltered(s, c, *m, coll, in);
      sx_collection_free(c);
      break;
    }
    case kBulk: {  // ids b0.. with vectors and metadata from two bytes: enough items (over
                   // 40 ef) for a filter matching most to walk the graph (k 1, ef 1)
      uint8_t sb = in.byte(), nb = in.byte();
      if (!s.w || s.bulks >= kBulksPerRun) break;
      s.bulks++;
      size_t n = kBulkMin + nb % (kBulkMax - kBulkMin + 1);
      std::vector<std::string> ids, metas;
      std::vector<const char *> ip, mp;
      std::vector<float> v;
      for (size_t i = 0; i < n; i++) {
        ids.push_back("b" + std::to_string(i));
        int x = (int)i + sb;
        v.push_back((float)(x * 7 % 9 - 4));
        v.push_back((float)((x * 5 + sb / 9) % 9 - 4));
        v.push_back((float)((x / 3 + sb) % 9 - 4));
        if ((x + (nb >> 6)) % 7 == 0) {
          metas.push_back("");
        } else {
          const Scalar &y = kScalars[(x * 11 + nb) % kNScalars];
          metas.push_back("{\"a\":" + std::to_string(x % 5) + ",\"b\":" + y.text +
                          ",\"n\":{\"x\":" + std::to_string(x % 3) + "}}");
        }
      }
      for (size_t i = 0; i < n; i++) {
        ip.push_back(ids[i].c_str());
        mp.push_back(metas[i].empty() ? nullptr : metas[i].c_str());
      }
      int rc = sx_write_upsert(s.w, name.c_str(), n, ip.data(), v.data(), kDim, mp.data(), &s.err);
      auto it = s.pending.find(coll);
      if (it == s.pending.end()) {
        if (rc != SX_NOT_FOUND) Fail("bulk", "into a missing collection: " + std::to_string(rc));
      } else {
        if (rc) Fail("bulk", s.err.message);
        for (size_t i = 0; i < n; i++) {
          Item &x = it->second.items[ids[i]];
          x.v.assign(&v[i * kDim], &v[i * kDim + kDim]);
          x.SetMeta(!metas[i].empty(), metas[i]);
        }
      }
      break;
    }
  }
}

void MakeSeeds(const char *dir);

}  // namespace

extern "C" int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  const char *seeds = getenv("SX_FUZZ_SEEDS");
  if (seeds) {
    MakeSeeds(seeds);
    exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static bool once;
  if (!once) {
    once = true;
    atexit([] {
      fz_remove_db("a.sx");
      rmdir(fz_dir());
    });
  }
  State s;
  char p[512];
  fz_path(p, sizeof p, "a.sx");
  s.path = p;
  fz_remove_db("a.sx");
  s.Open(0);
  s.Open(1);
  In in{data, size};
  for (int steps = 0; in.more() && steps < 200; steps++) Step(s, in);
  // Everything committed is there, through the other handle and after a reopen.
  s.Close(0);
  CheckAll(s, s.h[1].db, s.committed);
  s.Close(1);
  s.Open(0);
  CheckAll(s, s.h[0].db, s.committed);
  if (sx_db_check(s.h[0].db, &s.err)) Fail("final check", s.err.message);
  s.Close(0);
  return 0;
}

namespace {

// Seeds: each a short script of operations with their argument bytes.
struct Script {
  std::vector<uint8_t> v;
  Script &Op(int o, int c = 0, int h = 0, std::vector<uint8_t> args = {}) {
    v.push_back((uint8_t)(OpByte(o) | (h << 7)));
    v.push_back((uint8_t)(c >= 4 ? 0xc0 + (c - 4) : c));
    v.insert(v.end(), args.begin(), args.end());
    return *this;
  }
  // get id, query (byte 4 is 0), k - 1 (bit 3: exact, bit 4: two threads), ef - k
  Script &Reads(int o, int c, int h, uint8_t id, uint8_t kb, uint8_t ef) {
    return Op(o, c, h, {id, 5, 3, 4, kb, ef});
  }
  Script &Fill(int c, int base) {  // 12 items, 4 per upsert
    for (int i = 0; i < 3; i++) {
      std::vector<uint8_t> a = {3};
      for (int j = 0; j < 4; j++) {
        int x = base + 4 * i + j;
        a.insert(a.end(),
                 {(uint8_t)x, (uint8_t)(x * 5 % 9), (uint8_t)(x * 7 % 9), (uint8_t)(x % 4)});
      }
      Op(kUpsert, c, 0, a);
    }
    return *this;
  }
};

void MakeSeeds(const char *dir) {
  std::vector<Script> seeds(5);
  // Two flat and two HNSW collections filled and committed, read from both handles.
  Script &a = seeds[0];
  a.Op(kBegin);
  for (int c = 0; c < 4; c++) a.Op(kCreate, c, 0, {(uint8_t)(c * 9 + 2)});
  for (int c = 0; c < 4; c++) a.Fill(c, c * 3);
  a.Reads(kWriteReads, 2, 0, 5, 4, 0).Op(kCommit).Op(kBeginRead, 0, 1);
  a.Reads(kReadReads, 2, 1, 1, 5, 2).Reads(kReadReads, 3, 1, 7, 0x0d, 0);
  a.Reads(kReadReads, 0, 1, 9, 0x15, 1).Reads(kReadReads, 1, 1, 30, 2, 0);
  // The same, then deletes and upserts through handle 1 while both handles read their
  // snapshots; a checkpoint, a compaction, a check, a reopen, reads again.
  seeds[1] = a;
  Script &b = seeds[1];
  b.Op(kBeginRead).Op(kBegin, 0, 1).Op(kDelete, 2, 1, {2, 4, 5, 6}).Op(kDelete, 0, 1, {1, 2, 3});
  b.Op(kUpsert, 3, 1, {1, 7, 0, 0, 0, 8, 1, 1, 1}).Reads(kWriteReads, 2, 1, 4, 5, 0);
  b.Op(kCommit, 0, 1).Reads(kReadReads, 2, 0, 4, 5, 0).Reads(kReadReads, 2, 1, 4, 5, 0);
  b.Op(kCheckpoint).Op(kEndRead, 0, 1).Op(kCompact).Reads(kReadReads, 3, 0, 7, 3, 30);
  b.Op(kCheck, 0, 1).Op(kReopen).Op(kBeginRead).Reads(kReadReads, 2, 0, 9, 5, 1);
  b.Op(kBeginRead, 0, 1).Reads(kReadReads, 3, 1, 8, 0x0d, 0).Op(kCheckpoint, 0, 1);
  // Busy: a second write session, a compaction and a checkpoint while writing; a
  // reopen aborts the session.
  seeds[2].Op(kBegin).Op(kBegin, 0, 1).Op(kCompact, 0, 1).Op(kCheckpoint).Op(kCreate, 2, 0, {7});
  seeds[2]
      .Op(kUpsert, 2, 0, {0, 1, 2, 3, 4})
      .Op(kReopen)
      .Op(kBegin, 0, 1)
      .Op(kCreate, 3, 1, {0xff});
  seeds[2].Fill(3, 0).Op(kDrop, 3).Op(kAbort).Op(kCheck, 0, 1);
  // A NaN refused; a drop and a re-create in one session.
  seeds[3]
      .Op(kBegin, 0, 1)
      .Op(kCreate, 1, 0, {0})
      .Op(kUpsert, 1, 0, {1, 3, 0xff, 0, 0, 4, 1, 1, 1});
  seeds[3].Op(kUpsert, 1, 0, {0, 3, 1, 2, 3}).Op(kDrop, 1).Op(kCreate, 1, 0, {0}).Op(kCommit);
  seeds[3].Reads(kReadReads, 1, 0, 3, 0, 0).Op(kBeginRead).Reads(kReadReads, 1, 0, 3, 0, 0);
  // An HNSW collection with m = 2 through many upserts and deletes.
  Script &e = seeds[4];
  e.Op(kBegin).Op(kCreate, 2, 0, {0}).Fill(2, 0).Fill(2, 12).Op(kCommit).Op(kBegin, 0, 1);
  e.Op(kDelete, 2, 1, {2, 0, 5, 10}).Op(kDelete, 2, 1, {2, 13, 17, 20}).Fill(2, 4).Op(kCommit);
  e.Op(kBeginRead, 0, 1).Reads(kReadReads, 2, 1, 1, 5, 31).Reads(kReadReads, 2, 1, 2, 2, 0);
  // int8 collections: filled, read with small and large ef, thinned, compacted, reopened.
  seeds.resize(8);
  Script &g = seeds[5];
  g.Op(kBegin).Op(kCreate, 4, 0, {9}).Op(kCreate, 5, 0, {0x22}).Fill(4, 0).Fill(5, 6);
  g.Reads(kWriteReads, 4, 0, 3, 5, 0).Op(kCommit).Op(kBeginRead, 0, 1);
  g.Reads(kReadReads, 4, 1, 1, 2, 0).Reads(kReadReads, 5, 1, 7, 0x15, 31);
  g.Op(kBegin).Op(kDelete, 4, 0, {2, 1, 3, 5}).Fill(4, 12).Op(kCommit).Op(kCompact);
  g.Reads(kReadReads, 4, 1, 2, 3, 1).Op(kBeginRead).Reads(kReadReads, 4, 0, 13, 0x0d, 0);
  g.Op(kReopen, 0, 1).Op(kBeginRead, 0, 1).Reads(kReadReads, 5, 1, 9, 4, 2);
  // Metadata (nested, arrays, escapes, none, packed, refused) in a flat, an HNSW and
  // an int8 collection, searched with filters (valid, invalid, cut, 65 deep).
  const std::vector<uint8_t> metas[] = {
      {0x02, 0x00, 0x04, 0x01, 0x0a},                    // {"a":1,"b":"x"}
      {0x12, 0x54, 0x06, 0x0b, 0x02, 0x01},              // {"n": {"x":2,"y":"y"}, "c": true}
      {0x02, 0x08, 0xe7, 0x04, 0x0a, 0x00, 0x0f, 0x26},  // {"\u0061":[1,"x",null],"\u00e9":..}
      {0x0c},                                            // none
      {0x03, 0x03, 0x12, 0x35, 0x0d, 0x06, 0x11},        // {"d":-0.35,"p":{..},"p.q":"x\u0000y"}
      {0x00},                                            // {}
      {0x0f, 0x07},                                      // a key twice: refused
  };
  const std::vector<uint8_t> filters[] = {
      {0x00, 0x00, 0x08, 0x00, 0x04},        // {"a":1}
      {0x00, 0x00, 0x10, 0x05, 0x03, 0x06},  // {"n.x":{"$gte":2}}
      {0x00, 0x00, 0x0d, 0x00, 0x08, 0x01, 0x0a, 0x00, 0x10, 0x02, 0x08, 0x00},  // $or
      {0x00, 0x00, 0x06, 0x00, 0x10, 0x00, 0x06, 0x02, 0x04, 0x06},              // $not $in
      {0x00, 0x00, 0x10, 0x00, 0x02, 0x01},              // $gt true: invalid
      {0x00, 0x00, 0x00, 0x01, 0x04, 0x0b, 0x01, 0x0a},  // $lt and $ne
      {0x00, 0x04},                                      // {}
      {0xfa, 0x00, 0x08, 0x00, 0x04},                    // cut short
      {0xfd, 0x00, 0x08, 0x00, 0x04},                    // 65 $not deep
      {0xfc, 0x00, 0x08, 0x00, 0x04},                    // 64 $not deep
      {0x00, 0x00, 0x08, 0x0a, 0x0e},                    // {"\u00e9":"\u00e9"}
      {0x00, 0x00, 0x10, 0x07, 0x08, 0x01},              // p.q exists
      {0x00, 0x00, 0x10, 0x01, 0x07, 0x02, 0x0a, 0x0c},  // b $nin
      {0x00, 0x00, 0x10, 0x00, 0x01, 0x04},              // {"a":{"$ne":1}}
  };
  Script &h = seeds[6];
  h.Op(kBegin).Op(kCreate, 0, 0, {0x80}).Op(kCreate, 2, 0, {3}).Op(kCreate, 4, 0, {0x11});
  for (int c : {0, 2, 4}) {
    std::vector<uint8_t> up = {3}, pk = {5}, bad = {1};
    for (int i = 0; i < 4; i++) {
      up.insert(up.end(), {(uint8_t)(i + c), (uint8_t)(i * 2), (uint8_t)(i + 3), (uint8_t)(7 - i)});
      up.insert(up.end(), metas[i].begin(), metas[i].end());
    }
    for (int i = 4; i < 6; i++) {
      pk.insert(pk.end(), {(uint8_t)(i + c), (uint8_t)i, (uint8_t)(i + 1), 1});
      pk.insert(pk.end(), metas[i].begin(), metas[i].end());
    }
    bad.insert(bad.end(), {9, 1, 1, 1});
    bad.insert(bad.end(), metas[6].begin(), metas[6].end());
    bad.insert(bad.end(), {10, 2, 2, 2});
    bad.insert(bad.end(), metas[0].begin(), metas[0].end());
    h.Op(kUpsertMeta, c, 0, up).Op(kUpsertMeta, c, 0, pk).Op(kUpsertMeta, c, 0, bad);
  }
  h.Reads(kWriteReads, 0, 0, 2, 5, 0);
  for (size_t i = 0; i < sizeof filters / sizeof *filters; i++) {
    std::vector<uint8_t> fa = filters[i];
    fa.insert(fa.end(), {5, 3, 4, (uint8_t)(i & 1 ? 0x25 : 0x12), 0});
    h.Op(kWriteFilter, i % 3 == 0 ? 0 : i % 3 == 1 ? 2 : 4, 0, fa);
  }
  h.Op(kCommit).Op(kBeginRead, 0, 1);
  for (size_t i = 0; i < sizeof filters / sizeof *filters; i++) {
    std::vector<uint8_t> fa = filters[i];
    fa.insert(fa.end(), {1, 8, 0, (uint8_t)(i & 1 ? 0x2d : 0x03), 3});
    h.Op(kReadFilter, i % 3 == 0 ? 4 : i % 3 == 1 ? 0 : 2, 1, fa);
  }
  h.Op(kCompact).Op(kReopen, 0, 1).Op(kBeginRead, 0, 1).Reads(kReadReads, 4, 1, 2, 5, 0);
  // A bulk upsert (one a run) into an HNSW collection (seed 7) or an int8 one (seed 8)
  // beside a few items of another, so that filters matching most items walk the graph
  // (k 1, ef 1); a filter matching few scans; deletes and a compaction.
  seeds.resize(9);
  for (int c : {2, 4}) {
    Script &x = seeds[c == 2 ? 7 : 8];
    x.Op(kBegin).Op(kCreate, c, 0, {(uint8_t)(c == 2 ? 0 : 0x19)}).Op(kCreate, 6 - c, 0, {1});
    x.Op(kBulk, c, 0, {(uint8_t)(c + 1), (uint8_t)(c == 2 ? 7 : 0xff)}).Fill(6 - c, 3);
    x.Op(kCommit).Op(kBeginRead, 0, 1);
    for (size_t i : {13, 2, 0, 1}) {
      std::vector<uint8_t> fa = filters[i];
      fa.insert(fa.end(), {(uint8_t)(c + i), 8, 3, (uint8_t)(i == 1 ? 0x08 : 0x24), 0});
      x.Op(kReadFilter, c, 1, fa);
    }
    x.Reads(kReadReads, c, 1, 1, 0, 0).Reads(kReadReads, 6 - c, 1, 4, 0, 0);
    x.Op(kBegin).Op(kDelete, c, 0, {2, 1, 2, 3}).Op(kCommit).Op(kCompact, 0, 1);
    x.Op(kBeginRead, 0, 1).Reads(kReadReads, c, 1, 1, 0, 0);
    std::vector<uint8_t> fa = filters[13];
    fa.insert(fa.end(), {7, 1, 2, 0x24, 0});
    x.Op(kReadFilter, c, 1, fa);
  }
  for (size_t i = 0; i < seeds.size(); i++)
    fz_seed(dir, ("seed-" + std::to_string(i)).c_str(), seeds[i].v.data(), seeds[i].v.size());
}

}  // namespace
