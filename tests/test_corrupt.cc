// Nothing read from disk is trusted (DESIGN.md, Storage; issue 19): a database file
// with one corruption planted in one on-disk structure must give SX_CORRUPT (or a
// harmless success) from every call, never a crash, a hang or an allocation sized by
// the damage; and sx_db_check must report SX_CORRUPT for every planted corruption.
//
// One database (a flat and an HNSW collection, with metadata, deletes and reused
// slots) is built, checkpointed and closed, so that everything lives in P. Each case
// patches a copy of that file at an offset found by walking the structures the way
// the library does (page 0, the catalog, collection headers, page arrays), then runs
// every operation on it. Run under ASan+UBSan (build/asan) to catch what a plain
// build only risks.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "collection/collection.h"
#include "testutil.hh"

namespace {

using sxt::TmpDir;

// Page 0 (pager_int.h) and catalog (coll.c) layout.
constexpr uint32_t kPs = 4096;
constexpr size_t kP0FreeHead = 28, kP0FreeCount = 32, kCatOff = 128;
constexpr size_t kCatNext = 0, kCatN = 4, kCatEnt = 8, kCatEntSize = 72;
constexpr uint32_t kDim = 8, kN = 300;

uint32_t Rd32(const std::vector<uint8_t> &b, size_t off) {
  uint32_t v;
  memcpy(&v, b.data() + off, 4);
  return v;
}
uint64_t Rd64(const std::vector<uint8_t> &b, size_t off) {
  uint64_t v;
  memcpy(&v, b.data() + off, 8);
  return v;
}
void Wr32(std::vector<uint8_t> &b, size_t off, uint32_t v) {
  memcpy(b.data() + off, &v, 4);
}
void Wr64(std::vector<uint8_t> &b, size_t off, uint64_t v) {
  memcpy(b.data() + off, &v, 8);
}

bool WriteAll(const std::string &path, const std::vector<uint8_t> &d) {
  FILE *f = fopen(path.c_str(), "wb");
  if (!f) return false;
  bool ok = fwrite(d.data(), 1, d.size(), f) == d.size();
  return fclose(f) == 0 && ok;
}

// The image of the built database, and where its structures are.
struct Image {
  std::vector<uint8_t> p;
  uint32_t npages = 0, cat = 0, hflat = 0, hhnsw = 0;
  // Byte offset in the file of page pg (format 2: checksum pages interleaved).
  size_t Page(uint32_t pg) const {
    return (size_t)sx__pfile_page(kPs, pg) * kPs;
  }
  // Page of leaf `leaf` of the page array whose two words are at byte pa of page owner.
  uint32_t Leaf(uint32_t owner, unsigned pa, uint64_t leaf) const {
    uint32_t pg = Rd32(p, Page(owner) + pa), depth = Rd32(p, Page(owner) + pa + 4);
    for (uint32_t lvl = 0; lvl < depth; lvl++) {
      uint64_t span = 1;
      for (uint32_t d = 0; d + lvl + 1 < depth; d++) span *= kPs / 4;
      pg = Rd32(p, Page(pg) + 4 * ((leaf / span) % (kPs / 4)));
    }
    return pg;
  }
  // Byte offset in the file of byte off of that array.
  size_t At(uint32_t owner, unsigned pa, uint64_t off) const {
    return Page(Leaf(owner, pa, off / kPs)) + off % kPs;
  }
};

void Check(sx_status rc, const sx_error &e) {
  ASSERT_EQ(rc, SX_OK) << e.message;
}

// Reads the closed database db, whose catalog holds ncoll collections (among them
// "hnsw", and perhaps "flat"), into img.
void ReadImage(const std::string &db, uint32_t ncoll, Image *img) {
  img->p = sxt::ReadBytes(db);
  ASSERT_EQ(img->p.size() % kPs, 0u);
  // Database pages: the file's, less its checksum pages (one first in each group of
  // kPs / 4, and page 0 before group 0's).
  uint64_t fpages = img->p.size() / kPs;
  img->npages = (uint32_t)(fpages - 1 - (fpages - 1) / (kPs / 4 + 1));
  ASSERT_EQ(sx__pfile_pages(kPs, img->npages), fpages);
  img->cat = Rd32(img->p, kCatOff);
  ASSERT_GT(img->cat, 0u);
  ASSERT_EQ(Rd32(img->p, img->Page(img->cat) + kCatNext), 0u) << "one catalog page";
  ASSERT_EQ(Rd32(img->p, img->Page(img->cat) + kCatN), ncoll);
  for (uint32_t i = 0; i < ncoll; i++) {
    size_t e0 = img->Page(img->cat) + kCatEnt + i * kCatEntSize;
    std::string name((const char *)img->p.data() + e0);
    (name == "flat" ? img->hflat : img->hhnsw) = Rd32(img->p, e0 + 68);
  }
  ASSERT_GT(img->hhnsw, 0u);
}

void Build(const std::string &db, Image *img) {
  sx_error e = SX_ERROR_INIT;
  sx_db *d = nullptr;
  sx_open_options oo = SX_OPEN_OPTIONS_INIT;
  oo.threads = 1;
  ASSERT_NO_FATAL_FAILURE(Check(sx_db_open(&d, db.c_str(), &oo, &e), e));
  sx_write *w = nullptr;
  ASSERT_NO_FATAL_FAILURE(Check(sx_write_begin(d, -1, &w, &e), e));
  sx_collection_options co = SX_COLLECTION_OPTIONS_INIT;
  co.dim = kDim;
  co.index = SX_INDEX_FLAT;
  ASSERT_NO_FATAL_FAILURE(Check(sx_write_create_collection(w, "flat", &co, &e), e));
  co.index = SX_INDEX_HNSW;
  co.hnsw_m = 8;
  co.hnsw_ef_construction = 40;
  co.quantization = SX_QUANTIZATION_INT8; /* its codes are damaged below too */
  ASSERT_NO_FATAL_FAILURE(Check(sx_write_create_collection(w, "hnsw", &co, &e), e));
  co.quantization = SX_QUANTIZATION_NONE;
  ASSERT_NO_FATAL_FAILURE(Check(sx_write_create_collection(w, "gone", &co, &e), e));
  std::vector<float> v = sxt::Gen(7, kN, kDim);
  std::vector<std::string> ids, metas;
  for (uint32_t i = 0; i < kN; i++) {
    ids.push_back("id" + std::to_string(i));
    metas.push_back("{\"i\": " + std::to_string(i) + ", \"s\": \"text of item " +
                    std::to_string(i) + "\"}");
  }
  std::vector<const char *> ip, mp;
  for (uint32_t i = 0; i < kN; i++) ip.push_back(ids[i].c_str()), mp.push_back(metas[i].c_str());
  for (const char *c : {"flat", "hnsw", "gone"})
    ASSERT_NO_FATAL_FAILURE(
        Check(sx_write_upsert(w, c, kN, ip.data(), v.data(), kDim, mp.data(), &e), e));
  ASSERT_NO_FATAL_FAILURE(Check(sx_write_commit(w, &e), e));
  sx_write_free(w);
  // Deletes (free slots, dead HNSW nodes reclaimed), replacements, and a dropped
  // collection (free pages).
  ASSERT_NO_FATAL_FAILURE(Check(sx_write_begin(d, -1, &w, &e), e));
  ASSERT_NO_FATAL_FAILURE(Check(sx_write_drop_collection(w, "gone", &e), e));
  for (const char *c : {"flat", "hnsw"}) {
    size_t gone = 0;
    ASSERT_NO_FATAL_FAILURE(Check(sx_write_delete(w, c, 40, ip.data() + 10, &gone, &e), e));
    ASSERT_NO_FATAL_FAILURE(
        Check(sx_write_upsert(w, c, 5, ip.data() + 100, v.data(), kDim, mp.data(), &e), e));
  }
  ASSERT_NO_FATAL_FAILURE(Check(sx_write_commit(w, &e), e));
  sx_write_free(w);
  ASSERT_NO_FATAL_FAILURE(Check(sx_db_check(d, &e), e));
  ASSERT_NO_FATAL_FAILURE(Check(sx_db_checkpoint(d, -1, &e), e));
  ASSERT_EQ(sx_db_close(d), SX_OK);
  sx_db_free(d);

  ASSERT_NO_FATAL_FAILURE(ReadImage(db, 2, img));
  ASSERT_GT(img->hflat, 0u);
  ASSERT_GT(Rd32(img->p, kP0FreeCount), 0u) << "the build leaves free pages";
  ASSERT_EQ(Rd32(img->p, img->Page(img->hflat) + SX__H_PA_SLOTS + 4), 1u)
      << "slot arrays of depth 1";
}

// A status a call on a damaged file may give: the damage reported, or a harmless
// answer (a missing id is NOT_FOUND whatever the file holds).
::testing::AssertionResult Harmless(const char *what, sx_status rc, const sx_error &e) {
  if (rc == SX_OK || rc == SX_CORRUPT || rc == SX_NOT_FOUND) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << what << " gave " << sx_status_name(rc) << ": " << e.message;
}

#define HARMLESS(what, call)              \
  do {                                    \
    sx_error e_ = SX_ERROR_INIT;          \
    sx_error *err = &e_;                  \
    sx_status rc_ = (call);               \
    (void)err;                            \
    EXPECT_TRUE(Harmless(what, rc_, e_)); \
    last = rc_;                           \
    (void)last;                           \
  } while (0)

// Every read a user can make through a collection view.
void ReadColl(sx_collection *c) {
  sx_status last;
  sx_collection_info info = SX_COLLECTION_INFO_INIT;
  HARMLESS("describe", sx_collection_describe(c, &info, err));
  uint64_t n;
  HARMLESS("count", sx_collection_count(c, &n, err));
  sx_collection_stats st;
  memset(&st, 0, sizeof st);
  st.version = SX_COLLECTION_STATS_VERSION;
  HARMLESS("stats", sx_collection_stats_get(c, &st, err));
  for (const char *id : {"id0", "id5", "id120", "id299", "nope"}) {
    sx_record *r = nullptr;
    HARMLESS("get", sx_collection_get(c, id, &r, err));
    sx_record_free(r);
  }
  const char *ids[] = {"id1", "id2", "id200", "nope"};
  sx_records *rs = nullptr;
  HARMLESS("get_batch", sx_collection_get_batch(c, 4, ids, &rs, err));
  sx_records_free(rs);
  std::vector<float> q = sxt::Gen(99, 3, kDim);
  sx_search_options so = SX_SEARCH_OPTIONS_INIT;
  so.threads = 1;
  sx_results *res = nullptr;
  HARMLESS("search", sx_collection_search(c, q.data(), kDim, 10, &so, &res, err));
  sx_results_free(res);
  res = nullptr;
  HARMLESS("search_batch", sx_collection_search_batch(c, q.data(), 3, kDim, 5, &so, &res, err));
  sx_results_free(res);
  // An exact search of the quantized collection reads its codes first.
  so.exact = 1;
  res = nullptr;
  HARMLESS("search_exact", sx_collection_search(c, q.data(), kDim, 10, &so, &res, err));
  sx_results_free(res);
  // And an exact batch: every query's bounds from the codes at once (AVX2).
  res = nullptr;
  HARMLESS("search_batch_exact",
           sx_collection_search_batch(c, q.data(), 3, kDim, 5, &so, &res, err));
  sx_results_free(res);
  sx_cursor *cur = nullptr;
  HARMLESS("cursor", sx_collection_cursor(c, nullptr, &cur, err));
  for (int i = 0; cur && last == SX_OK && i < 1000; i++) {
    sx_records *b = nullptr;
    HARMLESS("cursor_next", sx_cursor_next(cur, 64, &b, err));
    size_t got = b ? sx_records_count(b) : 0;
    sx_records_free(b);
    if (got == 0) break;
  }
  sx_cursor_free(cur);
}

// One write session: f(w) then commit (abort when f failed).
void WriteOnce(sx_db *d, const std::function<sx_status(sx_write *, sx_error *)> &f,
               const char *what) {
  sx_status last;
  sx_write *w = nullptr;
  HARMLESS("write_begin", sx_write_begin(d, 1000, &w, err));
  if (!w) return;
  sx_error e = SX_ERROR_INIT;
  sx_status rc = f(w, &e);
  EXPECT_TRUE(Harmless(what, rc, e));
  if (rc == SX_OK)
    HARMLESS("commit", sx_write_commit(w, err));
  else
    sx_write_abort(w);
  sx_write_free(w);
}

// Runs every operation on the database at db; returns sx_db_check's status (before
// any write).
sx_status Exercise(const std::string &db) {
  sx_status last = SX_OK;
  sx_db *d = nullptr;
  sx_open_options oo = SX_OPEN_OPTIONS_INIT;
  oo.threads = 1;
  HARMLESS("open", sx_db_open(&d, db.c_str(), &oo, err));
  if (!d) return SX_CORRUPT;
  sx_error ce = SX_ERROR_INIT;
  sx_status check = sx_db_check(d, &ce);
  EXPECT_TRUE(check == SX_OK || check == SX_CORRUPT) << sx_status_name(check) << ": " << ce.message;
  sx_read *r = nullptr;
  HARMLESS("read_begin", sx_read_begin(d, &r, err));
  if (r) {
    sx_names *names = nullptr;
    HARMLESS("list", sx_read_list_collections(r, &names, err));
    sx_names_free(names);
    sx_space_stats sp = SX_SPACE_STATS_INIT;
    HARMLESS("space", sx_read_space_get(r, &sp, err));
    for (const char *name : {"flat", "hnsw"}) {
      sx_collection *c = nullptr;
      HARMLESS("read_collection", sx_read_collection(r, name, &c, err));
      if (c) ReadColl(c);
      sx_collection_free(c);
    }
    sx_read_free(r);
  }
  std::vector<float> v = sxt::Gen(5, 4, kDim);
  const char *ids[] = {"id3", "new1", "id250", "new2"};
  const char *metas[] = {"{\"a\": 1}", nullptr, "{\"b\": \"x\"}", "{}"};
  for (const char *name : {"flat", "hnsw"}) {
    WriteOnce(
        d,
        [&](sx_write *w, sx_error *e) {
          return sx_write_upsert(w, name, 4, ids, v.data(), kDim, metas, e);
        },
        "upsert");
    WriteOnce(
        d,
        [&](sx_write *w, sx_error *e) {
          size_t gone;
          return sx_write_delete(w, name, 2, ids + 1, &gone, e);
        },
        "delete");
    WriteOnce(
        d,
        [&](sx_write *w, sx_error *e) {
          sx_collection *c = nullptr;
          sx_status rc = sx_write_collection(w, name, &c, e);
          if (c) ReadColl(c);
          sx_collection_free(c);
          return rc;
        },
        "write_collection");
  }
  WriteOnce(
      d,
      [&](sx_write *w, sx_error *e) {
        sx_collection_options co = SX_COLLECTION_OPTIONS_INIT;
        co.dim = 3;
        co.index = SX_INDEX_FLAT;
        return sx_write_create_collection(w, "another", &co, e);
      },
      "create");
  sx_compact_options cpo;
  sx_compact_options_init(&cpo, SX_COMPACT_OPTIONS_VERSION);
  HARMLESS("compact", sx_db_compact(d, &cpo, err));
  for (const char *name : {"flat", "hnsw"})
    WriteOnce(
        d, [&](sx_write *w, sx_error *e) { return sx_write_drop_collection(w, name, e); }, "drop");
  HARMLESS("checkpoint", sx_db_checkpoint(d, 1000, err));
  sx_db_close(d);
  sx_db_free(d);
  return check;
}

// Which case runs, for the alarm's report.
const char *volatile g_case = "";

void OnAlarm(int) {
  const char msg[] = "\ntest_corrupt: hang (120 s) in case: ";
  ssize_t w = write(2, msg, sizeof msg - 1);
  w = write(2, g_case, strlen(g_case));
  w = write(2, "\n", 1);
  (void)w;
  _exit(3);
}

using Plant = std::function<void(const Image &, std::vector<uint8_t> &)>;

// Writes the image, with plant's damage in it, as the database at path. Sealed, the
// page checksums are made valid again: the damage is left for the structures' own
// checks (the test Corrupt.PageChecksums leaves them wrong).
bool WritePlanted(const std::string &path, const Image &img, const Plant &plant, bool seal = true) {
  std::vector<uint8_t> p = img.p;
  plant(img, p);
  if (seal) sx__pfile_seal(p.data(), p.size(), kPs);
  return WriteAll(path, p);
}

struct Case {
  const char *name;
  Plant plant;
};

// Writes the patched image as a fresh database and runs everything on it.
void RunCase(const Image &img, const Case &c, bool seal = true) {
  SCOPED_TRACE(c.name);
  TmpDir t("corrupt");
  ASSERT_TRUE(WritePlanted(t.db, img, c.plant, seal));
  g_case = c.name;
  signal(SIGALRM, OnAlarm);
  alarm(120);  // a hang is a failure: the alarm ends the test binary, naming the case
  sx_status check = Exercise(t.db);
  alarm(0);
  EXPECT_EQ(check, SX_CORRUPT) << "sx_db_check missed: " << c.name;
}

class Corrupt : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    img_ = new Image;
    TmpDir t("corrupt-build");
    Build(t.db, img_);
  }
  static void TearDownTestSuite() {
    delete img_;
  }
  static Image *img_;
};
Image *Corrupt::img_ = nullptr;

TEST_F(Corrupt, Baseline) {
  ASSERT_FALSE(HasFatalFailure());
  TmpDir t("corrupt");
  ASSERT_TRUE(WriteAll(t.db, img_->p));
  EXPECT_EQ(Exercise(t.db), SX_OK);
}

// The catalog: a page pointing to itself, a count past its capacity, an entry naming
// a page past the end or page 0.
TEST_F(Corrupt, Catalog) {
  const Case cases[] = {
      {"catalog page points to itself",
       [](const Image &i, std::vector<uint8_t> &p) { Wr32(p, i.Page(i.cat) + kCatNext, i.cat); }},
      {"catalog next past the end",
       [](const Image &i, std::vector<uint8_t> &p) {
         Wr32(p, i.Page(i.cat) + kCatNext, i.npages + 5);
       }},
      {"catalog count too big",
       [](const Image &i, std::vector<uint8_t> &p) { Wr32(p, i.Page(i.cat) + kCatN, 1000); }},
      {"catalog root past the end",
       [](const Image &i, std::vector<uint8_t> &p) { Wr32(p, kCatOff, i.npages); }},
      {"catalog entry header past the end",
       [](const Image &i, std::vector<uint8_t> &p) {
         Wr32(p, i.Page(i.cat) + kCatEnt + 68, 0xfffffff0u);
       }},
      {"catalog entry header is page 0",
       [](const Image &i, std::vector<uint8_t> &p) { Wr32(p, i.Page(i.cat) + kCatEnt + 68, 0); }},
      {"catalog entry name not terminated",
       [](const Image &i, std::vector<uint8_t> &p) {
         memset(p.data() + i.Page(i.cat) + kCatEnt, 'a', 68);
       }},
  };
  for (const Case &c : cases) ASSERT_NO_FATAL_FAILURE(RunCase(*img_, c));
}

// Collection headers: HNSW parameters, the schema, the counters.
TEST_F(Corrupt, CollectionHeader) {
  auto hdr = [](bool hnsw, unsigned off, uint64_t v, bool wide) {
    return [=](const Image &i, std::vector<uint8_t> &p) {
      size_t at = i.Page(hnsw ? i.hhnsw : i.hflat) + off;
      if (wide)
        Wr64(p, at, v);
      else
        Wr32(p, at, (uint32_t)v);
    };
  };
  const Case cases[] = {
      {"hnsw m = 0", hdr(true, SX__H_M, 0, false)},
      {"hnsw m = 600", hdr(true, SX__H_M, 600, false)},
      {"hnsw m = 512", hdr(true, SX__H_M, 512, false)},
      {"hnsw ef_construction = 0", hdr(true, SX__H_EFC, 0, false)},
      {"flat dim = 0", hdr(false, SX__H_DIM, 0, false)},
      {"hnsw dim = 0", hdr(true, SX__H_DIM, 0, false)},
      {"flat nslots huge", hdr(false, SX__H_NSLOTS, 1ull << 62, true)},
      {"hnsw nslots huge", hdr(true, SX__H_NSLOTS, ~0ull - 3, true)},
      {"hnsw nslots past the file", hdr(true, SX__H_NSLOTS, 3000000, true)},
      {"hnsw count > nslots", hdr(true, SX__H_COUNT, 100000, true)},
      {"flat count > nslots", hdr(false, SX__H_COUNT, 301, true)},
      {"hnsw nfree > nslots", hdr(true, SX__H_NFREE, 290, true)},
      {"flat nfree huge", hdr(false, SX__H_NFREE, 1ull << 40, true)},
      {"flat hash capacity not a power of two", hdr(false, SX__H_HASHCAP, 1000, true)},
      {"hnsw hash capacity huge", hdr(true, SX__H_HASHCAP, 1ull << 60, true)},
      {"flat hash used > capacity", hdr(false, SX__H_HASHUSED, 5000, true)},
      {"flat heap length huge", hdr(false, SX__H_HEAPLEN, ~0ull, true)},
      {"hnsw entry point past the slots", hdr(true, SX__H_HNSW_EP, 100000, false)},
      {"hnsw upper length huge", hdr(true, SX__H_UPPER_LEN, 1ull << 61, true)},
      {"flat header magic", hdr(false, SX__H_MAGIC, 0, false)},
      {"hnsw quantization unknown", hdr(true, SX__H_QUANT, 7, false)},
      {"flat quantization int8", hdr(false, SX__H_QUANT, SX_QUANTIZATION_INT8, false)},
      {"hnsw quantization none, with codes", hdr(true, SX__H_QUANT, 0, false)},
  };
  for (const Case &c : cases) ASSERT_NO_FATAL_FAILURE(RunCase(*img_, c));
}

// Page arrays: depth, a node pointing to itself, to a page past the end, to page 0,
// one page listed twice (a double free when the collection is dropped).
TEST_F(Corrupt, PageArray) {
  auto node = [](bool hnsw, unsigned pa,
                 std::function<void(const Image &, std::vector<uint8_t> &, uint32_t root)> f) {
    return [=](const Image &i, std::vector<uint8_t> &p) {
      uint32_t owner = hnsw ? i.hhnsw : i.hflat;
      f(i, p, Rd32(p, i.Page(owner) + pa));
    };
  };
  const Case cases[] = {
      {"slots array depth 9",
       [](const Image &i, std::vector<uint8_t> &p) {
         Wr32(p, i.Page(i.hflat) + SX__H_PA_SLOTS + 4, 9);
       }},
      {"slots array depth 3 over a depth-1 tree",
       [](const Image &i, std::vector<uint8_t> &p) {
         Wr32(p, i.Page(i.hhnsw) + SX__H_PA_SLOTS + 4, 3);
       }},
      {"slots node points to itself",
       node(false, SX__H_PA_SLOTS,
            [](const Image &i, std::vector<uint8_t> &p, uint32_t r) { Wr32(p, i.Page(r), r); })},
      {"hnsw slots node points to itself", node(true, SX__H_PA_SLOTS,
                                                [](const Image &i, std::vector<uint8_t> &p,
                                                   uint32_t r) { Wr32(p, i.Page(r) + 4, r); })},
      {"vec node points past the end", node(true, SX__H_PA_VEC,
                                            [](const Image &i, std::vector<uint8_t> &p,
                                               uint32_t r) { Wr32(p, i.Page(r), i.npages + 7); })},
      {"vec node points to page 0", node(false, SX__H_PA_VEC,
                                         [](const Image &i, std::vector<uint8_t> &p, uint32_t r) {
                                           Wr32(p, i.Page(r) + 4, 0);
                                         })},
      {"slots node lists one page twice",
       node(false, SX__H_PA_SLOTS,
            [](const Image &i, std::vector<uint8_t> &p, uint32_t r) {
              Wr32(p, i.Page(r) + 4, Rd32(p, i.Page(r)));
            })},
      {"vec node points to the other collection's header",
       node(true, SX__H_PA_VEC,
            [](const Image &i, std::vector<uint8_t> &p, uint32_t r) {
              Wr32(p, i.Page(r) + 4, i.hflat);
            })},
      {"heap root past the end",
       [](const Image &i,
          std::vector<uint8_t> &p) { Wr32(p, i.Page(i.hflat) + SX__H_PA_HEAP, 0x7fffffffu); }},
      {"live root is the catalog page",
       [](const Image &i,
          std::vector<uint8_t> &p) { Wr32(p, i.Page(i.hhnsw) + SX__H_PA_LIVE, i.cat); }},
      {"graph root is the collection's own header",
       [](const Image &i,
          std::vector<uint8_t> &p) { Wr32(p, i.Page(i.hhnsw) + SX__H_PA_G0, i.hhnsw); }},
      {"codes root past the end",
       [](const Image &i,
          std::vector<uint8_t> &p) { Wr32(p, i.Page(i.hhnsw) + SX__H_PA_CODES, i.npages + 3); }},
      {"codes root is the vectors' root",
       [](const Image &i, std::vector<uint8_t> &p) {
         Wr32(p, i.Page(i.hhnsw) + SX__H_PA_CODES, Rd32(p, i.Page(i.hhnsw) + SX__H_PA_VEC));
       }},
      {"codes root missing",
       [](const Image &i, std::vector<uint8_t> &p) {
         Wr32(p, i.Page(i.hhnsw) + SX__H_PA_CODES, 0);
         Wr32(p, i.Page(i.hhnsw) + SX__H_PA_CODES + 4, 0);
       }},
  };
  for (const Case &c : cases) ASSERT_NO_FATAL_FAILURE(RunCase(*img_, c));
}

// Code records of the quantized HNSW collection (hnsw_quant.c: 16 header bytes, then
// kDim codes, padded to 16 bytes; none straddles a page): a header no encoding
// writes (a NaN or negative scale, an infinite norm) fails the searches that measure
// it; codes that differ from their vector's encoding are found by sx_db_check.
TEST_F(Corrupt, Codes) {
  constexpr size_t kRec = (16 + kDim + 15) & ~size_t(15);
  auto rec = [](uint32_t slot, size_t off, uint32_t v) {
    return [=](const Image &i, std::vector<uint8_t> &p) {
      size_t per = kPs / kRec;
      Wr32(p, i.Page(i.Leaf(i.hhnsw, SX__H_PA_CODES, slot / per)) + slot % per * kRec + off, v);
    };
  };
  const Case cases[] = {
      {"code scale NaN (slot 0)", rec(0, 4, 0x7fc00000u)},
      {"code scale negative (slot 200)", rec(200, 4, 0xbf800000u)},
      {"code norm infinite (slot 150)", rec(150, 8, 0x7f800000u)},
      {"code offset changed (slot 3)", rec(3, 0, 0x41200000u)},
      {"code bytes changed (slot 299)", rec(299, 16, 0x01020304u)},
      {"codes page zeroed",
       [](const Image &i, std::vector<uint8_t> &p) {
         memset(p.data() + i.Page(i.Leaf(i.hhnsw, SX__H_PA_CODES, 1)), 0, kPs);
       }},
      // The check encodes the stored vector again: a NaN there must not reach a
      // float-to-byte conversion (found by fuzz_file under clang's UBSan).
      {"vector component NaN (slot 7)",
       [](const Image &i, std::vector<uint8_t> &p) {
         Wr32(p, i.At(i.hhnsw, SX__H_PA_VEC, (7 * kDim + 2) * 4), 0x7fc00000u);
       }},
      {"flat vector component NaN (slot 9)",
       [](const Image &i, std::vector<uint8_t> &p) {
         Wr32(p, i.At(i.hflat, SX__H_PA_VEC, (9 * kDim + 5) * 4), 0xffc00001u);
       }},
      {"vector component infinite (slot 8)",
       [](const Image &i, std::vector<uint8_t> &p) {
         Wr32(p, i.At(i.hhnsw, SX__H_PA_VEC, 8 * kDim * 4), 0xff800000u);
       }},
  };
  for (const Case &c : cases) ASSERT_NO_FATAL_FAILURE(RunCase(*img_, c));
}

// The HNSW graph's arrays (m = 8: level-0 lists of 1 + 16 words, upper lists of
// 1 + 8), damaged one value at a time where the library reads them.
struct Graph {
  const Image &i;
  static constexpr uint32_t kM = 8, kE0 = (1 + 2 * kM) * 4, kEpp0 = kPs / kE0;
  uint32_t H() const {
    return i.hhnsw;
  }
  uint64_t NSlots() const {
    return Rd64(i.p, i.Page(H()) + SX__H_NSLOTS);
  }
  // Byte offset in the file of slot s's level-0 list (count, then links).
  size_t L0(uint64_t s) const {
    return i.Page(i.Leaf(H(), SX__H_PA_G0, s / kEpp0)) + (s % kEpp0) * kE0;
  }
  size_t Meta(uint64_t s) const {  // u32 level, u32 offset of its upper lists (words)
    return i.At(H(), SX__H_PA_META, s * 8);
  }
  size_t Upper(uint64_t word) const {
    return i.At(H(), SX__H_PA_UPPER, word * 4);
  }
  bool Live(uint64_t s) const {
    return i.p[i.At(H(), SX__H_PA_LIVE, s / 8)] >> (s % 8) & 1;
  }
  uint32_t Free0() const {
    return Rd32(i.p, i.At(H(), SX__H_PA_FREE, 0));
  }
  uint64_t Ep() const {
    return Rd32(i.p, i.Page(H()) + SX__H_HNSW_EP) - 1;
  }
  // The first live slot, other than the entry point, of level >= lv with >= links
  // level-0 links.
  uint64_t Node(uint32_t lv, uint32_t links = 1) const {
    for (uint64_t s = 0; s < NSlots(); s++)
      if (Live(s) && s != Ep() && Rd32(i.p, Meta(s)) >= lv && Rd32(i.p, L0(s)) >= links) return s;
    return UINT64_MAX;
  }
};

// Takes every link to the first live level-0 node (not the entry point) out of the
// level-0 lists.
void Orphan(const Image &i, std::vector<uint8_t> &p) {
  Graph g{i};
  const uint32_t x = (uint32_t)g.Node(0);
  for (uint64_t s = 0; s < g.NSlots(); s++) {
    size_t at = g.L0(s);
    uint32_t n = Rd32(p, at), k = 0;
    for (uint32_t j = 0; j < n && j < 2 * Graph::kM; j++) {
      uint32_t y = Rd32(p, at + 4 + 4 * j);
      if (y != x) Wr32(p, at + 4 + 4 * k++, y);
    }
    Wr32(p, at, k);
  }
}

TEST_F(Corrupt, HnswGraph) {
  {
    Graph gr{*img_};
    ASSERT_EQ(Rd32(img_->p, img_->Page(gr.H()) + SX__H_M), Graph::kM);
    ASSERT_LE(gr.NSlots(), 1024u) << "small enough for the reachability check";
    ASSERT_GT(Rd64(img_->p, img_->Page(gr.H()) + SX__H_NFREE), 0u);
    ASSERT_FALSE(gr.Live(gr.Free0()));
    ASSERT_NE(gr.Node(1, 2), UINT64_MAX) << "an upper-level node";
    ASSERT_EQ(Rd32(img_->p, gr.L0(gr.Free0())), 0u) << "a free slot has no links";
  }
  using P = std::vector<uint8_t>;
  const Case cases[] = {
      {"level-0 count past its capacity",
       [](const Image &i, P &p) {
         Graph g{i};
         Wr32(p, g.L0(g.Node(0)), 2 * Graph::kM + 1);
       }},
      {"level-0 count huge",
       [](const Image &i, P &p) {
         Graph g{i};
         Wr32(p, g.L0(g.Ep()), 0xfffffff0u);
       }},
      {"level-0 link past the slots",
       [](const Image &i, P &p) {
         Graph g{i};
         Wr32(p, g.L0(g.Node(0)) + 4, (uint32_t)g.NSlots() + 5);
       }},
      {"level-0 link to itself",
       [](const Image &i, P &p) {
         Graph g{i};
         uint64_t s = g.Node(0);
         Wr32(p, g.L0(s) + 4, (uint32_t)s);
       }},
      {"level-0 link twice in one list",
       [](const Image &i, P &p) {
         Graph g{i};
         uint64_t s = g.Node(0, 2);
         Wr32(p, g.L0(s) + 8, Rd32(p, g.L0(s) + 4));
       }},
      {"level-0 link to a free slot",
       [](const Image &i, P &p) {
         Graph g{i};
         Wr32(p, g.L0(g.Node(0)) + 4, g.Free0());
       }},
      {"a free slot with links",
       [](const Image &i, P &p) {
         Graph g{i};
         Wr32(p, g.L0(g.Free0()), 1);
         Wr32(p, g.L0(g.Free0()) + 4, (uint32_t)g.Ep());
       }},
      {"level 17",
       [](const Image &i, P &p) {
         Graph g{i};
         Wr32(p, g.Meta(g.Node(0)), 17);
       }},
      {"level 255",
       [](const Image &i, P &p) {
         Graph g{i};
         Wr32(p, g.Meta(g.Ep()), 255);
       }},
      {"a live node above the top level",
       [](const Image &i, P &p) {
         Graph g{i};
         uint32_t top = Rd32(p, i.Page(g.H()) + SX__H_HNSW_EP + 4);
         Wr32(p, g.Meta(g.Node(0)), top + 1);
       }},
      {"upper lists past the upper array",
       [](const Image &i, P &p) {
         Graph g{i};
         Wr32(p, g.Meta(g.Node(1)) + 4, (uint32_t)Rd64(p, i.Page(g.H()) + SX__H_UPPER_LEN));
       }},
      {"upper lists far past the upper array",
       [](const Image &i, P &p) {
         Graph g{i};
         Wr32(p, g.Meta(g.Node(1)) + 4, 0xfffffff0u);
       }},
      {"two nodes' upper lists overlap",
       [](const Image &i, P &p) {
         Graph g{i};
         uint64_t a = g.Node(1);
         Wr32(p, g.Meta(a) + 4, Rd32(p, g.Meta(g.Ep()) + 4));
       }},
      {"upper count past its capacity",
       [](const Image &i, P &p) {
         Graph g{i};
         Wr32(p, g.Upper(Rd32(p, g.Meta(g.Ep()) + 4)), Graph::kM + 1);
       }},
      {"upper link to a level-0 node",
       [](const Image &i, P &p) {
         Graph g{i};
         uint64_t w = Rd32(p, g.Meta(g.Ep()) + 4);
         uint64_t low = 0;
         while (Rd32(p, g.Meta(low)) != 0 || !g.Live(low)) low++;
         if (Rd32(p, g.Upper(w)) == 0) Wr32(p, g.Upper(w), 1);
         Wr32(p, g.Upper(w + 1), (uint32_t)low);
       }},
      {"entry point on a free slot",
       [](const Image &i, P &p) {
         Graph g{i};
         Wr32(p, i.Page(g.H()) + SX__H_HNSW_EP, g.Free0() + 1);
       }},
      {"entry point level is not the top",
       [](const Image &i, P &p) {
         Graph g{i};
         Wr32(p, i.Page(g.H()) + SX__H_HNSW_EP + 4, Rd32(p, g.Meta(g.Ep())) + 1);
       }},
      {"entry point level 200",
       [](const Image &i, P &p) {
         Graph g{i};
         Wr32(p, i.Page(g.H()) + SX__H_HNSW_EP + 4, 200);
       }},
      {"a live node no level-0 list links to", Orphan},
  };
  for (const Case &c : cases) ASSERT_NO_FATAL_FAILURE(RunCase(*img_, c));
}

// Reachability in a graph too large to be walked after every commit (more than
// 1,024 slots): it is walked whenever the nodes linked since the last walk reach
// 1/32 of it, and sx_db_check finds a node no walk can reach in a graph whose last
// commit walked it.
TEST(CorruptLarge, UnreachableNodeInALargeGraph) {
  const uint32_t n = 9000;
  Image img;
  {
    TmpDir t("corrupt-large");
    sx_error e = SX_ERROR_INIT;
    sx_db *d = nullptr;
    sx_open_options oo = SX_OPEN_OPTIONS_INIT;
    oo.sync = SX_SYNC_OFF;
    ASSERT_NO_FATAL_FAILURE(Check(sx_db_open(&d, t.db.c_str(), &oo, &e), e));
    sx_write *w = nullptr;
    ASSERT_NO_FATAL_FAILURE(Check(sx_write_begin(d, -1, &w, &e), e));
    sx_collection_options co = SX_COLLECTION_OPTIONS_INIT;
    co.dim = kDim;
    co.index = SX_INDEX_HNSW;
    co.hnsw_m = Graph::kM;
    co.hnsw_ef_construction = 16;
    ASSERT_NO_FATAL_FAILURE(Check(sx_write_create_collection(w, "hnsw", &co, &e), e));
    std::vector<float> v = sxt::Gen(17, n, kDim);
    std::vector<std::string> ids;
    for (uint32_t i = 0; i < n; i++) ids.push_back("id" + std::to_string(i));
    std::vector<const char *> ip;
    for (auto &s : ids) ip.push_back(s.c_str());
    ASSERT_NO_FATAL_FAILURE(
        Check(sx_write_upsert(w, "hnsw", n, ip.data(), v.data(), kDim, nullptr, &e), e));
    ASSERT_NO_FATAL_FAILURE(Check(sx_write_commit(w, &e), e));
    sx_write_free(w);
    ASSERT_NO_FATAL_FAILURE(Check(sx_db_check(d, &e), e));
    ASSERT_EQ(sx_db_close(d), SX_OK);
    sx_db_free(d);
    ASSERT_NO_FATAL_FAILURE(ReadImage(t.db, 1, &img));
  }
  Graph g{img};
  ASSERT_GT(g.NSlots(), 1024u);
  ASSERT_EQ(Rd64(img.p, img.Page(g.H()) + SX__H_LINK_DEBT), 1u) << "walked: no debt";
  ASSERT_NO_FATAL_FAILURE(RunCase(img, {"a node no level-0 list links to, 9,000 slots", Orphan}));
}

// The free list: through a live page, in a cycle, past the end, a count that lies.
TEST_F(Corrupt, FreeList) {
  const Case cases[] = {
      {"free list head is a live collection header",
       [](const Image &i, std::vector<uint8_t> &p) { Wr32(p, kP0FreeHead, i.hflat); }},
      {"free list head is a live vector page",
       [](const Image &i, std::vector<uint8_t> &p) {
         Wr32(p, kP0FreeHead, i.Leaf(i.hhnsw, SX__H_PA_VEC, 0));
       }},
      {"free list head is the catalog",
       [](const Image &i, std::vector<uint8_t> &p) {
         Wr32(p, kP0FreeHead, i.cat);
         Wr32(p, kP0FreeCount, 1);
       }},
      {"free list runs into a live page",
       [](const Image &i, std::vector<uint8_t> &p) {
         Wr32(p, i.Page(Rd32(p, kP0FreeHead)), i.Leaf(i.hflat, SX__H_PA_SLOTS, 0));
       }},
      {"free list in a cycle",
       [](const Image &i, std::vector<uint8_t> &p) {
         uint32_t h = Rd32(p, kP0FreeHead);
         Wr32(p, i.Page(h), h);
         Wr32(p, kP0FreeCount, 100000);
       }},
      {"free list in a cycle, count kept",
       [](const Image &i, std::vector<uint8_t> &p) {
         uint32_t h = Rd32(p, kP0FreeHead);
         Wr32(p, i.Page(h), h);
       }},
      {"free list head past the end",
       [](const Image &i, std::vector<uint8_t> &p) { Wr32(p, kP0FreeHead, i.npages + 1); }},
      {"free count too big",
       [](const Image &i, std::vector<uint8_t> &p) { Wr32(p, kP0FreeCount, 0xffffffffu); }},
      {"free list is page 0",
       [](const Image &i, std::vector<uint8_t> &p) {
         Wr32(p, i.Page(Rd32(p, kP0FreeHead)), 0);
         Wr32(p, kP0FreeHead, 0);
       }},
  };
  for (const Case &c : cases) ASSERT_NO_FATAL_FAILURE(RunCase(*img_, c));
}

// Slot records, metadata, the id map.
TEST_F(Corrupt, Records) {
  auto slot = [](bool hnsw, uint64_t s, unsigned field, uint64_t v, bool wide) {
    return [=](const Image &i, std::vector<uint8_t> &p) {
      size_t at = i.At(hnsw ? i.hhnsw : i.hflat, SX__H_PA_SLOTS, s * SX__SLOT_SIZE) + field;
      if (wide)
        Wr64(p, at, v);
      else
        Wr32(p, at, (uint32_t)v);
    };
  };
  auto fill_hash = [](bool hnsw) {
    return [=](const Image &i, std::vector<uint8_t> &p) {
      uint32_t owner = hnsw ? i.hhnsw : i.hflat;
      uint64_t cap = Rd64(p, i.Page(owner) + SX__H_HASHCAP);
      for (uint64_t k = 0; k < cap; k++)
        Wr64(p, i.At(owner, SX__H_PA_HASH, k * 8), (0x9e3779b9ull << 32) | 1);
    };
  };
  const Case cases[] = {
      {"id offset past the heap", slot(false, 0, 0, 1ull << 40, true)},
      {"id offset wraps", slot(false, 1, 0, ~0ull - 2, true)},
      {"id length 0", slot(true, 2, 8, 0, false)},
      {"id length 4000", slot(true, 3, 8, 4000, false)},
      {"meta length huge", slot(false, 4, 12, 0xfffffff0u, false)},
      {"hnsw meta length huge", slot(true, 5, 12, 0x7fffffffu, false)},
      {"meta offset past the heap", slot(false, 6, 16, 1ull << 50, true)},
      {"meta offset wraps", slot(true, 7, 16, ~0ull - 5, true)},
      {"id map with no empty entry", fill_hash(false)},
      {"hnsw id map with no empty entry", fill_hash(true)},
      {"id map entry names a slot past the end",
       [](const Image &i, std::vector<uint8_t> &p) {
         uint64_t cap = Rd64(p, i.Page(i.hflat) + SX__H_HASHCAP);
         for (uint64_t k = 0; k < cap; k++) {
           size_t at = i.At(i.hflat, SX__H_PA_HASH, k * 8);
           uint64_t e = Rd64(p, at);
           if (e) Wr64(p, at, (e & 0xffffffff00000000ull) | 0xfffffff0u);
         }
       }},
      {"free slot past the end",
       [](const Image &i, std::vector<uint8_t> &p) {
         Wr32(p, i.At(i.hflat, SX__H_PA_FREE, 0), 0x0fffffffu);
       }},
  };
  for (const Case &c : cases) ASSERT_NO_FATAL_FAILURE(RunCase(*img_, c));
}

// Page 0: page size, version, magic give errors at open.
TEST_F(Corrupt, HeaderPage) {
  const Case cases[] = {
      {"page size 0", [](const Image &, std::vector<uint8_t> &p) { Wr32(p, 20, 0); }},
      {"page size 3000", [](const Image &, std::vector<uint8_t> &p) { Wr32(p, 20, 3000); }},
      {"page size 8192 in a 4096 file",
       [](const Image &, std::vector<uint8_t> &p) { Wr32(p, 20, 8192); }},
      {"magic", [](const Image &, std::vector<uint8_t> &p) { p[3] ^= 0x20; }},
  };
  for (const Case &c : cases) {
    SCOPED_TRACE(c.name);
    TmpDir t("corrupt");
    ASSERT_TRUE(WritePlanted(t.db, *img_, c.plant));
    sx_db *d = nullptr;
    sx_error e = SX_ERROR_INIT;
    sx_status rc = sx_db_open(&d, t.db.c_str(), nullptr, &e);
    if (rc == SX_OK) {
      // A page size that the file's length allows: everything else must catch it.
      sx_db_close(d);
      sx_db_free(d);
      alarm(120);
      EXPECT_EQ(Exercise(t.db), SX_CORRUPT);
      alarm(0);
    } else {
      EXPECT_EQ(rc, SX_CORRUPT) << e.message;
    }
  }
}

}  // namespace

namespace {

// A free list that leads into pages in use must never hand one out: the write that
// would take it fails with SX_CORRUPT, and the committed data stays as it was.
TEST_F(Corrupt, FreeListNeverHandsOutALivePage) {
  const Case cases[] = {
      {"free list head is a live collection header",
       [](const Image &i, std::vector<uint8_t> &p) { Wr32(p, kP0FreeHead, i.hflat); }},
      {"free list runs into a live slots page",
       [](const Image &i, std::vector<uint8_t> &p) {
         Wr32(p, i.Page(Rd32(p, kP0FreeHead)), i.Leaf(i.hflat, SX__H_PA_SLOTS, 0));
       }},
      {"free list in a cycle, count kept",
       [](const Image &i, std::vector<uint8_t> &p) {
         uint32_t h = Rd32(p, kP0FreeHead);
         Wr32(p, i.Page(h), h);
       }},
  };
  std::vector<float> v = sxt::Gen(11, 2000, kDim);
  std::vector<std::string> ids;
  for (int k = 0; k < 2000; k++) ids.push_back("bulk" + std::to_string(k));
  std::vector<const char *> ip;
  for (auto &s : ids) ip.push_back(s.c_str());
  for (const Case &c : cases) {
    SCOPED_TRACE(c.name);
    TmpDir t("corrupt");
    ASSERT_TRUE(WritePlanted(t.db, *img_, c.plant));
    sx_db *d = nullptr;
    sx_error e = SX_ERROR_INIT;
    sx_open_options oo = SX_OPEN_OPTIONS_INIT;
    oo.threads = 1;
    ASSERT_EQ(sx_db_open(&d, t.db.c_str(), &oo, &e), SX_OK) << e.message;
    // Small commits, one new page each (a collection header), then one large
    // enough to run through the whole free list: the first that meets the damage
    // fails, and none before it took a page in use.
    sx_status rc = SX_OK;
    int made = 0;
    for (; made < 20 && rc == SX_OK; made++) {
      sx_write *w = nullptr;
      ASSERT_EQ(sx_write_begin(d, -1, &w, &e), SX_OK) << e.message;
      sx_collection_options co = SX_COLLECTION_OPTIONS_INIT;
      co.dim = 4;
      co.index = SX_INDEX_FLAT;
      std::string name = "x" + std::to_string(made);
      rc = sx_write_create_collection(w, name.c_str(), &co, &e);
      if (rc == SX_OK)
        rc = sx_write_commit(w, &e);
      else
        sx_write_abort(w);
      sx_write_free(w);
    }
    if (rc == SX_OK) {
      sx_write *w = nullptr;
      ASSERT_EQ(sx_write_begin(d, -1, &w, &e), SX_OK) << e.message;
      rc = sx_write_upsert(w, "hnsw", ip.size(), ip.data(), v.data(), kDim, nullptr, &e);
      if (rc == SX_OK)
        rc = sx_write_commit(w, &e);
      else
        sx_write_abort(w);
      sx_write_free(w);
    }
    EXPECT_EQ(rc, SX_CORRUPT) << e.message;
    // What was committed is intact.
    sx_read *r = nullptr;
    ASSERT_EQ(sx_read_begin(d, &r, &e), SX_OK) << e.message;
    for (const char *name : {"flat", "hnsw"}) {
      sx_collection *col = nullptr;
      ASSERT_EQ(sx_read_collection(r, name, &col, &e), SX_OK) << e.message;
      uint64_t n = 0;
      EXPECT_EQ(sx_collection_count(col, &n, &e), SX_OK) << e.message;
      EXPECT_EQ(n, kN - 40u) << name;
      sx_record *rec = nullptr;
      EXPECT_EQ(sx_collection_get(col, "id299", &rec, &e), SX_OK) << name << ": " << e.message;
      sx_record_free(rec);
      sx_collection_free(col);
    }
    for (int k = 0; k + 1 < made; k++) {
      sx_collection *col = nullptr;
      std::string name = "x" + std::to_string(k);
      EXPECT_EQ(sx_read_collection(r, name.c_str(), &col, &e), SX_OK) << name << ": " << e.message;
      sx_collection_info info = SX_COLLECTION_INFO_INIT;
      if (col) {
        EXPECT_EQ(sx_collection_describe(col, &info, &e), SX_OK) << name << ": " << e.message;
      }
      sx_collection_free(col);
    }
    sx_read_free(r);
    EXPECT_EQ(sx_db_check(d, &e), SX_CORRUPT);
    sx_db_close(d);
    sx_db_free(d);
  }
}

}  // namespace

namespace {

// Page checksums (pager_int.h, "Page checksums"): one byte flipped in one page of P,
// the checksums left as they were. The first read that takes the page gives
// SX_CORRUPT naming it, sx_db_check names it, and every other call stays harmless.
TEST_F(Corrupt, PageChecksums) {
  struct Where {
    const char *name;
    std::function<uint32_t(const Image &, const std::vector<uint8_t> &)> page;
    // A call that reads the page: a search or get, or a write that allocates.
    std::function<sx_status(sx_db *, sx_error *)> touch;
  };
  auto get = [](const char *coll) {
    return [coll](sx_db *d, sx_error *e) {
      sx_read *r = nullptr;
      sx_status rc = sx_read_begin(d, &r, e);
      sx_collection *c = nullptr;
      if (rc == SX_OK) rc = sx_read_collection(r, coll, &c, e);
      sx_record *rec = nullptr;
      if (rc == SX_OK) rc = sx_collection_get(c, "id0", &rec, e);
      sx_record_free(rec);
      std::vector<float> q = sxt::Gen(3, 1, kDim);
      sx_search_options so = SX_SEARCH_OPTIONS_INIT;
      so.threads = 1;
      sx_results *res = nullptr;
      if (rc == SX_OK) rc = sx_collection_search(c, q.data(), kDim, 5, &so, &res, e);
      sx_results_free(res);
      sx_collection_free(c);
      sx_read_free(r);
      return rc;
    };
  };
  auto create = [](sx_db *d, sx_error *e) {
    // Enough new pages to take every free one.
    sx_write *w = nullptr;
    sx_status rc = sx_write_begin(d, 1000, &w, e);
    for (int k = 0; rc == SX_OK && k < 64; k++) {
      sx_collection_options co = SX_COLLECTION_OPTIONS_INIT;
      co.dim = 4;
      co.index = SX_INDEX_FLAT;
      rc = sx_write_create_collection(w, ("n" + std::to_string(k)).c_str(), &co, e);
    }
    if (rc == SX_OK) rc = sx_write_commit(w, e);
    sx_write_free(w);
    return rc;
  };
  const Where where[] = {
      {"page 0 (its upper layers' part)",
       [](const Image &, const std::vector<uint8_t> &) { return 0u; }, get("flat")},
      {"catalog page", [](const Image &i, const std::vector<uint8_t> &) { return i.cat; },
       get("flat")},
      {"collection header", [](const Image &i, const std::vector<uint8_t> &) { return i.hflat; },
       get("flat")},
      {"flat vectors page",
       [](const Image &i, const std::vector<uint8_t> &) {
         return i.Leaf(i.hflat, SX__H_PA_VEC, 0);
       },
       get("flat")},
      {"metadata heap page",
       [](const Image &i, const std::vector<uint8_t> &) {
         return i.Leaf(i.hflat, SX__H_PA_HEAP, 0);
       },
       get("flat")},
      {"HNSW graph page",
       [](const Image &i, const std::vector<uint8_t> &) { return i.Leaf(i.hhnsw, SX__H_PA_G0, 0); },
       get("hnsw")},
      {"free-list page",
       [](const Image &, const std::vector<uint8_t> &p) { return Rd32(p, kP0FreeHead); }, create},
  };
  for (const Where &wh : where) {
    SCOPED_TRACE(wh.name);
    std::vector<uint8_t> p = img_->p;
    uint32_t pg = wh.page(*img_, p);
    ASSERT_LT(pg, img_->npages);
    size_t at = img_->Page(pg) + (pg == 0 ? 1000 : 2000);
    p[at] ^= 0x10;
    std::string want = "page " + std::to_string(pg) + " of '";
    TmpDir t("cksum");
    ASSERT_TRUE(WriteAll(t.db, p));
    sx_db *d = nullptr;
    sx_error e = SX_ERROR_INIT;
    ASSERT_EQ(sx_db_open(&d, t.db.c_str(), nullptr, &e), SX_OK) << e.message;
    sx_status rc = wh.touch(d, &e);
    EXPECT_EQ(rc, SX_CORRUPT) << e.message;
    EXPECT_NE(strstr(e.message, want.c_str()), nullptr) << e.message;
    EXPECT_NE(strstr(e.message, "checksum mismatch"), nullptr) << e.message;
    // Again: a page that failed is not taken as verified.
    e = SX_ERROR_INIT;
    EXPECT_EQ(wh.touch(d, &e), SX_CORRUPT) << e.message;
    e = SX_ERROR_INIT;
    EXPECT_EQ(sx_db_check(d, &e), SX_CORRUPT);
    EXPECT_NE(strstr(e.message, want.c_str()), nullptr) << e.message;
    EXPECT_NE(strstr(e.message, "checksum mismatch"), nullptr) << e.message;
    sx_db_close(d);
    sx_db_free(d);
    // And every other call on the damaged file is harmless.
    ASSERT_NO_FATAL_FAILURE(RunCase(
        *img_, {wh.name, [&](const Image &, std::vector<uint8_t> &q) { q[at] ^= 0x10; }}, false));
  }
}

// A damaged checksum page: the pages it covers fail their checks.
TEST_F(Corrupt, ChecksumPage) {
  std::vector<uint8_t> p = img_->p;
  uint32_t vp = img_->Leaf(img_->hflat, SX__H_PA_VEC, 0);
  p[sx__pfile_cksum_page(kPs, vp) * kPs + (vp % (kPs / 4)) * 4] ^= 1;
  TmpDir t("cksum");
  ASSERT_TRUE(WriteAll(t.db, p));
  sx_db *d = nullptr;
  sx_error e = SX_ERROR_INIT;
  ASSERT_EQ(sx_db_open(&d, t.db.c_str(), nullptr, &e), SX_OK) << e.message;
  EXPECT_EQ(sx_db_check(d, &e), SX_CORRUPT);
  EXPECT_NE(strstr(e.message, ("page " + std::to_string(vp) + " of '").c_str()), nullptr)
      << e.message;
  sx_db_close(d);
  sx_db_free(d);
}

// sx_db_check finds every page in exactly one place: a page lost (in no structure
// and not free) and a page in two places, each named.
TEST_F(Corrupt, PagesInOnePlace) {
  struct C {
    const char *name;
    std::function<void(const Image &, std::vector<uint8_t> &)> plant;
    std::function<std::string(const Image &)> want;
  };
  const C cases[] = {
      {"free list cut short: its first page lost",
       [](const Image &, std::vector<uint8_t> &p) {
         uint32_t h = Rd32(p, kP0FreeHead);
         Wr32(p, kP0FreeHead, Rd32(p, (size_t)sx__pfile_page(kPs, h) * kPs));
         Wr32(p, kP0FreeCount, Rd32(p, kP0FreeCount) - 1);
       },
       [](const Image &i) {
         return "1 page of '%' (page " + std::to_string(Rd32(i.p, kP0FreeHead)) + " first) is";
       }},
      {"a page past the last that nothing uses",
       [](const Image &i, std::vector<uint8_t> &p) {
         p.resize(sx__pfile_pages(kPs, i.npages + 1) * kPs);
       },
       [](const Image &i) {
         return "1 page of '%' (page " + std::to_string(i.npages) + " first) is neither";
       }},
      {"two collections share their vectors' root",
       [](const Image &i, std::vector<uint8_t> &p) {
         size_t f = i.Page(i.hflat) + SX__H_PA_VEC, h = i.Page(i.hhnsw) + SX__H_PA_VEC;
         Wr32(p, h, Rd32(p, f));
         Wr32(p, h + 4, Rd32(p, f + 4));
       },
       [](const Image &i) {
         return "page " + std::to_string(Rd32(i.p, i.Page(i.hflat) + SX__H_PA_VEC)) +
                " of % is in two places";
       }},
      {"a free page also in use",
       [](const Image &i, std::vector<uint8_t> &p) {
         uint32_t h = Rd32(p, kP0FreeHead), leaf = i.Leaf(i.hflat, SX__H_PA_SLOTS, 0);
         Wr32(p, (size_t)sx__pfile_page(kPs, h) * kPs, leaf);
       },
       [](const Image &i) {
         return "free page " + std::to_string(i.Leaf(i.hflat, SX__H_PA_SLOTS, 0)) +
                " of '%' is not empty: the free list leads into a page in use";
       }},
  };
  for (const C &c : cases) {
    SCOPED_TRACE(c.name);
    TmpDir t("oneplace");
    ASSERT_TRUE(WritePlanted(t.db, *img_, c.plant));
    sx_db *d = nullptr;
    sx_error e = SX_ERROR_INIT;
    ASSERT_EQ(sx_db_open(&d, t.db.c_str(), nullptr, &e), SX_OK) << e.message;
    EXPECT_EQ(sx_db_check(d, &e), SX_CORRUPT);
    // The expected message, the path (quoted or not) written as %.
    std::string want = c.want(*img_), got = e.message;
    size_t cut = want.find('%');
    EXPECT_NE(got.find(want.substr(0, cut)), std::string::npos) << got;
    EXPECT_NE(got.find(want.substr(cut + 1)), std::string::npos) << got;
    sx_db_close(d);
    sx_db_free(d);
    ASSERT_NO_FATAL_FAILURE(RunCase(*img_, {c.name, c.plant}));
  }
}

}  // namespace
