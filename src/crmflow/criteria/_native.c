/* The trigger index's innermost loop, in C (see index.py, "Terms as bitsets").
 *
 * The index narrows a candidate set of terms (a Python int, one bit per term) by the masks of
 * the record's property values, one property at a time, stopping as soon as none is left.
 * In Python every `x &= mask` allocates a new int as wide as the index (2 KB at 10,000
 * workflows, past the small-object allocator) and every step is a few dict lookups and
 * attribute reads; here the candidates live in one scratch array of the int's own digits,
 * and-ed in place and trimmed as their top digits clear, and the per-property cache lookups
 * are C dict lookups. Only a cache miss calls back into Python (`_Prop.nf`), which computes
 * the mask and fills the cache exactly as the pure-Python path does.
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

static PyObject *str_nf; /* "nf" */

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

/* Are at most `limit` bits set in s[0:n]? Stops counting past the limit: a wide candidate
 * set is decided in its first few digits. */
static int at_most(const digit *s, Py_ssize_t n, Py_ssize_t limit) {
    Py_ssize_t c = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned int v = (unsigned int)s[i];
        while (v) { /* Kernighan: one step per set bit, no popcnt instruction needed */
            v &= v - 1;
            if (++c > limit)
                return 0;
        }
    }
    return 1;
}

/* Borrowed dict lookup; NULL with no error set when absent (or when d is not a dict). */
static PyObject *lookup(PyObject *d, PyObject *key) {
    if (!PyDict_CheckExact(d))
        return NULL;
    return PyDict_GetItemWithError(d, key);
}

enum { KIND_FAST = 0, KIND_REGION = 1, KIND_SPANS = 2, KIND_CALL = 3 };
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
    Py_ssize_t rn = -1, rt = -1;
    if (num_cs != Py_None)
        rn = region_among(num_cs, (double)iv);
    if (ts_cs != Py_None)
        rt = region_among(ts_cs, (double)iv / 1000.0);
    PyObject *key = PyTuple_New(3);
    if (key == NULL)
        return NULL;
    PyObject *a = PyLong_FromSsize_t(rn), *b = PyLong_FromSsize_t(rt);
    if (a == NULL || b == NULL) {
        Py_XDECREF(a);
        Py_XDECREF(b);
        Py_DECREF(key);
        return NULL;
    }
    PyTuple_SET_ITEM(key, 0, a);
    PyTuple_SET_ITEM(key, 1, b);
    Py_INCREF(Py_False);
    PyTuple_SET_ITEM(key, 2, Py_False);
    PyObject *m = lookup(PyTuple_GET_ITEM(step, 3), key);
    Py_DECREF(key);
    return m;
}

/* _Prop._span_false for an epoch-milliseconds int: the terms whose relative-date condition
 * the value fails at ``t`` (POSIX seconds), with the predicates' own float expressions. Each
 * span family's failing mask is cleared from s[0:n]; returns the new (trimmed) length. */
static Py_ssize_t clear_span_false(digit *s, Py_ssize_t n, PyObject *spans, double x, double t) {
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(spans) && n > 0; k++) {
        PyObject *fam = PyTuple_GET_ITEM(spans, k);
        long op = PyLong_AsLong(PyTuple_GET_ITEM(fam, 0));
        PyObject *cs = PyTuple_GET_ITEM(fam, 1), *cum = PyTuple_GET_ITEM(fam, 2);
        PyObject *fail = NULL;
        Py_ssize_t lo = 0, hi = PyList_GET_SIZE(cs);
        if (op == SPAN_WITHIN_LAST && x > t) {
            fail = PyTuple_GET_ITEM(fam, 3);
        } else if (op == SPAN_WITHIN_NEXT && x < t) {
            fail = PyTuple_GET_ITEM(fam, 3);
        } else {
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
            fail = PyList_GET_ITEM(cum, lo);
        }
        Py_ssize_t nf = ndigits(fail);
        const digit *d = digits_of(fail);
        for (Py_ssize_t i = 0; i < n && i < nf; i++)
            s[i] &= ~d[i];
        n = trim(s, n);
    }
    return n;
}

PyDoc_STRVAR(and_steps_doc,
"and_steps(x, steps, record, changed, seen, t, small, none_key) -> int\n\n"
"``x`` and-ed with the mask of each step's property value in ``record``, skipping the\n"
"properties in ``changed``, stopping at 0, or (small >= 0) once at most ``small`` terms are\n"
"left (checked after the first step and then every 4th, as the Python loop does). A step is\n"
"(prop, name, kind, cache, raw, raw_int, num_cs, ts_cs, spans) (_Prop.step): kind 0 looks a\n"
"str / None value up in ``cache`` (None under ``none_key``); kind 1 a str / None in ``raw``,\n"
"an exact int in ``raw_int`` or by its region among ``num_cs`` / ``ts_cs`` in ``cache``;\n"
"kind 2 an exact int the same way, then clears the relative-date conditions (``spans``) it\n"
"fails at ``t``. A miss, another value, and kind 3 take the mask kept in ``seen`` for the prop\n"
"or else call prop.nf(value, t), keeping its answer in ``seen``.");

static PyObject *and_steps(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 8) {
        PyErr_SetString(PyExc_TypeError, "and_steps takes 8 arguments");
        return NULL;
    }
    PyObject *x = args[0], *steps = args[1], *record = args[2], *changed = args[3];
    PyObject *seen = args[4], *t = args[5], *none_key = args[7];
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
    Py_ssize_t n = ndigits(x);
    if (n == 0)
        return PyLong_FromLong(0);
    digit stack_buf[256];
    digit *s = n <= 256 ? stack_buf : PyMem_Malloc((size_t)n * sizeof(digit));
    if (s == NULL)
        return PyErr_NoMemory();
    memcpy(s, digits_of(x), (size_t)n * sizeof(digit));
    PyObject *result = NULL;
    Py_ssize_t count = 0;
    Py_ssize_t len = PyList_GET_SIZE(steps);
    for (Py_ssize_t k = 0; k < len; k++) {
        PyObject *step = PyList_GET_ITEM(steps, k);
        if (!PyTuple_CheckExact(step) || PyTuple_GET_SIZE(step) != 9) {
            PyErr_SetString(PyExc_TypeError, "and_steps: a step is a 9-tuple");
            goto done;
        }
        PyObject *prop = PyTuple_GET_ITEM(step, 0);
        PyObject *name = PyTuple_GET_ITEM(step, 1);
        if (PyDict_GetItemWithError(changed, name) != NULL)
            continue;
        if (PyErr_Occurred())
            goto done;
        PyObject *owned = NULL, *v = NULL, *m = NULL;
        long long iv = 0;
        int partial = 0; /* m is the static part of a relative-date property's mask */
        {
            v = PyDict_GetItemWithError(record, name);
            if (v == NULL) {
                if (PyErr_Occurred())
                    goto done;
                v = Py_None;
            }
            long kind = PyLong_AsLong(PyTuple_GET_ITEM(step, 2));
            if (kind == KIND_FAST) {
                PyObject *key = PyUnicode_CheckExact(v) ? v : v == Py_None ? none_key : NULL;
                if (key != NULL)
                    m = lookup(PyTuple_GET_ITEM(step, 3), key);
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
            } else if (kind == KIND_SPANS && PyLong_CheckExact(v) && plain_int(v, &iv)) {
                /* the static part from the region caches, the relative dates below: this
                 * mask is not the whole one, so it is not kept in ``seen`` */
                m = lookup(PyTuple_GET_ITEM(step, 5), v);
                if (m == NULL && !PyErr_Occurred())
                    m = region_mask(step, v);
                if (m != NULL)
                    partial = 1;
            }
            if (m == NULL) {
                /* not in the caches: computed earlier in this event, else by nf (and kept:
                 * only these, as a cache hit costs no more than a lookup in ``seen``) */
                if (PyErr_Occurred())
                    goto done;
                m = PyDict_GetItemWithError(seen, prop);
                if (m == NULL) {
                    if (PyErr_Occurred())
                        goto done;
                    owned = PyObject_CallMethodObjArgs(prop, str_nf, v, t, NULL);
                    if (owned == NULL)
                        goto done;
                    m = owned;
                    if (PyDict_SetItem(seen, prop, m) < 0) {
                        Py_DECREF(owned);
                        goto done;
                    }
                }
            }
        }
        if (check_mask(m, "mask") < 0) {
            Py_XDECREF(owned);
            goto done;
        }
        Py_ssize_t nm = ndigits(m);
        const digit *d = digits_of(m);
        if (nm < n)
            n = nm; /* the mask's missing top digits are zero */
        for (Py_ssize_t i = 0; i < n; i++)
            s[i] &= d[i];
        Py_XDECREF(owned);
        n = trim(s, n);
        if (partial && n > 0) /* iv: the value, a plain int (checked above) */
            n = clear_span_false(s, n, PyTuple_GET_ITEM(step, 8), (double)iv / 1000.0, tt);
        if (n == 0)
            break;
        count++;
        if (small >= 0 && (count == 1 || (count & 3) == 0) && at_most(s, n, small))
            break;
    }
    result = to_int(s, n);
done:
    if (s != stack_buf)
        PyMem_Free(s);
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

/* Is bit b of the non-negative int x set? */
static inline int has_bit(PyObject *x, Py_ssize_t b) {
    Py_ssize_t i = b / PyLong_SHIFT;
    return i < ndigits(x) && (digits_of(x)[i] >> (b % PyLong_SHIFT)) & 1;
}

PyDoc_STRVAR(decide_keys_doc,
"decide_keys(x, term_key, key_bits) -> (keys, others)\n\n"
"The keys of the terms in ``x`` (``term_key``: bit -> key), in order of first bit, and the\n"
"bits of those keys' other terms (``key_bits``: key -> its terms' bits) that are not in ``x``\n"
"(TransitionIndex._decide).");

static PyObject *decide_keys(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "decide_keys takes 3 arguments");
        return NULL;
    }
    PyObject *x = args[0], *term_key = args[1], *key_bits = args[2];
    if (check_mask(x, "x") < 0)
        return NULL;
    if (!PyList_CheckExact(term_key) || !PyDict_CheckExact(key_bits)) {
        PyErr_SetString(PyExc_TypeError, "decide_keys: term_key must be a list, key_bits a dict");
        return NULL;
    }
    PyObject *keys = PyList_New(0), *seen = PySet_New(NULL), *others = PyList_New(0);
    PyObject *result = NULL;
    if (keys == NULL || seen == NULL || others == NULL)
        goto done;
    Py_ssize_t n = ndigits(x);
    const digit *d = digits_of(x);
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned int v = (unsigned int)d[i];
        while (v) {
            Py_ssize_t b = i * PyLong_SHIFT + __builtin_ctz(v);
            v &= v - 1;
            if (b >= PyList_GET_SIZE(term_key)) {
                PyErr_SetString(PyExc_IndexError, "decide_keys: a bit without a term");
                goto done;
            }
            PyObject *k = PyList_GET_ITEM(term_key, b);
            int known = PySet_Contains(seen, k);
            if (known < 0)
                goto done;
            if (known)
                continue;
            if (PySet_Add(seen, k) < 0 || PyList_Append(keys, k) < 0)
                goto done;
            PyObject *kb = PyDict_GetItemWithError(key_bits, k);
            if (kb == NULL) {
                if (!PyErr_Occurred())
                    PyErr_SetObject(PyExc_KeyError, k);
                goto done;
            }
            if (!PyTuple_CheckExact(kb)) {
                PyErr_SetString(PyExc_TypeError, "decide_keys: key_bits values are tuples");
                goto done;
            }
            if (PyTuple_GET_SIZE(kb) < 2)
                continue;
            for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(kb); j++) {
                PyObject *bo = PyTuple_GET_ITEM(kb, j);
                Py_ssize_t ob = PyLong_AsSsize_t(bo);
                if (ob == -1 && PyErr_Occurred())
                    goto done;
                if (!has_bit(x, ob) && PyList_Append(others, bo) < 0)
                    goto done;
            }
        }
    }
    result = PyTuple_Pack(2, keys, others);
done:
    Py_XDECREF(keys);
    Py_XDECREF(seen);
    Py_XDECREF(others);
    return result;
}

PyDoc_STRVAR(decide_finish_doc,
"decide_finish(keys, x, y, key_bits, term_exact, out, sure, flipped) -> None\n\n"
"TransitionIndex._decide's verdict per key: ``x`` its flipped terms, ``y`` its other terms\n"
"that held (or, loose, may have held) on the old record. A key with an exact term in ``y``\n"
"matched already; otherwise it goes to ``out``, to ``sure`` (unless None) when an exact term\n"
"of it is in ``x``, and to ``flipped`` when moreover no loose term of it is in play.");

static PyObject *decide_finish(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 8) {
        PyErr_SetString(PyExc_TypeError, "decide_finish takes 8 arguments");
        return NULL;
    }
    PyObject *keys = args[0], *x = args[1], *y = args[2], *key_bits = args[3];
    PyObject *exact = args[4], *out = args[5], *sure = args[6], *flipped = args[7];
    if (check_mask(x, "x") < 0 || check_mask(y, "y") < 0)
        return NULL;
    if (!PyList_CheckExact(keys) || !PyDict_CheckExact(key_bits) || !PyList_CheckExact(exact) ||
        !PySet_Check(out) || !PySet_Check(flipped) || (sure != Py_None && !PySet_Check(sure))) {
        PyErr_SetString(PyExc_TypeError, "decide_finish: bad argument types");
        return NULL;
    }
    Py_ssize_t nexact = PyList_GET_SIZE(exact);
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(keys); i++) {
        PyObject *k = PyList_GET_ITEM(keys, i);
        PyObject *kb = PyDict_GetItemWithError(key_bits, k);
        if (kb == NULL || !PyTuple_CheckExact(kb)) {
            if (!PyErr_Occurred())
                PyErr_SetObject(PyExc_KeyError, k);
            return NULL;
        }
        int held = 0, in_x = 0, unsure = 0;
        for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(kb); j++) {
            Py_ssize_t b = PyLong_AsSsize_t(PyTuple_GET_ITEM(kb, j));
            if (b == -1 && PyErr_Occurred())
                return NULL;
            if (b < 0 || b >= nexact) {
                PyErr_SetString(PyExc_IndexError, "decide_finish: a bit without a term");
                return NULL;
            }
            int ex = PyList_GET_ITEM(exact, b) == Py_True;
            if (has_bit(y, b)) { /* held on the old record (exact), or may have (loose) */
                if (ex) {
                    held = 1;
                    break;
                }
                unsure = 1;
            } else if (has_bit(x, b)) {
                if (ex)
                    in_x = 1;
                else
                    unsure = 1; /* loose: its old (or new) state is unknown */
            }
        }
        if (held)
            continue; /* an exact term held on the old record: no transition */
        if (PySet_Add(out, k) < 0)
            return NULL;
        if (in_x) {
            if (sure != Py_None && PySet_Add(sure, k) < 0)
                return NULL;
            if (!unsure && PySet_Add(flipped, k) < 0)
                return NULL;
        }
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"decide_keys", (PyCFunction)(void (*)(void))decide_keys, METH_FASTCALL, decide_keys_doc},
    {"decide_finish", (PyCFunction)(void (*)(void))decide_finish, METH_FASTCALL,
     decide_finish_doc},
    {"and_steps", (PyCFunction)(void (*)(void))and_steps, METH_FASTCALL, and_steps_doc},
    {"bits", bits, METH_O, bits_doc},
    {"from_bits", from_bits, METH_O, from_bits_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "crmflow.criteria._native",
    "The trigger index's innermost loop in C (see _native.c).", -1, methods,
};

PyMODINIT_FUNC PyInit__native(void) {
    str_nf = PyUnicode_InternFromString("nf");
    if (str_nf == NULL)
        return NULL;
    return PyModule_Create(&module);
}
