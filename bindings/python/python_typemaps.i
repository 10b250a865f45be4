/*
 * python_typemaps.i: the Python half of bindings/sextant.i (included from there).
 *
 * The low-level module this produces (sextant._sextant) is private: the package
 * sextant is its only caller, and checks types and shapes before calling. The module
 * is still safe on its own: every pointer and length it hands to C comes from an
 * object it checked here, so a bad call is a Python exception, never a crash.
 *
 * Conventions
 * - Errors are raised as the classes that sextant/_errors.py registers through
 *   sx_py_register() (one per sx_status; RuntimeError before registration). The
 *   message is the C sx_error message.
 * - The GIL is released around every call into the core that can wait or work
 *   (swig -threads; %nothread below marks the trivial ones). Everything that touches
 *   a Python object runs in typemaps, with the GIL held, before or after the call;
 *   objects whose memory C reads during the call are kept alive and locked until
 *   after it (strings through a tuple copy of the caller's list, arrays through
 *   buffer exports, which also keep numpy from resizing them).
 * - Results that are copied out and freed at once (names, records, search results)
 *   never reach Python as handles; their accessor functions are not wrapped here.
 *
 * Hand-written additions (documented as such in bindings/python/README.md):
 * sx_py_register(), the cancel-hook trampoline for sx_search_options, and
 * sx_py_bench_search() for the overhead benchmark.
 */

%{
#include <limits.h>
#include <math.h>
#include <time.h>

/* Exception classes by status (strong references), and the Hit NamedTuple. */
static PyObject *sx_py_errors[SX_STATUS_COUNT];
static PyObject *sx_py_hit_type;

/* Plain-language messages for calls that have no sx_error (close, end, abort). */
static const char *sx_py_default_message(int code) {
  switch (code) {
    case SX_CLOSED: return "the handle was closed or its session already ended";
    case SX_MISUSE: return "the call is not allowed on this handle (NULL, or begun before fork())";
    case SX_INVALID_ARGUMENT: return "invalid argument";
    default: return sx_status_name(code);
  }
}

/* Sets the Python exception for status `code` with message `msg`. */
static void sx_py_raise(int code, const char *msg) {
  PyObject *cls = PyExc_RuntimeError;
  if (code > 0 && code < SX_STATUS_COUNT && sx_py_errors[code]) cls = sx_py_errors[code];
  if (!msg || !*msg) msg = sx_py_default_message(code);
  /* A message truncated to SX_ERROR_MESSAGE_MAX may end inside a UTF-8 sequence. */
  PyObject *m = PyUnicode_DecodeUTF8(msg, (Py_ssize_t)strlen(msg), "replace");
  if (!m) return;
  PyErr_SetObject(cls, m);
  Py_DECREF(m);
}

/* A C string from a str (UTF-8, owned by the str) or bytes; none may hold a NUL. */
static int sx_py_cstr(PyObject *o, const char *what, Py_ssize_t index, const char **out) {
  const char *s;
  Py_ssize_t n;
  char where[96];
  if (index >= 0) snprintf(where, sizeof where, "%s[%zd]", what, index);
  else snprintf(where, sizeof where, "%s", what);
  if (PyUnicode_Check(o)) {
    s = PyUnicode_AsUTF8AndSize(o, &n);
    if (!s) {
      if (!PyErr_ExceptionMatches(PyExc_UnicodeError)) return -1;
      PyErr_Clear();
      char msg[160];
      snprintf(msg, sizeof msg, "%s is not valid UTF-8 text (it holds a lone surrogate)", where);
      sx_py_raise(SX_INVALID_ARGUMENT, msg);
      return -1;
    }
  } else if (PyBytes_Check(o)) {
    s = PyBytes_AS_STRING(o);
    n = PyBytes_GET_SIZE(o);
  } else {
    PyErr_Format(PyExc_TypeError, "%s must be str, not %.80s", where, Py_TYPE(o)->tp_name);
    return -1;
  }
  if ((size_t)n != strlen(s)) {
    char msg[160];
    snprintf(msg, sizeof msg, "%s contains a NUL character", where);
    sx_py_raise(SX_INVALID_ARGUMENT, msg);
    return -1;
  }
  *out = s;
  return 0;
}

/* n C strings from a sequence of str (entries may be None when allow_none). The
 * strings live in *keep, a tuple copy, so that no other thread can free them while
 * the core reads them with the GIL released. *arr is PyMem_Malloc'ed. */
static int sx_py_strings(PyObject *o, const char *what, int allow_none, PyObject **keep,
                         const char ***arr, size_t *n) {
  *keep = NULL;
  *arr = NULL;
  *n = 0;
  if (PyUnicode_Check(o) || PyBytes_Check(o) || PyByteArray_Check(o) || PyMemoryView_Check(o)) {
    PyErr_Format(PyExc_TypeError, "%s must be a sequence of str, not a single %.80s", what,
                 Py_TYPE(o)->tp_name);
    return -1;
  }
  PyObject *t = PySequence_Tuple(o);
  if (!t) return -1;
  Py_ssize_t len = PyTuple_GET_SIZE(t);
  const char **a = PyMem_Malloc((size_t)(len > 0 ? len : 1) * sizeof *a);
  if (!a) {
    Py_DECREF(t);
    PyErr_NoMemory();
    return -1;
  }
  for (Py_ssize_t i = 0; i < len; i++) {
    PyObject *item = PyTuple_GET_ITEM(t, i);
    if (allow_none && item == Py_None) {
      a[i] = NULL;
    } else if (sx_py_cstr(item, what, i, &a[i]) < 0) {
      PyMem_Free(a);
      Py_DECREF(t);
      return -1;
    }
  }
  *keep = t;
  *arr = a;
  *n = (size_t)len;
  return 0;
}

/* A read-only view of a C-contiguous buffer of native float32 with `ndim` dimensions. */
static int sx_py_floats(PyObject *o, const char *what, int ndim, Py_buffer *view) {
  if (PyObject_GetBuffer(o, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
    if (PyErr_ExceptionMatches(PyExc_BufferError) || PyErr_ExceptionMatches(PyExc_TypeError) ||
        PyErr_ExceptionMatches(PyExc_ValueError)) { /* numpy: ValueError for a strided array */
      PyErr_Clear();
      PyErr_Format(PyExc_TypeError, "%s must be a C-contiguous float32 buffer, not %.80s", what,
                   Py_TYPE(o)->tp_name);
    }
    return -1;
  }
  const char *f = view->format ? view->format : "B";
  if (*f == '@' || *f == '=' || *f == '<') f++; /* Linux targets are little-endian */
  if (view->itemsize != 4 || strcmp(f, "f") != 0 || view->ndim != ndim) {
    PyErr_Format(PyExc_TypeError, "%s must be a %d-dimensional float32 array (got format '%s', %d dimensions)",
                 what, ndim, view->format ? view->format : "B", view->ndim);
    PyBuffer_Release(view);
    return -1;
  }
  return 0;
}

/* The cancel hook of sx_search_options: calls a Python callable, from whichever
 * thread the core polls on (the calling thread, with the GIL released, or a search
 * worker). A true result cancels; an exception is reported as unraisable and
 * cancels too. */
static int sx_py_cancel(void *ctx) {
  PyGILState_STATE g = PyGILState_Ensure();
  int stop = 1;
  PyObject *r = PyObject_CallObject((PyObject *)ctx, NULL);
  if (r) {
    stop = PyObject_IsTrue(r);
    Py_DECREF(r);
    if (stop < 0) stop = 1;
  }
  if (PyErr_Occurred()) PyErr_WriteUnraisable((PyObject *)ctx);
  PyGILState_Release(g);
  return stop;
}

/* A Hit(id, distance): an instance of the registered NamedTuple, built the way
 * CPython builds tuple subclasses (tp_alloc, then the items), or a plain tuple. */
static PyObject *sx_py_hit(const char *id, float distance) {
  PyObject *pid = PyUnicode_DecodeUTF8(id, (Py_ssize_t)strlen(id), "surrogateescape");
  if (!pid) return NULL;
  PyObject *pd = PyFloat_FromDouble((double)distance);
  if (!pd) {
    Py_DECREF(pid);
    return NULL;
  }
  PyObject *t = sx_py_hit_type ? ((PyTypeObject *)sx_py_hit_type)->tp_alloc((PyTypeObject *)sx_py_hit_type, 2)
                               : PyTuple_New(2);
  if (!t) {
    Py_DECREF(pid);
    Py_DECREF(pd);
    return NULL;
  }
  PyTuple_SET_ITEM(t, 0, pid);
  PyTuple_SET_ITEM(t, 1, pd);
  return t;
}

/* What a search included (sx_search_options.include), laid out as width hits per
 * query: (metadata, vectors, dim) with metadata a list of str or None (None as a whole
 * when not included) and vectors a bytearray of nq * width * dim float32 (NaN where
 * there is no hit; None when not included). */
static PyObject *sx_py_included(sx_results *res, size_t nq, size_t width) {
  const size_t *moff = NULL;
  const char *mdata = sx_results_metadata_data(res, &moff);
  const float *vdata = sx_results_vectors(res);
  size_t dim = sx_results_dim(res);
  PyObject *metas = Py_None, *vecs = Py_None;
  Py_INCREF(metas);
  Py_INCREF(vecs);
  if (mdata) {
    Py_DECREF(metas);
    metas = PyList_New((Py_ssize_t)(nq * width));
    for (size_t q = 0, j = 0; metas && q < nq; q++) {
      size_t c = sx_results_count(res, q), h0 = sx_results_offsets(res)[q];
      for (size_t i = 0; i < width; i++, j++) {
        PyObject *m;
        if (i < c && moff[h0 + i + 1] > moff[h0 + i])
          m = PyUnicode_DecodeUTF8(mdata + moff[h0 + i], (Py_ssize_t)(moff[h0 + i + 1] - moff[h0 + i] - 1),
                                   "surrogateescape");
        else
          m = (Py_INCREF(Py_None), Py_None);
        if (!m) {
          Py_CLEAR(metas);
          break;
        }
        PyList_SET_ITEM(metas, (Py_ssize_t)j, m);
      }
    }
  }
  if (metas && vdata) {
    Py_DECREF(vecs);
    vecs = PyByteArray_FromStringAndSize(NULL, (Py_ssize_t)(nq * width * dim * sizeof(float)));
    if (vecs) {
      float *d = (float *)PyByteArray_AS_STRING(vecs);
      for (size_t q = 0; q < nq; q++) {
        size_t c = sx_results_count(res, q), h0 = sx_results_offsets(res)[q];
        for (size_t i = 0; i < width; i++, d += dim) {
          if (i < c) memcpy(d, vdata + (h0 + i) * dim, dim * sizeof(float));
          else for (size_t x = 0; x < dim; x++) d[x] = NAN;
        }
      }
    }
  }
  PyObject *out = metas && vecs ? Py_BuildValue("(OOn)", metas, vecs, (Py_ssize_t)dim) : NULL;
  Py_XDECREF(metas);
  Py_XDECREF(vecs);
  return out;
}

/* sx_collection_search: a list of Hit; when the search included metadata or vectors,
 * (hits, metadata, vectors, dim) as sx_py_included gives them. Frees res. */
static PyObject *sx_py_results_sx_collection_search(sx_results *res) {
  if (!res) Py_RETURN_NONE;
  size_t n = sx_results_count(res, 0);
  PyObject *list = PyList_New((Py_ssize_t)n);
  for (size_t i = 0; list && i < n; i++) {
    PyObject *h = sx_py_hit(sx_results_id(res, 0, i), sx_results_distance(res, 0, i));
    if (!h) Py_CLEAR(list);
    else PyList_SET_ITEM(list, (Py_ssize_t)i, h);
  }
  if (list && (sx_results_metadata_data(res, NULL) || sx_results_vectors(res))) {
    PyObject *inc = sx_py_included(res, 1, n);
    PyObject *out = inc ? Py_BuildValue("(ON)", list, inc) : NULL;
    Py_DECREF(list);
    list = out;
  }
  sx_results_free(res);
  return list;
}

/* sx_collection_search_batch: (nq, width, ids, distances) with width the largest hit
 * count, ids a flat list of nq * width str or None, distances a bytearray of nq *
 * width native float32 (NaN where there is no hit). Frees res. */
static PyObject *sx_py_results_sx_collection_search_batch(sx_results *res) {
  if (!res) Py_RETURN_NONE;
  size_t nq = sx_results_queries(res), width = 0;
  for (size_t q = 0; q < nq; q++) {
    size_t c = sx_results_count(res, q);
    if (c > width) width = c;
  }
  PyObject *ids = PyList_New((Py_ssize_t)(nq * width));
  PyObject *dist = ids ? PyByteArray_FromStringAndSize(NULL, (Py_ssize_t)(nq * width * sizeof(float))) : NULL;
  PyObject *out = NULL;
  if (dist) {
    float *d = (float *)PyByteArray_AS_STRING(dist);
    size_t j = 0;
    for (size_t q = 0; q < nq && ids; q++) {
      size_t c = sx_results_count(res, q);
      for (size_t i = 0; i < width; i++, j++) {
        PyObject *id;
        if (i < c) {
          const char *s = sx_results_id(res, q, i);
          id = PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "surrogateescape");
          d[j] = sx_results_distance(res, q, i);
        } else {
          id = Py_None;
          Py_INCREF(id);
          d[j] = NAN;
        }
        if (!id) {
          Py_CLEAR(ids);
          break;
        }
        PyList_SET_ITEM(ids, (Py_ssize_t)j, id);
      }
    }
    if (ids && (sx_results_metadata_data(res, NULL) || sx_results_vectors(res))) {
      /* (nq, width, ids, distances, (metadata, vectors, dim)) */
      PyObject *inc = sx_py_included(res, nq, width);
      if (inc) out = Py_BuildValue("(nnOON)", (Py_ssize_t)nq, (Py_ssize_t)width, ids, dist, inc);
    } else if (ids) {
      out = Py_BuildValue("(nnOO)", (Py_ssize_t)nq, (Py_ssize_t)width, ids, dist);
    }
  }
  Py_XDECREF(ids);
  Py_XDECREF(dist);
  sx_results_free(res);
  return out;
}

/* A record as (id, vector as a bytearray of float32, metadata text or None). Frees rec. */
static PyObject *sx_py_record(sx_record *rec) {
  if (!rec) Py_RETURN_NONE;
  size_t dim = 0;
  const float *v = sx_record_vector(rec, &dim);
  const char *id = sx_record_id(rec), *meta = sx_record_metadata(rec);
  PyObject *out = Py_BuildValue("(NNN)",
      PyUnicode_DecodeUTF8(id, (Py_ssize_t)strlen(id), "surrogateescape"),
      PyByteArray_FromStringAndSize((const char *)v, (Py_ssize_t)(dim * sizeof(float))),
      meta ? PyUnicode_DecodeUTF8(meta, (Py_ssize_t)strlen(meta), "surrogateescape")
           : (Py_INCREF(Py_None), Py_None));
  sx_record_free(rec);
  return out;
}

/* A list of str. Frees names. */
static PyObject *sx_py_names(sx_names *names) {
  if (!names) Py_RETURN_NONE;
  size_t n = sx_names_count(names);
  PyObject *list = PyList_New((Py_ssize_t)n);
  for (size_t i = 0; list && i < n; i++) {
    const char *s = sx_names_get(names, i);
    PyObject *o = PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "surrogateescape");
    if (!o) Py_CLEAR(list);
    else PyList_SET_ITEM(list, (Py_ssize_t)i, o);
  }
  sx_names_free(names);
  return list;
}
%}

/* ---- registration (hand-written) ---------------------------------------------- */

%nothread sx_py_register;
%inline %{
/* Called once by sextant/_errors.py: the Hit type and the exception class of each
 * status, indexed by status (entry 0, SX_OK, is unused). */
PyObject *sx_py_register(PyObject *hit_type, PyObject *errors) {
  if (!PyType_Check(hit_type) || !PyType_IsSubtype((PyTypeObject *)hit_type, &PyTuple_Type)) {
    PyErr_SetString(PyExc_TypeError, "hit_type must be a tuple subclass");
    return NULL;
  }
  if (!PyTuple_Check(errors) || PyTuple_GET_SIZE(errors) != SX_STATUS_COUNT) {
    PyErr_Format(PyExc_TypeError, "errors must be a tuple of %d classes", SX_STATUS_COUNT);
    return NULL;
  }
  Py_INCREF(hit_type);
  Py_XSETREF(sx_py_hit_type, hit_type);
  for (int i = 0; i < SX_STATUS_COUNT; i++) {
    PyObject *c = PyTuple_GET_ITEM(errors, i);
    Py_INCREF(c);
    Py_XSETREF(sx_py_errors[i], c);
  }
  Py_RETURN_NONE;
}
%}

/* For bench/bench_overhead.py: `iterations` calls of sx_collection_search (k hits for
 * `query`, results freed) in a C loop with the GIL released; the mean seconds per
 * call, or -1 when a call fails. The floor under which no binding can go. */
%typemap(in) (const float *bench_query, size_t bench_dim) (Py_buffer sx_view, int sx_got = 0) {
  if (sx_py_floats($input, "query", 1, &sx_view) < 0) SWIG_fail;
  sx_got = 1;
  $1 = ($1_ltype)sx_view.buf;
  $2 = (size_t)sx_view.shape[0];
}
%typemap(freearg) (const float *bench_query, size_t bench_dim) {
  if (sx_got$argnum) PyBuffer_Release(&sx_view$argnum);
}
%inline %{
double sx_py_bench_search(sx_collection *c, const float *bench_query, size_t bench_dim, size_t k,
                          long iterations) {
  struct timespec t0, t1;
  int rc = 0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (long i = 0; i < iterations && !rc; i++) {
    sx_results *res = NULL;
    rc = sx_collection_search(c, bench_query, bench_dim, k, NULL, &res, NULL);
    sx_results_free(res);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  if (rc || iterations <= 0) return -1;
  return ((double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9) / (double)iterations;
}
%}

/* ---- statuses and errors -------------------------------------------------------- */

/* Every sx_status result. With an sx_error, the error is raised by the sx_error
 * argout below (the last parameter, so it runs after the other out-parameters and
 * can drop them); without one (close, end, abort, *_options_init), by the `ret`
 * typemap, which runs after every argout, with the status's default message. */
%typemap(out) sx_status {
  $result = NULL;
}
%typemap(ret) sx_status {
  if ($1 != SX_OK && !PyErr_Occurred()) {
    Py_XDECREF(resultobj);
    resultobj = NULL;
    sx_py_raise($1, NULL);
  } else if (!resultobj && !PyErr_Occurred()) {
    resultobj = SWIG_Py_Void();
  }
}
%typemap(argout) sx_error *err {
  if (result != SX_OK) {
    Py_XDECREF($result);
    $result = NULL;
    sx_py_raise(result, $1->message);
    SWIG_fail;
  }
  if (!$result) $result = SWIG_Py_Void();
}

/* ---- out-parameters ------------------------------------------------------------ */

%typemap(argout) sx_db **out, sx_read **out, sx_write **out, sx_collection **out, sx_cancel **out {
  $result = *$1 ? SWIG_NewPointerObj(*$1, $*1_descriptor, SWIG_POINTER_OWN) : SWIG_Py_Void();
  if (!$result) SWIG_fail;
}
%typemap(argout) sx_names **out {
  $result = sx_py_names(*$1);
  if (!$result) SWIG_fail;
}
%typemap(argout) sx_record **out {
  $result = sx_py_record(*$1);
  if (!$result) SWIG_fail;
}
/* One helper per function: sx_py_results_sx_collection_search(_batch). */
%typemap(argout) sx_results **out {
  $result = sx_py_results_$symname(*$1);
  if (!$result) SWIG_fail;
}
%typemap(argout) uint64_t *out {
  $result = PyLong_FromUnsignedLongLong((unsigned long long)*$1);
  if (!$result) SWIG_fail;
}
%typemap(argout) size_t *deleted {
  $result = PyLong_FromSize_t(*$1);
  if (!$result) SWIG_fail;
}
%typemap(argout) sx_metric *out, sx_quantization *out, sx_sync *out, sx_index_type *out {
  $result = PyLong_FromLong((long)*$1);
  if (!$result) SWIG_fail;
}
/* Structs come back as new objects of their wrapped class, owned by Python. */
%typemap(argout) sx_db_stats *out, sx_collection_info *out, sx_collection_stats *out {
  $*1_ltype *copy = ($*1_ltype *)malloc(sizeof *copy);
  if (!copy) {
    PyErr_NoMemory();
    SWIG_fail;
  }
  *copy = *$1;
  $result = SWIG_NewPointerObj(copy, $1_descriptor, SWIG_POINTER_OWN);
  if (!$result) SWIG_fail;
}

/* ---- inputs -------------------------------------------------------------------- */

/* Strings: str (UTF-8) or bytes, no NUL inside; None is NULL (the core rejects it). */
%typemap(in) const char * {
  if ($input == Py_None) $1 = NULL;
  else if (sx_py_cstr($input, "$1_name", -1, (const char **)&$1) < 0) SWIG_fail;
}
%typemap(freearg) const char * "";

/* Ids to delete: a sequence of str. */
%typemap(in) (size_t n, const char *const *ids) (PyObject *sx_keep = NULL, const char **sx_arr = NULL) {
  if (sx_py_strings($input, "ids", 0, &sx_keep, &sx_arr, &$1) < 0) SWIG_fail;
  $2 = ($2_ltype)sx_arr;
}
%typemap(freearg) (size_t n, const char *const *ids) {
  PyMem_Free(sx_arr$argnum);
  Py_XDECREF(sx_keep$argnum);
}

/* One query: a 1-D float32 buffer. */
%typemap(in) (const float *query, size_t dim) (Py_buffer sx_view, int sx_got = 0) {
  if (sx_py_floats($input, "query", 1, &sx_view) < 0) SWIG_fail;
  sx_got = 1;
  $1 = ($1_ltype)sx_view.buf;
  $2 = (size_t)sx_view.shape[0];
}
%typemap(freearg) (const float *query, size_t dim) {
  if (sx_got$argnum) PyBuffer_Release(&sx_view$argnum);
}

/* A batch of queries: a 2-D float32 buffer (nq, dim). */
%typemap(in) (const float *queries, size_t nq, size_t dim) (Py_buffer sx_view, int sx_got = 0) {
  if (sx_py_floats($input, "queries", 2, &sx_view) < 0) SWIG_fail;
  sx_got = 1;
  $1 = ($1_ltype)sx_view.buf;
  $2 = (size_t)sx_view.shape[0];
  $3 = (size_t)sx_view.shape[1];
}
%typemap(freearg) (const float *queries, size_t nq, size_t dim) {
  if (sx_got$argnum) PyBuffer_Release(&sx_view$argnum);
}

/* The upsert batch: one tuple (ids, vectors, metadata): ids a sequence of n str,
 * vectors a 2-D float32 buffer (n, dim), metadata None or n entries of JSON text or
 * None. */
%typemap(in) (size_t n, const char *const *ids, const float *vectors, size_t dim,
              const char *const *metadata)
    (PyObject *sx_keep_ids = NULL, const char **sx_ids = NULL, Py_buffer sx_view, int sx_got = 0,
     PyObject *sx_keep_meta = NULL, const char **sx_meta = NULL) {
  if (!PyTuple_Check($input) || PyTuple_GET_SIZE($input) != 3) {
    PyErr_SetString(PyExc_TypeError, "the upsert batch must be a tuple (ids, vectors, metadata)");
    SWIG_fail;
  }
  if (sx_py_strings(PyTuple_GET_ITEM($input, 0), "ids", 0, &sx_keep_ids, &sx_ids, &$1) < 0) SWIG_fail;
  if (sx_py_floats(PyTuple_GET_ITEM($input, 1), "vectors", 2, &sx_view) < 0) SWIG_fail;
  sx_got = 1;
  if ((size_t)sx_view.shape[0] != $1) {
    char msg[128];
    snprintf(msg, sizeof msg, "%zu ids but %zd vectors", $1, sx_view.shape[0]);
    sx_py_raise(SX_INVALID_ARGUMENT, msg);
    SWIG_fail;
  }
  $2 = ($2_ltype)sx_ids;
  $3 = ($3_ltype)sx_view.buf;
  $4 = (size_t)sx_view.shape[1];
  $5 = NULL;
  if (PyTuple_GET_ITEM($input, 2) != Py_None) {
    size_t nm;
    if (sx_py_strings(PyTuple_GET_ITEM($input, 2), "metadata", 1, &sx_keep_meta, &sx_meta, &nm) < 0)
      SWIG_fail;
    if (nm != $1) {
      char msg[128];
      snprintf(msg, sizeof msg, "%zu ids but %zu metadata entries", $1, nm);
      sx_py_raise(SX_INVALID_ARGUMENT, msg);
      SWIG_fail;
    }
    $5 = ($5_ltype)sx_meta;
  }
}
%typemap(freearg) (size_t n, const char *const *ids, const float *vectors, size_t dim,
                   const char *const *metadata) {
  PyMem_Free(sx_ids$argnum);
  Py_XDECREF(sx_keep_ids$argnum);
  if (sx_got$argnum) PyBuffer_Release(&sx_view$argnum);
  PyMem_Free(sx_meta$argnum);
  Py_XDECREF(sx_keep_meta$argnum);
}

/* Search options: None (defaults), an int (ef), a tuple (ef or None, cancel callable
 * or None) or (ef, cancel, filter JSON text or None, include mask, exact), or an
 * sx_search_options object. The filter's text is borrowed from the str in the
 * argument tuple, which lives as long as the call. */
%typemap(in) const sx_search_options *opts (sx_search_options sx_opts, void *sx_ptr = NULL) {
  PyObject *ef = NULL, *cancel = NULL, *flt = NULL, *inc = NULL, *exact = NULL;
  if ($input == Py_None) {
    $1 = NULL;
  } else if (PyLong_Check($input) || PyTuple_Check($input)) {
    if (PyTuple_Check($input)) {
      if (PyTuple_GET_SIZE($input) != 2 && PyTuple_GET_SIZE($input) != 5) {
        PyErr_SetString(PyExc_TypeError,
                        "search options must be a tuple (ef, cancel) or (ef, cancel, filter, include, exact)");
        SWIG_fail;
      }
      ef = PyTuple_GET_ITEM($input, 0);
      cancel = PyTuple_GET_ITEM($input, 1);
      if (PyTuple_GET_SIZE($input) == 5) {
        flt = PyTuple_GET_ITEM($input, 2);
        inc = PyTuple_GET_ITEM($input, 3);
        exact = PyTuple_GET_ITEM($input, 4);
      }
    } else {
      ef = $input;
    }
    memset(&sx_opts, 0, sizeof sx_opts);
    sx_opts.version = SX_SEARCH_OPTIONS_VERSION;
    if (ef != Py_None) {
      unsigned long long v = PyLong_Check(ef) ? PyLong_AsUnsignedLongLong(ef) : 0;
      if (!PyLong_Check(ef) || (v == (unsigned long long)-1 && PyErr_Occurred()) || v > UINT32_MAX) {
        PyErr_Clear();
        sx_py_raise(SX_INVALID_ARGUMENT, "ef must be an integer from 0 to 4294967295");
        SWIG_fail;
      }
      sx_opts.ef = (uint32_t)v;
    }
    if (cancel && cancel != Py_None) {
      if (!PyCallable_Check(cancel)) {
        PyErr_SetString(PyExc_TypeError, "cancel must be callable");
        SWIG_fail;
      }
      sx_opts.cancel = sx_py_cancel;
      sx_opts.cancel_ctx = cancel; /* borrowed: the argument tuple holds it for the call */
    }
    if (flt && flt != Py_None) {
      if (!PyUnicode_Check(flt)) {
        PyErr_SetString(PyExc_TypeError, "filter must be a str (JSON text) or None");
        SWIG_fail;
      }
      sx_opts.filter = PyUnicode_AsUTF8(flt);
      if (!sx_opts.filter) SWIG_fail;
    }
    if (inc) {
      unsigned long v = PyLong_Check(inc) ? PyLong_AsUnsignedLong(inc) : 0;
      if (!PyLong_Check(inc) || PyErr_Occurred() || v > UINT32_MAX) {
        PyErr_Clear();
        PyErr_SetString(PyExc_TypeError, "include must be an int mask");
        SWIG_fail;
      }
      sx_opts.include = (uint32_t)v;
    }
    if (exact) {
      int t = PyObject_IsTrue(exact);
      if (t < 0) SWIG_fail;
      sx_opts.exact = (uint32_t)t;
    }
    $1 = &sx_opts;
  } else {
    if (SWIG_ConvertPtr($input, &sx_ptr, $1_descriptor, 0) < 0) {
      PyErr_SetString(PyExc_TypeError, "search options must be None, an int, a tuple or sx_search_options");
      SWIG_fail;
    }
    $1 = ($1_ltype)sx_ptr;
  }
}
%ignore sx_search_options::cancel;
%ignore sx_search_options::cancel_ctx;
/* Set through the tuple form above (a char * member's setter would copy and leak). */
%ignore sx_search_options::filter;

/* ---- what Python does not need ------------------------------------------------- */

/* The packed forms and bulk result accessors: the array typemaps above already pass
 * a batch in one call, and the argouts copy results out in C. */
%ignore sx_write_upsert_packed;
%ignore sx_write_delete_packed;
%ignore sx_results_total;
%ignore sx_results_offsets;
%ignore sx_results_distances;
%ignore sx_results_id_data;
/* Cancellation is the cancel hook (a Python callable, above); tokens and their
 * options are for bindings whose callbacks are costly (Go, Node). */
%ignore sx_cancel_new;
%ignore sx_cancel_set;
%ignore sx_cancel_reset;
%ignore sx_cancel_is_set;
%ignore sx_search_options::cancel_token;
%ignore sx_write_options::cancel_token;

/* Copied out by the argouts above. */
%ignore sx_names_count;
%ignore sx_names_get;
%ignore sx_record_id;
%ignore sx_record_vector;
%ignore sx_record_metadata;
%ignore sx_results_queries;
%ignore sx_results_count;
%ignore sx_results_id;
%ignore sx_results_distance;
%ignore sx_results_metadata;
%ignore sx_results_vector;
%ignore sx_results_dim;
%ignore sx_results_metadata_data;
%ignore sx_results_vectors;

/* ---- the GIL: kept for calls that neither wait nor work ---------------------------- */

%nothread sx_version;
%nothread sx_version_number;
%nothread sx_format_version;
%nothread sx_status_name;
%nothread sx_metric_name;
%nothread sx_metric_parse;
%nothread sx_quantization_name;
%nothread sx_quantization_parse;
%nothread sx_sync_name;
%nothread sx_sync_parse;
%nothread sx_index_type_name;
%nothread sx_index_type_parse;
%nothread sx_open_options_init;
%nothread sx_collection_options_init;
%nothread sx_search_options_init;
%nothread sx_filter_check;
%nothread sx_write_options_init;
%nothread sx_db_path;

/* ---- batch get, cursors, backup ------------------------------------------------------ */

/* A cursor is a handle (its destructor frees it); records are copied out at once. */
SX_HANDLE(sx_cursor, sx_cursor_free)
%ignore sx_cursor_free;
%typemap(in, numinputs=0) sx_cursor **out (sx_cursor *sx_tmp), sx_records **out (sx_records *sx_tmp) {
  sx_tmp = NULL;
  $1 = &sx_tmp;
}
%typemap(argout) sx_cursor **out {
  $result = *$1 ? SWIG_NewPointerObj(*$1, $*1_descriptor, SWIG_POINTER_OWN) : SWIG_Py_Void();
  if (!$result) SWIG_fail;
}
%{
/* A batch of records as (n, dim, ids, vectors, found, metadata): ids a list of str,
 * vectors a bytearray of n * dim float32, found a bytes of n flags, metadata a list
 * of JSON text or None. Frees recs. */
static PyObject *sx_py_records(sx_records *recs) {
  if (!recs) Py_RETURN_NONE;
  size_t n = sx_records_count(recs), dim = sx_records_dim(recs);
  PyObject *ids = PyList_New((Py_ssize_t)n), *metas = ids ? PyList_New((Py_ssize_t)n) : NULL;
  for (size_t i = 0; metas && i < n; i++) {
    const char *s = sx_records_id(recs, i), *m = sx_records_metadata(recs, i);
    PyObject *o = PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "surrogateescape");
    PyObject *mo = m ? PyUnicode_DecodeUTF8(m, (Py_ssize_t)strlen(m), "surrogateescape") : (Py_INCREF(Py_None), Py_None);
    if (!o || !mo) {
      Py_XDECREF(o);
      Py_XDECREF(mo);
      Py_CLEAR(metas);
      break;
    }
    PyList_SET_ITEM(ids, (Py_ssize_t)i, o);
    PyList_SET_ITEM(metas, (Py_ssize_t)i, mo);
  }
  PyObject *out = NULL;
  if (metas) {
    const float *v = sx_records_vectors(recs);
    const unsigned char *f = sx_records_found_data(recs);
    out = Py_BuildValue("(nnON" "N" "O)", (Py_ssize_t)n, (Py_ssize_t)dim, ids,
                        PyByteArray_FromStringAndSize(v ? (const char *)v : "", (Py_ssize_t)(n * dim * sizeof(float))),
                        PyBytes_FromStringAndSize(f ? (const char *)f : "", (Py_ssize_t)n), metas);
  }
  Py_XDECREF(ids);
  Py_XDECREF(metas);
  sx_records_free(recs);
  return out;
}

/* Backup progress: calls the Python callable with (done, total), holding the GIL. A
 * true result or an exception (KeyboardInterrupt included) stops the backup through
 * the call's own cancel token; the exception is reported as unraisable. */
typedef struct sx_py_progress_ctx {
  PyObject *fn;
  sx_cancel *token;
} sx_py_progress_ctx;
static void sx_py_progress(void *ctx, uint64_t done, uint64_t total) {
  sx_py_progress_ctx *p = (sx_py_progress_ctx *)ctx;
  PyGILState_STATE g = PyGILState_Ensure();
  PyObject *r = PyObject_CallFunction(p->fn, "KK", (unsigned long long)done, (unsigned long long)total);
  int stop = 1;
  if (r) {
    stop = PyObject_IsTrue(r);
    Py_DECREF(r);
    if (stop < 0) stop = 1;
  }
  if (PyErr_Occurred()) PyErr_WriteUnraisable(p->fn);
  PyGILState_Release(g);
  if (stop) sx_cancel_set(p->token);
}
%}
%typemap(argout) sx_records **out {
  $result = sx_py_records(*$1);
  if (!$result) SWIG_fail;
}

/* Backup options: None (defaults) or a tuple (overwrite, progress callable or None). */
%typemap(in) const sx_backup_options *opts (sx_backup_options sx_opts, sx_py_progress_ctx sx_ctx) {
  sx_ctx.fn = NULL;
  sx_ctx.token = NULL;
  if ($input == Py_None) {
    $1 = NULL;
  } else {
    if (!PyTuple_Check($input) || PyTuple_GET_SIZE($input) != 2) {
      PyErr_SetString(PyExc_TypeError, "backup options must be None or a tuple (overwrite, progress)");
      SWIG_fail;
    }
    sx_backup_options_init(&sx_opts, SX_BACKUP_OPTIONS_VERSION);
    int ow = PyObject_IsTrue(PyTuple_GET_ITEM($input, 0));
    if (ow < 0) SWIG_fail;
    sx_opts.overwrite = ow;
    PyObject *fn = PyTuple_GET_ITEM($input, 1);
    if (fn != Py_None) {
      if (!PyCallable_Check(fn)) {
        PyErr_SetString(PyExc_TypeError, "progress must be callable");
        SWIG_fail;
      }
      if (sx_cancel_new(&sx_ctx.token, NULL) != SX_OK) {
        PyErr_NoMemory();
        SWIG_fail;
      }
      sx_ctx.fn = fn; /* borrowed: the argument tuple holds it for the call */
      sx_opts.progress = sx_py_progress;
      sx_opts.progress_ctx = &sx_ctx;
      sx_opts.cancel_token = sx_ctx.token;
    }
    $1 = &sx_opts;
  }
}
%typemap(freearg) const sx_backup_options *opts {
  sx_cancel_free(sx_ctx$argnum.token);
}
%ignore sx_backup_options::progress;
%ignore sx_backup_options::progress_ctx;
%ignore sx_backup_options::cancel_token;

/* The packed form and the records' accessors: the typemaps above pass and copy whole
 * batches. */
%ignore sx_collection_get_packed;
%ignore sx_records_count;
%ignore sx_records_dim;
%ignore sx_records_found;
%ignore sx_records_id;
%ignore sx_records_vector;
%ignore sx_records_metadata;
%ignore sx_records_vectors;
%ignore sx_records_found_data;
%ignore sx_records_id_data;
%ignore sx_records_metadata_data;
%ignore sx_records_free;
%nothread sx_backup_options_init;
%nothread sx_cursor_remaining;

/* ---- space accounting and compaction ---------------------------------------------------- */

%typemap(in, numinputs=0) sx_space_stats *out (sx_space_stats sx_tmp) {
  memset(&sx_tmp, 0, sizeof sx_tmp);
  sx_tmp.version = SX_SPACE_STATS_VERSION;
  $1 = &sx_tmp;
}
%typemap(argout) sx_space_stats *out {
  $*1_ltype *copy = ($*1_ltype *)malloc(sizeof *copy);
  if (!copy) {
    PyErr_NoMemory();
    SWIG_fail;
  }
  *copy = *$1;
  $result = SWIG_NewPointerObj(copy, $1_descriptor, SWIG_POINTER_OWN);
  if (!$result) SWIG_fail;
}

/* Compact options: None (defaults: no wait) or a tuple (timeout_ms, progress callable
 * or None); progress(done, total) stops the compaction as for a backup. */
%typemap(in) const sx_compact_options *opts (sx_compact_options sx_opts, sx_py_progress_ctx sx_ctx) {
  sx_ctx.fn = NULL;
  sx_ctx.token = NULL;
  if ($input == Py_None) {
    $1 = NULL;
  } else {
    if (!PyTuple_Check($input) || PyTuple_GET_SIZE($input) != 2) {
      PyErr_SetString(PyExc_TypeError, "compact options must be None or a tuple (timeout_ms, progress)");
      SWIG_fail;
    }
    sx_compact_options_init(&sx_opts, SX_COMPACT_OPTIONS_VERSION);
    long t = PyLong_AsLong(PyTuple_GET_ITEM($input, 0));
    if (t == -1 && PyErr_Occurred()) SWIG_fail;
    if (t < INT_MIN || t > INT_MAX) {
      sx_py_raise(SX_INVALID_ARGUMENT, "timeout_ms is out of range");
      SWIG_fail;
    }
    sx_opts.timeout_ms = (int)t;
    PyObject *fn = PyTuple_GET_ITEM($input, 1);
    if (fn != Py_None) {
      if (!PyCallable_Check(fn)) {
        PyErr_SetString(PyExc_TypeError, "progress must be callable");
        SWIG_fail;
      }
      if (sx_cancel_new(&sx_ctx.token, NULL) != SX_OK) {
        PyErr_NoMemory();
        SWIG_fail;
      }
      sx_ctx.fn = fn; /* borrowed: the argument tuple holds it for the call */
      sx_opts.progress = sx_py_progress;
      sx_opts.progress_ctx = &sx_ctx;
      sx_opts.cancel_token = sx_ctx.token;
    }
    $1 = &sx_opts;
  }
}
%typemap(freearg) const sx_compact_options *opts {
  sx_cancel_free(sx_ctx$argnum.token);
}
%ignore sx_compact_options::progress;
%ignore sx_compact_options::progress_ctx;
%ignore sx_compact_options::cancel_token;
%nothread sx_compact_options_init;
