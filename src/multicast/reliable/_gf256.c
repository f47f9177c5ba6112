/* multicast.reliable._gf256: the one primitive the parity code needs, in C.
 *
 * combine(out, sources, coefficients) sets out = sum of coefficients[i] * sources[i] over
 * GF(2^8) (polynomial x^8 + x^4 + x^3 + x^2 + 1, 0x11D: zfec's field, so the parity symbols
 * are zfec's), byte by byte: out[j] = XOR over i of mul(coefficients[i], sources[i][j]).
 * Parity symbols are such sums of a block's data symbols, and so are rebuilt data symbols.
 *
 * Multiplying a region by a constant uses two 16-entry tables (the products of the low and
 * of the high nibbles), looked up 32 bytes at a time with AVX2 where the CPU has it, else
 * one 256-entry table row per coefficient, a byte at a time. The GIL is released while it
 * computes; every buffer is held (and checked for its length) before that.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_AVX2_KERNEL 1
#endif

#define MAX_SOURCES 256

static uint8_t products[256][256]; /* products[c][x] = c * x */
static uint8_t low_nibbles[256][16];  /* c * x for x < 16 */
static uint8_t high_nibbles[256][16]; /* c * (x << 4) for x < 16 */
static int use_avx2;

static uint8_t multiply(uint8_t a, uint8_t b) {
    unsigned product = 0, x = a;
    for (unsigned y = b; y != 0; y >>= 1) {
        if (y & 1u)
            product ^= x;
        x <<= 1;
        if (x & 0x100u)
            x ^= 0x11Du;
    }
    return (uint8_t)product;
}

static void build_tables(void) {
    for (unsigned c = 0; c < 256; c++) {
        for (unsigned x = 0; x < 256; x++)
            products[c][x] = multiply((uint8_t)c, (uint8_t)x);
        for (unsigned x = 0; x < 16; x++) {
            low_nibbles[c][x] = products[c][x];
            high_nibbles[c][x] = products[c][x << 4];
        }
    }
}

/* dst ^= c * src over `size` bytes, a byte at a time (c > 1) or a word at a time (c == 1). */
static void add_product_plain(uint8_t *dst, const uint8_t *src, size_t size, uint8_t c) {
    size_t at = 0;
    if (c == 1) {
        for (; at + 8 <= size; at += 8) {
            uint64_t a, b;
            memcpy(&a, dst + at, 8);
            memcpy(&b, src + at, 8);
            a ^= b;
            memcpy(dst + at, &a, 8);
        }
        for (; at < size; at++)
            dst[at] ^= src[at];
        return;
    }
    const uint8_t *row = products[c];
    for (; at < size; at++)
        dst[at] ^= row[src[at]];
}

#ifdef HAVE_AVX2_KERNEL
__attribute__((target("avx2"))) static void add_product_avx2(uint8_t *dst, const uint8_t *src,
                                                             size_t size, uint8_t c) {
    const __m256i low = _mm256_broadcastsi128_si256(
        _mm_loadu_si128((const __m128i *)(const void *)low_nibbles[c]));
    const __m256i high = _mm256_broadcastsi128_si256(
        _mm_loadu_si128((const __m128i *)(const void *)high_nibbles[c]));
    const __m256i mask = _mm256_set1_epi8(0x0f);
    size_t at = 0;
    for (; at + 32 <= size; at += 32) {
        __m256i x = _mm256_loadu_si256((const __m256i *)(const void *)(src + at));
        __m256i product =
            _mm256_xor_si256(_mm256_shuffle_epi8(low, _mm256_and_si256(x, mask)),
                             _mm256_shuffle_epi8(high, _mm256_and_si256(_mm256_srli_epi64(x, 4), mask)));
        __m256i d = _mm256_loadu_si256((const __m256i *)(void *)(dst + at));
        _mm256_storeu_si256((__m256i *)(void *)(dst + at), _mm256_xor_si256(d, product));
    }
    add_product_plain(dst + at, src + at, size - at, c);
}
#endif

static void add_product(uint8_t *dst, const uint8_t *src, size_t size, uint8_t c) {
    if (c == 0)
        return;
#ifdef HAVE_AVX2_KERNEL
    if (use_avx2 && c != 1) {
        add_product_avx2(dst, src, size, c);
        return;
    }
#endif
    add_product_plain(dst, src, size, c);
}

static void release(Py_buffer *views, Py_ssize_t count) {
    for (Py_ssize_t n = 0; n < count; n++)
        PyBuffer_Release(&views[n]);
}

static PyObject *combine(PyObject *module, PyObject *args) {
    PyObject *out_object, *sources_object;
    Py_buffer out, coefficients;
    (void)module;
    if (!PyArg_ParseTuple(args, "OOy*:combine", &out_object, &sources_object, &coefficients))
        return NULL;
    if (PyObject_GetBuffer(out_object, &out, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) {
        PyBuffer_Release(&coefficients);
        return NULL;
    }
    PyObject *sources = PySequence_Fast(sources_object, "combine: sources must be a sequence");
    if (sources == NULL) {
        PyBuffer_Release(&out);
        PyBuffer_Release(&coefficients);
        return NULL;
    }
    Py_ssize_t count = PySequence_Fast_GET_SIZE(sources);
    Py_buffer views[MAX_SOURCES];
    Py_ssize_t held = 0;
    const char *problem = NULL;
    if (count > MAX_SOURCES)
        problem = "combine: at most 256 sources";
    else if (coefficients.len != count)
        problem = "combine: one coefficient per source";
    for (; problem == NULL && held < count; held++) {
        PyObject *item = PySequence_Fast_GET_ITEM(sources, held);
        if (PyObject_GetBuffer(item, &views[held], PyBUF_C_CONTIGUOUS) < 0)
            break;
        if (views[held].len != out.len) {
            problem = "combine: every source must be as long as out";
            held++;
        }
    }
    if (problem == NULL && !PyErr_Occurred()) {
        const uint8_t *factors = (const uint8_t *)coefficients.buf;
        uint8_t *target = (uint8_t *)out.buf;
        size_t size = (size_t)out.len;
        Py_BEGIN_ALLOW_THREADS
        memset(target, 0, size);
        for (Py_ssize_t n = 0; n < count; n++)
            add_product(target, (const uint8_t *)views[n].buf, size, factors[n]);
        Py_END_ALLOW_THREADS
    } else if (problem != NULL) {
        PyErr_SetString(PyExc_ValueError, problem);
    }
    release(views, held);
    Py_DECREF(sources);
    PyBuffer_Release(&out);
    PyBuffer_Release(&coefficients);
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *kernel(PyObject *module, PyObject *unused) {
    (void)module;
    (void)unused;
    return PyUnicode_FromString(use_avx2 ? "avx2" : "table");
}

static PyMethodDef methods[] = {
    {"combine", combine, METH_VARARGS,
     "combine(out, sources, coefficients): out = sum of coefficients[i] * sources[i] over\n"
     "GF(2^8) (polynomial 0x11D), byte by byte. out: a writable buffer; sources: buffers as\n"
     "long as out (at most 256); coefficients: one byte per source."},
    {"kernel", kernel, METH_NOARGS, "kernel(): 'avx2' or 'table', the multiplication in use."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef gf256_module = {
    PyModuleDef_HEAD_INIT, "multicast.reliable._gf256",
    "GF(2^8) multiply-and-add of byte regions: the parity code's arithmetic.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__gf256(void) {
    build_tables();
#ifdef HAVE_AVX2_KERNEL
    __builtin_cpu_init();
    const char *wanted = getenv("MULTICAST_GF256"); /* "table": the portable kernel (tests) */
    use_avx2 = __builtin_cpu_supports("avx2") && (wanted == NULL || strcmp(wanted, "table") != 0);
#endif
    return PyModule_Create(&gf256_module);
}
