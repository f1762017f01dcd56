/* The trigger index's innermost loop, in C (see index.py, "Terms as bitsets").
 *
 * The index narrows a candidate set of terms (a Python int, one bit per term) by the masks of
 * the record's property values, one property at a time, stopping as soon as none is left.
 * In Python every `x &= mask` allocates a new int as wide as the index (2 KB at 10,000
 * workflows, past the small-object allocator) and every step is a few dict lookups and
 * attribute reads; here the candidates live in one scratch array of the int's own digits,
 * and-ed in place and trimmed as their top digits clear, and the per-property cache lookups
 * are C dict lookups. Only a cache miss calls back into Python (`_Prop.nf`), which computes
 * the mask and fills the cache exactly as the pure-Python path does. Once few terms are left,
 * each is tested on the properties it reads instead (`per_term`): a term dies at its first
 * failing condition, and the properties no term left reads are never looked up.
 *
 * Masks stay Python ints everywhere else, so this module only reads their digits (the layout
 * of CPython 3.11 and of 3.12+ both handled) and builds one int per call. Nothing here
 * decides what a mask is: index.py keeps a Python loop with the same semantics for builds
 * without this extension, and tests/unit/criteria/test_index.py checks both against brute
 * force.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#if PY_VERSION_HEX >= 0x030C0000
/* 3.12+: lv_tag = digit count << 3 | sign (0 positive, 1 zero, 2 negative) */
static inline Py_ssize_t ndigits(PyObject *o) {
    return (Py_ssize_t)(((PyLongObject *)o)->long_value.lv_tag >> 3);
}
static inline digit *digits_of(PyObject *o) { return ((PyLongObject *)o)->long_value.ob_digit; }
static inline int negative(PyObject *o) {
    return (((PyLongObject *)o)->long_value.lv_tag & 3) == 2;
}
#else
static inline Py_ssize_t ndigits(PyObject *o) { return Py_ABS(Py_SIZE(o)); }
static inline digit *digits_of(PyObject *o) { return ((PyLongObject *)o)->ob_digit; }
static inline int negative(PyObject *o) { return Py_SIZE(o) < 0; }
#endif

static PyObject *str_nf;   /* "nf" */
static PyObject *str_list; /* "list" (_vkey's tag of list values) */

/* A mask argument: an exact, non-negative int (the index keeps them so). */
static int check_mask(PyObject *m, const char *what) {
    if (!PyLong_CheckExact(m) || negative(m)) {
        PyErr_Format(PyExc_TypeError, "%s: expected a non-negative int, got %R", what, m);
        return -1;
    }
    return 0;
}

static Py_ssize_t trim(const digit *s, Py_ssize_t n) {
    while (n > 0 && s[n - 1] == 0)
        n--;
    return n;
}

/* The int whose digits are s[0:n] (n already trimmed). */
static PyObject *to_int(const digit *s, Py_ssize_t n) {
    if (n == 0)
        return PyLong_FromLong(0);
    PyLongObject *r = _PyLong_New(n);
    if (r == NULL)
        return NULL;
    memcpy(digits_of((PyObject *)r), s, (size_t)n * sizeof(digit));
    return (PyObject *)r;
}

/* Are at most `limit` bits set in s[0:n]? Candidates are sparse in a wide index (a few
 * hundred bits over 2 KB at 10,000 workflows), so runs of zero digits are skipped four at a
 * time, and the count stops past the limit. Two builds of the same loop: one with the
 * popcnt instruction (every x86-64 CPU of the last fifteen years), chosen at import when
 * the CPU has it, and a portable one. */
#define AT_MOST_BODY                                                                         \
    Py_ssize_t c = 0, i = 0;                                                                 \
    for (; i + 4 <= n; i += 4) {                                                             \
        if ((s[i] | s[i + 1] | s[i + 2] | s[i + 3]) == 0)                                    \
            continue;                                                                        \
        c += __builtin_popcount((unsigned int)s[i]) + __builtin_popcount((unsigned int)s[i + 1]) + \
             __builtin_popcount((unsigned int)s[i + 2]) +                                    \
             __builtin_popcount((unsigned int)s[i + 3]);                                     \
        if (c > limit)                                                                       \
            return 0;                                                                        \
    }                                                                                        \
    for (; i < n; i++)                                                                       \
        c += __builtin_popcount((unsigned int)s[i]);                                         \
    return c <= limit;

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
__attribute__((target("popcnt"))) static int at_most_popcnt(const digit *s, Py_ssize_t n,
                                                            Py_ssize_t limit) {
    AT_MOST_BODY
}
#define HAVE_POPCNT_BUILD 1
#endif

static int at_most_portable(const digit *s, Py_ssize_t n, Py_ssize_t limit) { AT_MOST_BODY }

static int (*at_most)(const digit *, Py_ssize_t, Py_ssize_t) = at_most_portable;

/* Borrowed dict lookup; NULL with no error set when absent (or when d is not a dict). */
static PyObject *lookup(PyObject *d, PyObject *key) {
    if (!PyDict_CheckExact(d))
        return NULL;
    return PyDict_GetItemWithError(d, key);
}

enum { KIND_FAST = 0, KIND_REGION = 1, KIND_SPANS = 2, KIND_CALL = 3, KIND_SET = 4 };
enum { SPAN_WITHIN_LAST = 0, SPAN_WITHIN_NEXT = 1, SPAN_MORE_THAN_AGO = 2 };

/* index._region_among: where x falls among the sorted floats cs (2i between thresholds i-1
 * and i, 2i+1 exactly at threshold i). cs holds exact floats (index.py builds it). */
static Py_ssize_t region_among(PyObject *cs, double x) {
    Py_ssize_t lo = 0, hi = PyList_GET_SIZE(cs);
    Py_ssize_t len = hi;
    while (lo < hi) { /* bisect_left */
        Py_ssize_t mid = (lo + hi) / 2;
        if (PyFloat_AS_DOUBLE(PyList_GET_ITEM(cs, mid)) < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 2 * lo + (lo < len && PyFloat_AS_DOUBLE(PyList_GET_ITEM(cs, lo)) == x);
}

/* The region-cached mask of an exact int ``v`` (amounts, counters, epoch milliseconds) for a
 * property with only ordered, known / unknown and relative-date conditions: _Prop._region's
 * key (float(v), v / 1000, not unknown) looked up in the property's cache. Returns a borrowed
 * mask, or NULL (no error) when the caller should ask _Prop.nf: a miss, or a value whose
 * coercions are not plain double arithmetic (beyond 2**53). */
/* Is the exact int v within +-2**53, where float(v) is exact and v / 1000 is one correctly
 * rounded double division, as Python computes them? */
static int plain_int(PyObject *v, long long *out) {
    int overflow = 0;
    long long iv = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (iv == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    if (overflow || iv > (1LL << 53) || iv < -(1LL << 53))
        return 0;
    *out = iv;
    return 1;
}

static PyObject *region_mask(PyObject *step, PyObject *v) {
    long long iv;
    if (!plain_int(v, &iv))
        return NULL; /* _Prop.nf works it out */
    PyObject *num_cs = PyTuple_GET_ITEM(step, 6), *ts_cs = PyTuple_GET_ITEM(step, 7);
    Py_ssize_t rn = -1, rt = -1, width = 1;
    if (num_cs != Py_None)
        rn = region_among(num_cs, (double)iv);
    if (ts_cs != Py_None) {
        rt = region_among(ts_cs, (double)iv / 1000.0);
        width = 2 * PyList_GET_SIZE(ts_cs) + 3; /* rt + 1 ranges over 0 .. 2 * len + 1 */
    }
    /* first the region code (a small int: no allocation up to 256), then _region's key */
    PyObject *codes = PyTuple_GET_ITEM(step, 10);
    PyObject *code = PyLong_FromSsize_t((rn + 1) * width + (rt + 1));
    if (code == NULL)
        return NULL;
    PyObject *m = lookup(codes, code);
    if (m != NULL || PyErr_Occurred()) {
        Py_DECREF(code);
        return m;
    }
    PyObject *key = PyTuple_New(3);
    if (key == NULL) {
        Py_DECREF(code);
        return NULL;
    }
    PyObject *a = PyLong_FromSsize_t(rn), *b = PyLong_FromSsize_t(rt);
    if (a == NULL || b == NULL) {
        Py_XDECREF(a);
        Py_XDECREF(b);
        Py_DECREF(key);
        Py_DECREF(code);
        return NULL;
    }
    PyTuple_SET_ITEM(key, 0, a);
    PyTuple_SET_ITEM(key, 1, b);
    Py_INCREF(Py_False);
    PyTuple_SET_ITEM(key, 2, Py_False);
    m = lookup(PyTuple_GET_ITEM(step, 3), key);
    Py_DECREF(key);
    /* remembered under its code (region_codes is cleared with the cache it mirrors) */
    if (m != NULL && PyDict_CheckExact(codes) && PyDict_SetItem(codes, code, m) < 0)
        PyErr_Clear();
    Py_DECREF(code);
    return m;
}

/* One relative-date family of _Prop._span_false for the timestamp x (POSIX seconds) at t:
 * the (borrowed) mask of the terms whose condition of that family x fails, found with the
 * predicates' own float expressions. fam = (op code, spans, cumulative masks, all). */
static PyObject *span_fail(PyObject *fam, double x, double t) {
    long op = PyLong_AsLong(PyTuple_GET_ITEM(fam, 0));
    PyObject *cs = PyTuple_GET_ITEM(fam, 1), *cum = PyTuple_GET_ITEM(fam, 2);
    if (x != x) /* no value (NaN): every condition of the family fails */
        return PyTuple_GET_ITEM(fam, 3);
    if (op == SPAN_WITHIN_LAST && x > t)
        return PyTuple_GET_ITEM(fam, 3);
    if (op == SPAN_WITHIN_NEXT && x < t)
        return PyTuple_GET_ITEM(fam, 3);
    Py_ssize_t lo = 0, hi = PyList_GET_SIZE(cs);
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        double c = PyFloat_AS_DOUBLE(PyList_GET_ITEM(cs, mid));
        int right; /* the answer lies right of mid */
        if (op == SPAN_WITHIN_LAST)
            right = t - c > x;
        else if (op == SPAN_WITHIN_NEXT)
            right = x > t + c;
        else
            right = !(x >= t - c);
        if (right)
            lo = mid + 1;
        else
            hi = mid;
    }
    return PyList_GET_ITEM(cum, lo);
}

/* Is bit b of the non-negative int x set? */
static inline int has_bit_d(const digit *s, Py_ssize_t n, Py_ssize_t b) {
    Py_ssize_t i = b / PyLong_SHIFT;
    return i < n && (s[i] >> (b % PyLong_SHIFT)) & 1;
}

static inline int has_bit(PyObject *x, Py_ssize_t b) { return has_bit_d(digits_of(x), ndigits(x), b); }

/* s[0:n] &= ~ each relative-date family's mask of the terms the timestamp xs (seconds; NaN:
 * no value) fails at tt (spans: _Prop.step's families). */
static void clear_spans(digit *s, Py_ssize_t n, PyObject *spans, double xs, double tt) {
    for (Py_ssize_t f = 0; f < PyTuple_GET_SIZE(spans); f++) {
        PyObject *fail = span_fail(PyTuple_GET_ITEM(spans, f), xs, tt);
        Py_ssize_t nf = ndigits(fail);
        const digit *fd = digits_of(fail);
        for (Py_ssize_t i = 0; i < n && i < nf; i++)
            s[i] &= ~fd[i];
    }
}

/* Does term b fail one of the relative-date conditions of `spans` at x (seconds), t? */
static int span_fails_bit(PyObject *spans, double x, double t, Py_ssize_t b) {
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(spans); k++)
        if (has_bit(span_fail(PyTuple_GET_ITEM(spans, k), x, t), b))
            return 1;
    return 0;
}

#define STEP_SIZE 11

/* _vkey(v) for a list: ("list", ((type, item), ...)), a new reference, or NULL (no error
 * set) when an item cannot be hashed. */
static PyObject *list_key(PyObject *v) {
    Py_ssize_t k = PyList_GET_SIZE(v);
    PyObject *items = PyTuple_New(k);
    if (items == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < k; i++) {
        PyObject *x = PyList_GET_ITEM(v, i);
        PyObject *pair = PyTuple_Pack(2, (PyObject *)Py_TYPE(x), x);
        if (pair == NULL) {
            Py_DECREF(items);
            return NULL;
        }
        PyTuple_SET_ITEM(items, i, pair);
    }
    PyObject *key = PyTuple_Pack(2, str_list, items);
    Py_DECREF(items);
    if (key != NULL && PyObject_Hash(key) == -1) {
        PyErr_Clear(); /* unhashable: nf works it out (uncached) */
        Py_DECREF(key);
        return NULL;
    }
    return key;
}

/* index._set_key for a list: the frozenset of its items when all are str, else _vkey (a new
 * reference, or NULL with no error set). */
static PyObject *set_key(PyObject *v) {
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(v); i++)
        if (!PyUnicode_CheckExact(PyList_GET_ITEM(v, i)))
            return list_key(v);
    PyObject *key = PyFrozenSet_New(v);
    if (key == NULL)
        PyErr_Clear();
    return key;
}

/* The cached mask of the value v of a step's property, borrowed, or NULL (no error set) when
 * the caches do not have it. For a relative-date property it is the static part (*partial
 * set): the caller clears the spans the value fails, *xs its POSIX seconds (NaN: none). */
static PyObject *cached_mask(PyObject *step, PyObject *v, PyObject *none_key, int *partial,
                             double *xs) {
    PyObject *m = NULL;
    long long iv;
    long kind = PyLong_AsLong(PyTuple_GET_ITEM(step, 2));
    if (kind == KIND_FAST || kind == KIND_SET) {
        if (PyUnicode_CheckExact(v))
            m = lookup(PyTuple_GET_ITEM(step, 3), v);
        else if (v == Py_None)
            m = lookup(PyTuple_GET_ITEM(step, 3), none_key);
        else if (PyList_CheckExact(v)) { /* multi-select values (tags) */
            PyObject *key = kind == KIND_SET ? set_key(v) : list_key(v);
            if (key != NULL) {
                m = lookup(PyTuple_GET_ITEM(step, 3), key);
                Py_DECREF(key);
            }
        }
    } else if (kind == KIND_REGION) {
        if (PyUnicode_CheckExact(v))
            m = lookup(PyTuple_GET_ITEM(step, 4), v);
        else if (v == Py_None)
            m = lookup(PyTuple_GET_ITEM(step, 4), none_key);
        else if (PyLong_CheckExact(v)) {
            m = lookup(PyTuple_GET_ITEM(step, 5), v);
            if (m == NULL && !PyErr_Occurred())
                m = region_mask(step, v);
        }
    } else if (kind == KIND_SPANS) {
        /* the static part from the region caches, the relative dates by the caller */
        if (v == Py_None) {
            m = lookup(PyTuple_GET_ITEM(step, 4), none_key);
            *xs = Py_NAN;
        } else if (PyLong_CheckExact(v) && plain_int(v, &iv)) {
            m = lookup(PyTuple_GET_ITEM(step, 5), v);
            if (m == NULL && !PyErr_Occurred())
                m = region_mask(step, v);
            *xs = (double)iv / 1000.0;
        }
        if (m != NULL)
            *partial = 1;
    }
    return m;
}

static int check_step(PyObject *step) {
    if (!PyTuple_CheckExact(step) || PyTuple_GET_SIZE(step) != STEP_SIZE) {
        PyErr_SetString(PyExc_TypeError, "and_steps: a step is an 11-tuple");
        return -1;
    }
    return 0;
}

/* The mask of one step's property value in `record` (a new reference in *out), found as
 * and_steps' doc says; *out stays NULL when the property is in `changed` (skipped). For a
 * relative-date property the mask is its static part (*partial set, the value in *iv): the
 * caller still clears the spans the value fails. Returns -1 with an error set on failure. */
static int step_mask(PyObject *step, PyObject *record, PyObject *changed, PyObject *seen,
                     PyObject *t, PyObject *none_key, PyObject **out, int *partial,
                     double *xs) {
    *out = NULL;
    *partial = 0;
    if (check_step(step) < 0)
        return -1;
    PyObject *prop = PyTuple_GET_ITEM(step, 0);
    PyObject *name = PyTuple_GET_ITEM(step, 1);
    if (changed != NULL) { /* NULL: the caller skips the changed properties by id */
        if (PyDict_GetItemWithError(changed, name) != NULL)
            return 0;
        if (PyErr_Occurred())
            return -1;
    }
    PyObject *v = PyDict_GetItemWithError(record, name);
    if (v == NULL) {
        if (PyErr_Occurred())
            return -1;
        v = Py_None;
    }
    PyObject *m = cached_mask(step, v, none_key, partial, xs);
    if (m != NULL) {
        Py_INCREF(m);
    } else {
        /* not in the caches: computed earlier in this event, else by nf (and kept: only
         * these, as a cache hit costs no more than a lookup in ``seen``) */
        if (PyErr_Occurred())
            return -1;
        m = PyDict_GetItemWithError(seen, prop);
        if (m != NULL) {
            Py_INCREF(m);
        } else {
            if (PyErr_Occurred())
                return -1;
            m = PyObject_CallMethodObjArgs(prop, str_nf, v, t, NULL);
            if (m == NULL)
                return -1;
            if (PyDict_SetItem(seen, prop, m) < 0) {
                Py_DECREF(m);
                return -1;
            }
        }
    }
    if (check_mask(m, "mask") < 0) {
        Py_DECREF(m);
        return -1;
    }
    *out = m;
    return 0;
}

/* s[0:n] &= the whole mask of value v of a step's property at t (the caches, else
 * prop.nf(v, t)); returns the new (trimmed) length, or -1 with an error set. */
static Py_ssize_t and_value(digit *s, Py_ssize_t n, PyObject *step, PyObject *v, PyObject *t,
                            double tt, PyObject *none_key) {
    if (check_step(step) < 0)
        return -1;
    int partial = 0;
    double xs = 0.0;
    PyObject *m = cached_mask(step, v, none_key, &partial, &xs);
    if (m != NULL) {
        Py_INCREF(m);
    } else {
        if (PyErr_Occurred())
            return -1;
        m = PyObject_CallMethodObjArgs(PyTuple_GET_ITEM(step, 0), str_nf, v, t, NULL);
        if (m == NULL)
            return -1;
    }
    if (check_mask(m, "mask") < 0) {
        Py_DECREF(m);
        return -1;
    }
    Py_ssize_t nm = ndigits(m);
    const digit *d = digits_of(m);
    if (nm < n)
        n = nm;
    for (Py_ssize_t i = 0; i < n; i++)
        s[i] &= d[i];
    Py_DECREF(m);
    if (partial)
        clear_spans(s, n, PyTuple_GET_ITEM(step, 8), xs, tt);
    return trim(s, n);
}

static inline Py_ssize_t step_pid(PyObject *step, Py_ssize_t nprops) {
    Py_ssize_t pid = PyLong_AsSsize_t(PyTuple_GET_ITEM(step, 9));
    if (pid == -1 && PyErr_Occurred())
        return -1;
    if (pid < 0 || pid >= nprops) {
        PyErr_SetString(PyExc_IndexError, "and_steps: a step's property id is out of range");
        return -1;
    }
    return pid;
}

/* The per-term end of and_steps: each term left in s[0:n] is kept iff every property it has
 * a condition on (term_pids[b]: their ids, by_id: id -> step) and that no step applied yet
 * (done[id]) passes it; the masks are looked up once per property. Returns the new length,
 * or -1 with an error set. */
static Py_ssize_t per_term(digit *s, Py_ssize_t n, PyObject *term_pids, PyObject *by_id,
                           const unsigned char *done, PyObject *record, PyObject *changed,
                           PyObject *seen, PyObject *t, double tt, PyObject *none_key) {
    Py_ssize_t nprops = PyList_GET_SIZE(by_id), nterms = PyList_GET_SIZE(term_pids);
    /* per property: 0 not looked up, 1 mask in memo, 2 changed (skipped), | 4 partial */
    unsigned char state_buf[256];
    PyObject *memo_buf[256];
    double xs_buf[256];
    unsigned char *state = state_buf;
    PyObject **memo = memo_buf;
    double *xss = xs_buf;
    if (nprops > 256) {
        state = PyMem_Calloc((size_t)nprops, 1);
        memo = PyMem_Calloc((size_t)nprops, sizeof(PyObject *));
        xss = PyMem_Calloc((size_t)nprops, sizeof(double));
        if (state == NULL || memo == NULL || xss == NULL) {
            PyMem_Free(state);
            PyMem_Free(memo);
            PyMem_Free(xss);
            PyErr_NoMemory();
            return -1;
        }
    } else {
        memset(state_buf, 0, (size_t)nprops);
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned int v = (unsigned int)s[i];
        while (v) {
            int low = __builtin_ctz(v);
            v &= v - 1;
            Py_ssize_t b = i * PyLong_SHIFT + low;
            if (b >= nterms) {
                PyErr_SetString(PyExc_IndexError, "and_steps: a bit without a term");
                n = -1;
                goto finish;
            }
            PyObject *pids = PyList_GET_ITEM(term_pids, b);
            if (!PyTuple_CheckExact(pids)) {
                PyErr_SetString(PyExc_TypeError, "and_steps: term_pids holds tuples");
                n = -1;
                goto finish;
            }
            int alive = 1;
            for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(pids) && alive; j++) {
                Py_ssize_t pid = PyLong_AsSsize_t(PyTuple_GET_ITEM(pids, j));
                if (pid == -1 && PyErr_Occurred()) {
                    n = -1;
                    goto finish;
                }
                if (pid < 0 || pid >= nprops) {
                    PyErr_SetString(PyExc_IndexError, "and_steps: a property id out of range");
                    n = -1;
                    goto finish;
                }
                if (done[pid])
                    continue;
                PyObject *step = PyList_GET_ITEM(by_id, pid);
                if (state[pid] == 0) {
                    int partial = 0;
                    if (step_mask(step, record, changed, seen, t, none_key, &memo[pid], &partial,
                                  &xss[pid]) < 0) {
                        n = -1;
                        goto finish;
                    }
                    state[pid] = memo[pid] == NULL ? 2 : (unsigned char)(1 | (partial ? 4 : 0));
                }
                if (state[pid] == 2)
                    continue;
                if (!has_bit(memo[pid], b) ||
                    ((state[pid] & 4) &&
                     span_fails_bit(PyTuple_GET_ITEM(step, 8), xss[pid], tt, b)))
                    alive = 0;
            }
            if (!alive)
                s[i] &= ~((digit)1 << low);
        }
    }
    n = trim(s, n);
finish:
    for (Py_ssize_t k = 0; k < nprops; k++)
        if (state[k] & 1)
            Py_XDECREF(memo[k]);
    if (state != state_buf) {
        PyMem_Free(state);
        PyMem_Free(memo);
        PyMem_Free(xss);
    }
    return n;
}

PyDoc_STRVAR(and_steps_doc,
"and_steps(x, steps, record, changed, seen, t, small, none_key[, term_pids, by_id]) -> int\n\n"
"``x`` and-ed with the mask of each step's property value in ``record``, skipping the\n"
"properties in ``changed``, stopping at 0. ``small`` >= 0: once at most ``small`` terms are\n"
"left (counted after every other step), stop there; or, given ``term_pids`` (bit -> ids of the properties the term has\n"
"conditions on) and ``by_id`` (id -> step), test each term left on the properties it reads\n"
"that no step has applied yet (the same answer as and-ing every mask, for fewer lookups).\n"
"A step is (prop, name, kind, cache, raw, raw_int, num_cs, ts_cs, spans, id) (_Prop.step):\n"
"kind 0 looks a str / None value up in ``cache`` (None under ``none_key``); kind 1 a str /\n"
"None in ``raw``, an exact int in ``raw_int`` or by its region among ``num_cs`` / ``ts_cs``\n"
"in ``cache``; kind 2 an exact int the same way, then clears the relative-date conditions\n"
"(``spans``) it fails at ``t``. A miss, another value, and kind 3 take the mask kept in\n"
"``seen`` for the prop or else call prop.nf(value, t), keeping its answer in ``seen``.");

/* and_steps on the digits s[0:n] in place: returns the new length, or -1 with an error set.
 * term_pids / by_id: lists (per-term end) or NULL; done: nprops zeroed bytes (scratch). */
static Py_ssize_t narrow(digit *s, Py_ssize_t n, PyObject *steps, PyObject *record,
                         PyObject *changed, PyObject *seen, PyObject *t, double tt,
                         Py_ssize_t small, PyObject *none_key, PyObject *term_pids,
                         PyObject *by_id, unsigned char *done, PyObject *skip) {
    int terms = term_pids != NULL;
    Py_ssize_t nprops = terms ? PyList_GET_SIZE(by_id) : 0;
    if (terms && skip != NULL) {
        /* the changed properties by id: marked done, no lookup in `changed` per step */
        for (Py_ssize_t j = 0; j < PyList_GET_SIZE(skip); j++) {
            Py_ssize_t pid = PyLong_AsSsize_t(PyList_GET_ITEM(skip, j));
            if (pid == -1 && PyErr_Occurred())
                return -1;
            if (pid < 0 || pid >= nprops) {
                PyErr_SetString(PyExc_IndexError, "and_steps: a skipped property id out of range");
                return -1;
            }
            done[pid] = 1;
        }
        changed = NULL;
    }
    /* With term_pids: once at most `small` terms are left (counted every other step: a count
     * can cost as much as an and), each is tested on the properties it reads (per_term).
     * Measured on the bench's workloads against and-ing every step: 1.19x events/s at 1,000
     * workflows (hot), 1.12x at 10,000 (segmented), even at 10,000 (hot); testing bits one
     * by one from 64 terms left (instead of and-ing 2 KB of digits) gained nothing. */
    Py_ssize_t count = 0;
    int per = small >= 0 && at_most(s, n, small);
    if (per && !terms)
        goto finish;
    Py_ssize_t len = PyList_GET_SIZE(steps);
    for (Py_ssize_t k = 0; k < len && !per; k++) {
        PyObject *step = PyList_GET_ITEM(steps, k), *m = NULL;
        int partial = 0;
        double xs = 0.0;
        if (terms) {
            if (check_step(step) < 0)
                return -1;
            Py_ssize_t pid = step_pid(step, nprops);
            if (pid < 0)
                return -1;
            if (done[pid])
                continue; /* skipped (changed) or applied already */
            done[pid] = 1;
        }
        if (step_mask(step, record, changed, seen, t, none_key, &m, &partial, &xs) < 0)
            return -1;
        if (m == NULL)
            continue; /* a changed property */
        Py_ssize_t nm = ndigits(m);
        const digit *d = digits_of(m);
        if (nm < n)
            n = nm; /* the mask's missing top digits are zero */
        for (Py_ssize_t i = 0; i < n; i++)
            s[i] &= d[i];
        Py_DECREF(m);
        if (partial) /* a relative-date property: clear the spans its value fails */
            clear_spans(s, n, PyTuple_GET_ITEM(step, 8), xs, tt);
        n = trim(s, n);
        if (n == 0)
            break;
        count++;
        if (small >= 0 && (count & 1) && at_most(s, n, small)) {
            if (!terms)
                break;
            per = 1;
        }
    }
finish:
    if (per && n > 0) {
        n = per_term(s, n, term_pids, by_id, done, record, changed, seen, t, tt, none_key);
        if (n < 0)
            return -1;
    }
    return n;
}

static PyObject *and_steps(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs < 8 || nargs > 11 || nargs == 9) {
        PyErr_SetString(PyExc_TypeError, "and_steps takes 8, 10 or 11 arguments");
        return NULL;
    }
    PyObject *x = args[0], *steps = args[1], *record = args[2], *changed = args[3];
    PyObject *seen = args[4], *t = args[5], *none_key = args[7];
    PyObject *term_pids = nargs >= 10 ? args[8] : Py_None;
    PyObject *by_id = nargs >= 10 ? args[9] : Py_None;
    PyObject *skip = nargs == 11 ? args[10] : Py_None;
    Py_ssize_t small = PyLong_AsSsize_t(args[6]);
    if (small == -1 && PyErr_Occurred())
        return NULL;
    double tt = PyFloat_AsDouble(t);
    if (tt == -1.0 && PyErr_Occurred())
        return NULL;
    if (check_mask(x, "x") < 0)
        return NULL;
    if (!PyList_CheckExact(steps) || !PyDict_CheckExact(record) || !PyDict_CheckExact(changed) ||
        !PyDict_CheckExact(seen)) {
        PyErr_SetString(PyExc_TypeError,
                        "and_steps: steps must be a list; record, changed, seen dicts");
        return NULL;
    }
    int terms = term_pids != Py_None;
    if (terms && (!PyList_CheckExact(term_pids) || !PyList_CheckExact(by_id) ||
                  (skip != Py_None && !PyList_CheckExact(skip)))) {
        PyErr_SetString(PyExc_TypeError, "and_steps: term_pids, by_id and skip must be lists");
        return NULL;
    }
    Py_ssize_t n = ndigits(x);
    if (n == 0)
        return PyLong_FromLong(0);
    Py_ssize_t nprops = terms ? PyList_GET_SIZE(by_id) : 0;
    digit stack_buf[256];
    unsigned char done_buf[256];
    digit *s = n <= 256 ? stack_buf : PyMem_Malloc((size_t)n * sizeof(digit));
    unsigned char *done = nprops <= 256 ? done_buf : PyMem_Calloc((size_t)nprops, 1);
    PyObject *result = NULL;
    if (s == NULL || done == NULL) {
        PyErr_NoMemory();
        goto end;
    }
    if (nprops <= 256)
        memset(done_buf, 0, (size_t)nprops);
    memcpy(s, digits_of(x), (size_t)n * sizeof(digit));
    n = narrow(s, n, steps, record, changed, seen, t, tt, small, none_key,
               terms ? term_pids : NULL, terms ? by_id : NULL, done,
               skip != Py_None ? skip : NULL);
    if (n >= 0)
        result = to_int(s, n);
end:
    if (s != NULL && s != stack_buf)
        PyMem_Free(s);
    if (done != NULL && done != done_buf)
        PyMem_Free(done);
    return result;
}

PyDoc_STRVAR(warm_doc,
"warm(record) -> None: ask the CPU for the record's entries and values before the index\n"
"looks them up. An event's record is new to the cache (a service sees each record once):\n"
"one sequential pass over its entries with a prefetch per value lets those misses overlap,\n"
"where ~27 lookups one after the other would wait for each.");

static PyObject *warm(PyObject *self, PyObject *record) {
    (void)self;
    if (!PyDict_CheckExact(record))
        Py_RETURN_NONE;
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    while (PyDict_Next(record, &pos, &k, &v))
        __builtin_prefetch(v, 0, 1);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(flip_doc,
"flip(x, touched, loose, all, moved, t, none_key) -> (x', nfo)\n\n"
"TransitionIndex.rising on the changed properties: ``moved`` lists (step, old value, new\n"
"value); nfo / nfn are ``all`` and-ed with each one's mask of its old / new value (the caches,\n"
"else prop.nf), and x' = ((x & touched & ~nfo) | (x & loose)) & nfn: the candidates that\n"
"failed a condition on an old value (or read a changed property loosely) and pass every new\n"
"one. Returns x' and nfo (the old values' masks, which _decide reads).");

static PyObject *flip(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "flip takes 7 arguments");
        return NULL;
    }
    PyObject *x = args[0], *touched = args[1], *loose = args[2], *all = args[3];
    PyObject *moved = args[4], *t = args[5], *none_key = args[6];
    if (check_mask(x, "x") < 0 || check_mask(touched, "touched") < 0 ||
        check_mask(loose, "loose") < 0 || check_mask(all, "all") < 0)
        return NULL;
    if (!PyList_CheckExact(moved)) {
        PyErr_SetString(PyExc_TypeError, "flip: moved must be a list");
        return NULL;
    }
    double tt = PyFloat_AsDouble(t);
    if (tt == -1.0 && PyErr_Occurred())
        return NULL;
    Py_ssize_t na = ndigits(all);
    digit stack_buf[512];
    digit *o = na <= 256 ? stack_buf : PyMem_Malloc(2 * (size_t)na * sizeof(digit));
    if (o == NULL)
        return PyErr_NoMemory();
    digit *nw = o + na;
    PyObject *result = NULL, *xo = NULL, *nfo = NULL;
    memcpy(o, digits_of(all), (size_t)na * sizeof(digit));
    memcpy(nw, digits_of(all), (size_t)na * sizeof(digit));
    Py_ssize_t no = na, nn = na;
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(moved); k++) {
        PyObject *mv = PyList_GET_ITEM(moved, k);
        if (!PyTuple_CheckExact(mv) || PyTuple_GET_SIZE(mv) != 3) {
            PyErr_SetString(PyExc_TypeError, "flip: moved holds (step, old, new) tuples");
            goto end;
        }
        PyObject *step = PyTuple_GET_ITEM(mv, 0);
        no = and_value(o, no, step, PyTuple_GET_ITEM(mv, 1), t, tt, none_key);
        if (no < 0)
            goto end;
        nn = and_value(nw, nn, step, PyTuple_GET_ITEM(mv, 2), t, tt, none_key);
        if (nn < 0)
            goto end;
    }
    {
        /* x' into nw: ((x & touched & ~nfo) | (x & loose)) & nfn */
        Py_ssize_t nx = ndigits(x), nt = ndigits(touched), nl = ndigits(loose);
        const digit *dx = digits_of(x), *dt = digits_of(touched), *dl = digits_of(loose);
        for (Py_ssize_t i = 0; i < nn; i++) {
            digit xi = i < nx ? dx[i] : 0;
            digit ti = i < nt ? dt[i] : 0;
            digit li = i < nl ? dl[i] : 0;
            digit oi = i < no ? o[i] : 0;
            nw[i] &= (xi & ti & ~oi) | (xi & li);
        }
        nn = trim(nw, nn);
    }
    xo = to_int(nw, nn);
    nfo = xo == NULL ? NULL : to_int(o, no);
    if (nfo != NULL)
        result = PyTuple_Pack(2, xo, nfo);
end:
    Py_XDECREF(xo);
    Py_XDECREF(nfo);
    if (o != stack_buf)
        PyMem_Free(o);
    return result;
}

PyDoc_STRVAR(bits_doc, "bits(x) -> list[int]: the positions of the set bits of x, ascending.");

static PyObject *bits(PyObject *self, PyObject *x) {
    (void)self;
    if (check_mask(x, "x") < 0)
        return NULL;
    Py_ssize_t n = ndigits(x);
    const digit *d = digits_of(x);
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned int v = (unsigned int)d[i];
        while (v) {
            int low = __builtin_ctz(v);
            PyObject *pos = PyLong_FromSsize_t(i * PyLong_SHIFT + low);
            if (pos == NULL || PyList_Append(out, pos) < 0) {
                Py_XDECREF(pos);
                Py_DECREF(out);
                return NULL;
            }
            Py_DECREF(pos);
            v &= v - 1;
        }
    }
    return out;
}

PyDoc_STRVAR(from_bits_doc,
"from_bits(positions) -> int: the int with exactly those bits set (a list of ints >= 0).");

static PyObject *from_bits(PyObject *self, PyObject *positions) {
    (void)self;
    if (!PyList_CheckExact(positions)) {
        PyErr_SetString(PyExc_TypeError, "from_bits: expected a list");
        return NULL;
    }
    Py_ssize_t len = PyList_GET_SIZE(positions);
    Py_ssize_t top = -1;
    for (Py_ssize_t k = 0; k < len; k++) {
        Py_ssize_t b = PyLong_AsSsize_t(PyList_GET_ITEM(positions, k));
        if (b == -1 && PyErr_Occurred())
            return NULL;
        if (b < 0) {
            PyErr_SetString(PyExc_ValueError, "from_bits: negative bit position");
            return NULL;
        }
        if (b > top)
            top = b;
    }
    if (top < 0)
        return PyLong_FromLong(0);
    Py_ssize_t n = top / PyLong_SHIFT + 1;
    digit *s = PyMem_Calloc((size_t)n, sizeof(digit));
    if (s == NULL)
        return PyErr_NoMemory();
    for (Py_ssize_t k = 0; k < len; k++) {
        Py_ssize_t b = PyLong_AsSsize_t(PyList_GET_ITEM(positions, k));
        s[b / PyLong_SHIFT] |= (digit)1 << (b % PyLong_SHIFT);
    }
    PyObject *r = to_int(s, n);
    PyMem_Free(s);
    return r;
}

/* The bits of term b's key (term_kbits[b], a tuple, borrowed), or NULL with an error set. */
static PyObject *key_terms(PyObject *term_kbits, Py_ssize_t b) {
    PyObject *kb = PyList_GET_ITEM(term_kbits, b);
    if (!PyTuple_CheckExact(kb) || PyTuple_GET_SIZE(kb) == 0) {
        PyErr_SetString(PyExc_IndexError, "decide: a bit without a term");
        return NULL;
    }
    return kb;
}

PyDoc_STRVAR(decide_doc,
"decide(x, nfo, term_key, term_kbits, term_exact, out, sure, flipped, steps, record,\n"
"       changed, seen, t, small, none_key, term_pids, by_id[, skip]) -> None\n\n"
"TransitionIndex._decide in one call: the keys of the flipped terms ``x`` (``term_kbits``:\n"
"bit -> the bits of its key's terms); their other terms\n"
"(not in x) that pass the changed properties' old values (``nfo``) and, narrowed as\n"
"and_steps does, the unchanged ones: those held (or, loose, may have held) on the old\n"
"record. A key with an exact term among them matched already; otherwise it goes to\n"
"``out``, to ``sure`` (unless None) when an exact term of it is in x, and to ``flipped``\n"
"when moreover no loose term of it is in play.");

static PyObject *decide(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 17 && nargs != 18) {
        PyErr_SetString(PyExc_TypeError, "decide takes 17 or 18 arguments");
        return NULL;
    }
    PyObject *skip = nargs == 18 && args[17] != Py_None ? args[17] : NULL;
    if (skip != NULL && !PyList_CheckExact(skip)) {
        PyErr_SetString(PyExc_TypeError, "decide: skip must be a list");
        return NULL;
    }
    PyObject *x = args[0], *nfo = args[1], *term_key = args[2], *term_kbits = args[3];
    PyObject *exact = args[4], *out = args[5], *sure = args[6], *flipped = args[7];
    PyObject *steps = args[8], *record = args[9], *changed = args[10], *seen = args[11];
    PyObject *t = args[12], *none_key = args[14], *term_pids = args[15], *by_id = args[16];
    Py_ssize_t small = PyLong_AsSsize_t(args[13]);
    if (small == -1 && PyErr_Occurred())
        return NULL;
    double tt = PyFloat_AsDouble(t);
    if (tt == -1.0 && PyErr_Occurred())
        return NULL;
    if (check_mask(x, "x") < 0 || check_mask(nfo, "nfo") < 0)
        return NULL;
    if (!PyList_CheckExact(term_key) || !PyList_CheckExact(term_kbits) ||
        !PyList_CheckExact(exact) || !PySet_Check(out) || !PySet_Check(flipped) ||
        (sure != Py_None && !PySet_Check(sure)) || !PyList_CheckExact(steps) ||
        !PyDict_CheckExact(record) || !PyDict_CheckExact(changed) || !PyDict_CheckExact(seen) ||
        !PyList_CheckExact(term_pids) || !PyList_CheckExact(by_id)) {
        PyErr_SetString(PyExc_TypeError, "decide: bad argument types");
        return NULL;
    }
    Py_ssize_t nx = ndigits(x), ny = ndigits(nfo), nprops = PyList_GET_SIZE(by_id);
    Py_ssize_t nterms = PyList_GET_SIZE(term_key), nexact = PyList_GET_SIZE(exact);
    if (PyList_GET_SIZE(term_kbits) < nterms)
        nterms = PyList_GET_SIZE(term_kbits);
    const digit *dx = digits_of(x);
    digit y_buf[256];
    unsigned char done_buf[256];
    digit *y = ny <= 256 ? y_buf : PyMem_Calloc((size_t)ny, sizeof(digit));
    unsigned char *done = nprops <= 256 ? done_buf : PyMem_Calloc((size_t)nprops, 1);
    PyObject *result = NULL;
    if (y == NULL || done == NULL) {
        PyErr_NoMemory();
        goto end;
    }
    if (ny <= 256)
        memset(y_buf, 0, (size_t)ny * sizeof(digit));
    if (nprops <= 256)
        memset(done_buf, 0, (size_t)nprops);
    /* pass 1: the keys' other terms, kept where nfo has them */
    int any_other = 0;
    for (Py_ssize_t i = 0; i < nx; i++) {
        unsigned int v = (unsigned int)dx[i];
        while (v) {
            Py_ssize_t b = i * PyLong_SHIFT + __builtin_ctz(v);
            v &= v - 1;
            if (b >= nterms) {
                PyErr_SetString(PyExc_IndexError, "decide: a bit without a term");
                goto end;
            }
            PyObject *kb = key_terms(term_kbits, b);
            if (kb == NULL)
                goto end;
            Py_ssize_t nk = PyTuple_GET_SIZE(kb);
            if (nk < 2)
                continue;
            /* a key is visited at its first term in x, once */
            Py_ssize_t first = -1;
            for (Py_ssize_t j = 0; j < nk && first < 0; j++) {
                Py_ssize_t ob = PyLong_AsSsize_t(PyTuple_GET_ITEM(kb, j));
                if (ob == -1 && PyErr_Occurred())
                    goto end;
                if (has_bit_d(dx, nx, ob))
                    first = ob;
            }
            if (first != b)
                continue;
            for (Py_ssize_t j = 0; j < nk; j++) {
                Py_ssize_t ob = PyLong_AsSsize_t(PyTuple_GET_ITEM(kb, j));
                if (ob < 0 || has_bit_d(dx, nx, ob))
                    continue;
                if (has_bit(nfo, ob)) {
                    y[ob / PyLong_SHIFT] |= (digit)1 << (ob % PyLong_SHIFT);
                    any_other = 1;
                }
            }
        }
    }
    ny = any_other ? trim(y, ny) : 0;
    if (ny > 0) { /* ... narrowed on the unchanged properties of the new record */
        ny = narrow(y, ny, steps, record, changed, seen, t, tt, small, none_key, term_pids,
                    by_id, done, skip);
        if (ny < 0)
            goto end;
    }
    /* pass 2: the verdict per key, at its first term in x */
    for (Py_ssize_t i = 0; i < nx; i++) {
        unsigned int v = (unsigned int)dx[i];
        while (v) {
            Py_ssize_t b = i * PyLong_SHIFT + __builtin_ctz(v);
            v &= v - 1;
            PyObject *k = PyList_GET_ITEM(term_key, b);
            PyObject *kb = key_terms(term_kbits, b);
            if (kb == NULL)
                goto end;
            Py_ssize_t nk = PyTuple_GET_SIZE(kb);
            int held = 0, in_x = 0, unsure = 0, first = 1;
            for (Py_ssize_t j = 0; j < nk; j++) {
                Py_ssize_t ob = PyLong_AsSsize_t(PyTuple_GET_ITEM(kb, j));
                if (ob == -1 && PyErr_Occurred())
                    goto end;
                if (ob < 0 || ob >= nexact) {
                    PyErr_SetString(PyExc_IndexError, "decide: a bit without a term");
                    goto end;
                }
                int ix = has_bit_d(dx, nx, ob);
                if (ix && ob < b) { /* visited at an earlier term */
                    first = 0;
                    break;
                }
                int ex = PyList_GET_ITEM(exact, ob) == Py_True;
                if (has_bit_d(y, ny, ob)) { /* held on the old record (exact), or may have */
                    if (ex) {
                        held = 1;
                        break;
                    }
                    unsure = 1;
                } else if (ix) {
                    if (ex)
                        in_x = 1;
                    else
                        unsure = 1; /* loose: its old (or new) state is unknown */
                }
            }
            if (!first || held)
                continue; /* already decided, or an exact term held on the old record */
            if (PySet_Add(out, k) < 0)
                goto end;
            if (in_x) {
                if (sure != Py_None && PySet_Add(sure, k) < 0)
                    goto end;
                if (!unsure && PySet_Add(flipped, k) < 0)
                    goto end;
            }
        }
    }
    result = Py_None;
    Py_INCREF(result);
end:
    if (y != NULL && y != y_buf)
        PyMem_Free(y);
    if (done != NULL && done != done_buf)
        PyMem_Free(done);
    return result;
}

static PyMethodDef methods[] = {
    {"and_steps", (PyCFunction)(void (*)(void))and_steps, METH_FASTCALL, and_steps_doc},
    {"flip", (PyCFunction)(void (*)(void))flip, METH_FASTCALL, flip_doc},
    {"warm", warm, METH_O, warm_doc},
    {"decide", (PyCFunction)(void (*)(void))decide, METH_FASTCALL, decide_doc},
    {"bits", bits, METH_O, bits_doc},
    {"from_bits", from_bits, METH_O, from_bits_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "crmflow.criteria._native",
    "The trigger index's innermost loop in C (see _native.c).", -1, methods,
};

PyMODINIT_FUNC PyInit__native(void) {
#ifdef HAVE_POPCNT_BUILD
    __builtin_cpu_init();
    if (__builtin_cpu_supports("popcnt"))
        at_most = at_most_popcnt;
#endif
    str_nf = PyUnicode_InternFromString("nf");
    str_list = PyUnicode_InternFromString("list");
    if (str_nf == NULL || str_list == NULL)
        return NULL;
    return PyModule_Create(&module);
}
