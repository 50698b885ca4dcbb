/*
 * charcode.server.core._lstm: the LSTM recurrence of core/lstm.py in C.
 *
 * Two entry points (and isa()/set_isa() for tests), on float32 arrays passed
 * through the buffer protocol (C-contiguous, format "f"; no numpy headers):
 *
 *   layer(proj, w_hh_t, h, c, out)
 *       One layer over a sequence (batch 1): for t in range(T),
 *       g = proj[t] + h @ w_hh_t, gates in the order (i, f, o, g);
 *       c = f*c + i*tanh(g); h = o*tanh(c); out[t] = h.
 *       proj (T, 4H), w_hh_t (H, 4H), h and c (H,) updated in place, out (T, H).
 *
 *   Cell(table0, w_hh_t, w_ih_t, bias, head_w_t, head_b)
 *       An LSTM's weights (w_ih_t and bias for layers 1..), kept as views, so
 *       that a call checks only its own arguments, and packed (below).
 *     .step(symbols, h, c, h_out, c_out, logits=None)
 *       Every layer of one step for a few batch rows, and optionally the
 *       head: what NumpyLSTM._advance and NumpyLSTM.step do. States
 *       (layers, batch, hidden), logits (batch, vocab).
 *     .layer(k, proj, h, c, out)
 *       layer() with the weights of layer k.
 *
 * The kernels are compiled twice: for the baseline target (plain C that the
 * compiler vectorises) and, on x86, with __attribute__((target("avx2,fma")))
 * and intrinsics; the AVX2 set is chosen at import time where
 * __builtin_cpu_supports finds AVX2 and FMA. Nothing needs -march=native.
 *
 * The matrix products:
 *   - baseline: "axpy" form over contiguous rows of the transposed weights,
 *     eight rows at a time, each vector of g loaded and stored once per eight
 *     rows (for several batch rows, in column tiles that stay in L1);
 *   - AVX2: the weights packed in panels of 16 columns (contiguous (n, 16)
 *     blocks): accumulators for 1 to 6 batch rows x 16 columns (one row: 4
 *     panels x 16) stay in registers while a panel streams by, and each
 *     vector of weights is loaded once for all the rows. A Cell packs its
 *     weights once (as much memory again, where NumpyLSTM no longer keeps the
 *     stacked [W_ih; W_hh] the NumPy steps use); the module's layer() packs
 *     w_hh_t per call when it reads 64 positions or more.
 * At batch 1 each weight is used once per step, so the products run at the
 * speed the weights come into L1: on the development CPU (Zen 3: 32 bytes a
 * cycle from L2, and from L3, where a 2x256 model's 3.3 MB are) about 65
 * GB/s whether or not they fit in L2, like OpenBLAS's sgemv. Five batch rows
 * cost about twice one.
 *
 * sigmoid and tanh come from one branch-free exp approximation (Cody-Waite
 * range reduction, a degree-7 Taylor polynomial, the power of two built in
 * the exponent bits): under 2e-7 absolute error, and it vectorises, where
 * libm's tanhf costs ~15 ns a call.
 *
 * The computation runs with the GIL released.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
#define ALWAYS_INLINE static inline __attribute__((always_inline))
#else
#define ALWAYS_INLINE static inline
#endif

/* CHARCODE_LSTM_GENERIC_ONLY builds what a non-x86 target gets (to check it on x86). */
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__)) && \
    !defined(CHARCODE_LSTM_GENERIC_ONLY)
#define HAVE_AVX2_KERNELS 1
#define TARGET_AVX2 __attribute__((target("avx2,fma")))
#include <immintrin.h>
#else
#define HAVE_AVX2_KERNELS 0
#endif

#define MAX_LAYERS 64

/* ---- activations ---- */

/* exp(x) for float x, clamped to [-87, 87]: x = k ln2 + r with |r| <= ln2/2, exp(r) from its
 * Taylor series to r^7 (truncation error < 6e-9 relative), 2^k put into the exponent bits. */
ALWAYS_INLINE float exp_approx(float x) {
    const float log2e = 1.44269504088896341f;
    const float ln2_hi = 0.693359375f;          /* 355/512: k * ln2_hi is exact */
    const float ln2_lo = -2.12194440054690583e-4f; /* ln2 - ln2_hi */
    const float shift = 12582912.0f;            /* 1.5 * 2^23: adding it rounds to an integer */
    x = x < -87.0f ? -87.0f : x;
    x = x > 87.0f ? 87.0f : x;
    float ks = x * log2e + shift;
    float k = ks - shift;
    float r = x - k * ln2_hi;
    r = r - k * ln2_lo;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    uint32_t kbits, shbits, sbits;
    memcpy(&kbits, &ks, 4);
    memcpy(&shbits, &shift, 4);
    sbits = (kbits - shbits + 127u) << 23; /* k in [-126, 126]: a normal power of two */
    float scale;
    memcpy(&scale, &sbits, 4);
    return p * scale;
}

ALWAYS_INLINE float sigmoid_approx(float x) { return 1.0f / (1.0f + exp_approx(-x)); }

ALWAYS_INLINE float tanh_approx(float x) { return 2.0f / (1.0f + exp_approx(-2.0f * x)) - 1.0f; }

/* ---- kernels ---- */

/* g[b*ldg + j] += sum_{i<n} x[b*ldx + i] * w[i*m + j] for b < B, j < m: eight rows of w at a
 * time, each applied to every batch row while it is in L1; for several rows the columns go in
 * tiles, so that a tile of g for each batch row stays in L1 too. */
#define COL_TILE 256
#define PANEL 16
#define PACK_MIN_POSITIONS 64

ALWAYS_INLINE void gemv_generic(const float *restrict x, ptrdiff_t ldx, Py_ssize_t B,
                         const float *restrict w, const float *restrict packed, Py_ssize_t n,
                         Py_ssize_t m, float *restrict g, ptrdiff_t ldg) {
    (void)packed;
    const Py_ssize_t tile = B == 1 ? m : COL_TILE;
    for (Py_ssize_t j0 = 0; j0 < m; j0 += tile) {
        const Py_ssize_t j1 = j0 + tile < m ? j0 + tile : m;
        Py_ssize_t i = 0;
        for (; i + 8 <= n; i += 8) {
            const float *restrict w0 = w + i * m;
            const float *restrict w1 = w0 + m;
            const float *restrict w2 = w1 + m;
            const float *restrict w3 = w2 + m;
            const float *restrict w4 = w3 + m;
            const float *restrict w5 = w4 + m;
            const float *restrict w6 = w5 + m;
            const float *restrict w7 = w6 + m;
            for (Py_ssize_t b = 0; b < B; b++) {
                const float *xb = x + b * ldx + i;
                const float a0 = xb[0], a1 = xb[1], a2 = xb[2], a3 = xb[3];
                const float a4 = xb[4], a5 = xb[5], a6 = xb[6], a7 = xb[7];
                float *restrict gb = g + b * ldg;
                for (Py_ssize_t j = j0; j < j1; j++)
                    gb[j] += ((a0 * w0[j] + a1 * w1[j]) + (a2 * w2[j] + a3 * w3[j])) +
                             ((a4 * w4[j] + a5 * w5[j]) + (a6 * w6[j] + a7 * w7[j]));
            }
        }
        for (; i < n; i++) {
            const float *restrict w0 = w + i * m;
            for (Py_ssize_t b = 0; b < B; b++) {
                const float a0 = x[b * ldx + i];
                float *restrict gb = g + b * ldg;
                for (Py_ssize_t j = j0; j < j1; j++) gb[j] += a0 * w0[j];
            }
        }
    }
}

#if HAVE_AVX2_KERNELS
#define AVX2_INLINE static inline __attribute__((always_inline, target("avx2,fma")))

/* sum_{r<8} a[r] * w[r*m + 0..8), as a tree (short dependency chains) */
AVX2_INLINE __m256 rows8_avx2(const __m256 *a, const float *w, Py_ssize_t m) {
    const __m256 p01 = _mm256_fmadd_ps(a[1], _mm256_loadu_ps(w + m),
                                       _mm256_mul_ps(a[0], _mm256_loadu_ps(w)));
    const __m256 p23 = _mm256_fmadd_ps(a[3], _mm256_loadu_ps(w + 3 * m),
                                       _mm256_mul_ps(a[2], _mm256_loadu_ps(w + 2 * m)));
    const __m256 p45 = _mm256_fmadd_ps(a[5], _mm256_loadu_ps(w + 5 * m),
                                       _mm256_mul_ps(a[4], _mm256_loadu_ps(w + 4 * m)));
    const __m256 p67 = _mm256_fmadd_ps(a[7], _mm256_loadu_ps(w + 7 * m),
                                       _mm256_mul_ps(a[6], _mm256_loadu_ps(w + 6 * m)));
    return _mm256_add_ps(_mm256_add_ps(p01, p23), _mm256_add_ps(p45, p67));
}

/* The same product as gemv_generic with AVX2 and FMA intrinsics, for weights that are not
 * packed (a short layer() call): for eight rows of w the factors are broadcast into registers,
 * and each vector of g is loaded and stored once per eight rows. */
TARGET_AVX2 static void gemv_avx2_rows(const float *restrict x, ptrdiff_t ldx, Py_ssize_t B,
                                       const float *restrict w, Py_ssize_t n, Py_ssize_t m,
                                       float *restrict g, ptrdiff_t ldg) {
    const Py_ssize_t tile = B == 1 ? m : COL_TILE; /* a multiple of 8, or all of m */
    for (Py_ssize_t j0 = 0; j0 < m; j0 += tile) {
        const Py_ssize_t j1 = j0 + tile < m ? j0 + tile : m;
        const Py_ssize_t jv = j0 + ((j1 - j0) & ~(Py_ssize_t)7);
        Py_ssize_t i = 0;
        for (; i + 8 <= n; i += 8) {
            const float *w0 = w + i * m;
            for (Py_ssize_t b = 0; b < B; b++) {
                const float *xb = x + b * ldx + i;
                float *gb = g + b * ldg;
                __m256 a[8];
                for (int r = 0; r < 8; r++) a[r] = _mm256_broadcast_ss(xb + r);
                Py_ssize_t j = j0;
                for (; j + 16 <= jv; j += 16) {
                    const __m256 t0 = rows8_avx2(a, w0 + j, m);
                    const __m256 t1 = rows8_avx2(a, w0 + j + 8, m);
                    _mm256_storeu_ps(gb + j, _mm256_add_ps(_mm256_loadu_ps(gb + j), t0));
                    _mm256_storeu_ps(gb + j + 8, _mm256_add_ps(_mm256_loadu_ps(gb + j + 8), t1));
                }
                for (; j < jv; j += 8) {
                    const __m256 t0 = rows8_avx2(a, w0 + j, m);
                    _mm256_storeu_ps(gb + j, _mm256_add_ps(_mm256_loadu_ps(gb + j), t0));
                }
                for (; j < j1; j++) {
                    const float *wj = w0 + j;
                    float acc = gb[j];
                    for (int r = 0; r < 8; r++) acc += xb[r] * wj[r * m];
                    gb[j] = acc;
                }
            }
        }
        for (; i < n; i++) {
            const float *w0 = w + i * m;
            for (Py_ssize_t b = 0; b < B; b++) {
                const float a = x[b * ldx + i];
                float *gb = g + b * ldg;
                const __m256 av = _mm256_set1_ps(a);
                Py_ssize_t j = j0;
                for (; j < jv; j += 8)
                    _mm256_storeu_ps(gb + j, _mm256_fmadd_ps(av, _mm256_loadu_ps(w0 + j),
                                                             _mm256_loadu_ps(gb + j)));
                for (; j < j1; j++) gb[j] += a * w0[j];
            }
        }
    }
}

/* Products with weights packed in panels of PANEL columns (pack_panels): R batch rows (1 to 6)
 * times two vectors of g stay in registers while a panel goes by, contiguous in memory, and
 * each vector of w is loaded once for the R rows. One row takes four panels at a time. */
/* g[r, j..j+cols) += tmp[r] for R rows: the accumulators' columns that exist */
AVX2_INLINE void add_acc(float *g, __m256 lo, __m256 hi, Py_ssize_t cols) {
    if (cols >= 16) {
        _mm256_storeu_ps(g, _mm256_add_ps(_mm256_loadu_ps(g), lo));
        _mm256_storeu_ps(g + 8, _mm256_add_ps(_mm256_loadu_ps(g + 8), hi));
    } else {
        float tmp[16];
        _mm256_storeu_ps(tmp, lo);
        _mm256_storeu_ps(tmp + 8, hi);
        for (Py_ssize_t k = 0; k < cols; k++) g[k] += tmp[k];
    }
}

/* One panel (n, PANEL) for R rows of the batch (1 to 6); columns j.. of g, m in all. The
 * accumulators are named variables: GCC keeps arrays of vectors in memory. */
AVX2_INLINE void panel_avx2(const int R, const float *x, ptrdiff_t ldx, const float *pw,
                            Py_ssize_t n, float *g, ptrdiff_t ldg, Py_ssize_t j, Py_ssize_t m) {
    __m256 c0l = _mm256_setzero_ps(), c0h = c0l, c1l = c0l, c1h = c0l, c2l = c0l, c2h = c0l;
    __m256 c3l = c0l, c3h = c0l, c4l = c0l, c4h = c0l, c5l = c0l, c5h = c0l;
    for (Py_ssize_t i = 0; i < n; i++) {
        const __m256 w0 = _mm256_loadu_ps(pw + i * PANEL), w1 = _mm256_loadu_ps(pw + i * PANEL + 8);
        const float *xi = x + i;
        __m256 a = _mm256_broadcast_ss(xi);
        c0l = _mm256_fmadd_ps(a, w0, c0l);
        c0h = _mm256_fmadd_ps(a, w1, c0h);
        if (R > 1) {
            a = _mm256_broadcast_ss(xi + ldx);
            c1l = _mm256_fmadd_ps(a, w0, c1l);
            c1h = _mm256_fmadd_ps(a, w1, c1h);
        }
        if (R > 2) {
            a = _mm256_broadcast_ss(xi + 2 * ldx);
            c2l = _mm256_fmadd_ps(a, w0, c2l);
            c2h = _mm256_fmadd_ps(a, w1, c2h);
        }
        if (R > 3) {
            a = _mm256_broadcast_ss(xi + 3 * ldx);
            c3l = _mm256_fmadd_ps(a, w0, c3l);
            c3h = _mm256_fmadd_ps(a, w1, c3h);
        }
        if (R > 4) {
            a = _mm256_broadcast_ss(xi + 4 * ldx);
            c4l = _mm256_fmadd_ps(a, w0, c4l);
            c4h = _mm256_fmadd_ps(a, w1, c4h);
        }
        if (R > 5) {
            a = _mm256_broadcast_ss(xi + 5 * ldx);
            c5l = _mm256_fmadd_ps(a, w0, c5l);
            c5h = _mm256_fmadd_ps(a, w1, c5h);
        }
    }
    const Py_ssize_t cols = m - j;
    add_acc(g + j, c0l, c0h, cols);
    if (R > 1) add_acc(g + ldg + j, c1l, c1h, cols);
    if (R > 2) add_acc(g + 2 * ldg + j, c2l, c2h, cols);
    if (R > 3) add_acc(g + 3 * ldg + j, c3l, c3h, cols);
    if (R > 4) add_acc(g + 4 * ldg + j, c4l, c4h, cols);
    if (R > 5) add_acc(g + 5 * ldg + j, c5l, c5h, cols);
}

/* Four panels for one row: eight accumulators, enough to keep the FMA units busy. */
AVX2_INLINE void panels4_avx2(const float *x, const float *pw, Py_ssize_t n, float *g,
                              Py_ssize_t j, Py_ssize_t m) {
    const float *p0 = pw, *p1 = pw + n * PANEL, *p2 = pw + 2 * n * PANEL, *p3 = pw + 3 * n * PANEL;
    __m256 c0l = _mm256_setzero_ps(), c0h = c0l, c1l = c0l, c1h = c0l, c2l = c0l, c2h = c0l;
    __m256 c3l = c0l, c3h = c0l;
    for (Py_ssize_t i = 0; i < n; i++) {
        const __m256 a = _mm256_broadcast_ss(x + i);
        const Py_ssize_t o = i * PANEL;
        c0l = _mm256_fmadd_ps(a, _mm256_loadu_ps(p0 + o), c0l);
        c0h = _mm256_fmadd_ps(a, _mm256_loadu_ps(p0 + o + 8), c0h);
        c1l = _mm256_fmadd_ps(a, _mm256_loadu_ps(p1 + o), c1l);
        c1h = _mm256_fmadd_ps(a, _mm256_loadu_ps(p1 + o + 8), c1h);
        c2l = _mm256_fmadd_ps(a, _mm256_loadu_ps(p2 + o), c2l);
        c2h = _mm256_fmadd_ps(a, _mm256_loadu_ps(p2 + o + 8), c2h);
        c3l = _mm256_fmadd_ps(a, _mm256_loadu_ps(p3 + o), c3l);
        c3h = _mm256_fmadd_ps(a, _mm256_loadu_ps(p3 + o + 8), c3h);
    }
    add_acc(g + j, c0l, c0h, m - j);
    add_acc(g + j + PANEL, c1l, c1h, m - j - PANEL);
    add_acc(g + j + 2 * PANEL, c2l, c2h, m - j - 2 * PANEL);
    add_acc(g + j + 3 * PANEL, c3l, c3h, m - j - 3 * PANEL);
}

AVX2_INLINE void packed_rows_avx2(const int R, const float *x, ptrdiff_t ldx, const float *pk,
                                  Py_ssize_t n, Py_ssize_t m, float *g, ptrdiff_t ldg) {
    const Py_ssize_t panels = (m + PANEL - 1) / PANEL;
    Py_ssize_t p = 0;
    if (R == 1)
        for (; p + 4 <= panels; p += 4) panels4_avx2(x, pk + p * n * PANEL, n, g, p * PANEL, m);
    for (; p < panels; p++) panel_avx2(R, x, ldx, pk + p * n * PANEL, n, g, ldg, p * PANEL, m);
}

TARGET_AVX2 static void gemv_avx2(const float *restrict x, ptrdiff_t ldx, Py_ssize_t B,
                                  const float *restrict w, const float *restrict packed,
                                  Py_ssize_t n, Py_ssize_t m, float *restrict g, ptrdiff_t ldg) {
    if (!packed) {
        gemv_avx2_rows(x, ldx, B, w, n, m, g, ldg);
        return;
    }
    Py_ssize_t b = 0;
    for (; B - b >= 6; b += 6)
        packed_rows_avx2(6, x + b * ldx, ldx, packed, n, m, g + b * ldg, ldg);
    const float *xb = x + b * ldx;
    float *gb = g + b * ldg;
    switch (B - b) {
    case 5: packed_rows_avx2(5, xb, ldx, packed, n, m, gb, ldg); break;
    case 4: packed_rows_avx2(4, xb, ldx, packed, n, m, gb, ldg); break;
    case 3: packed_rows_avx2(3, xb, ldx, packed, n, m, gb, ldg); break;
    case 2: packed_rows_avx2(2, xb, ldx, packed, n, m, gb, ldg); break;
    case 1: packed_rows_avx2(1, xb, ldx, packed, n, m, gb, ldg); break;
    default: break;
    }
}
#endif

typedef void (*gemv_fn)(const float *restrict, ptrdiff_t, Py_ssize_t, const float *restrict,
                        const float *restrict, Py_ssize_t, Py_ssize_t, float *restrict,
                        ptrdiff_t);

/* w (n, m) as ceil(m / PANEL) panels of (n, PANEL), zero-padded; PyMem_RawMalloc'ed. */
static float *pack_panels(const float *w, Py_ssize_t n, Py_ssize_t m) {
    const Py_ssize_t panels = (m + PANEL - 1) / PANEL;
    float *pk = (float *)PyMem_RawCalloc((size_t)(panels * n * PANEL), sizeof(float));
    if (!pk) return NULL;
    for (Py_ssize_t p = 0; p < panels; p++) {
        const Py_ssize_t j = p * PANEL, cols = m - j < PANEL ? m - j : PANEL;
        for (Py_ssize_t i = 0; i < n; i++)
            memcpy(pk + (p * n + i) * PANEL, w + i * m + j, (size_t)cols * sizeof(float));
    }
    return pk;
}

/* The cell: gates g (4H, order i, f, o, g) -> c updated in place, h written. */
ALWAYS_INLINE void cell(const float *restrict g, float *restrict c, float *restrict h,
                        Py_ssize_t H) {
    for (Py_ssize_t j = 0; j < H; j++) {
        const float ig = sigmoid_approx(g[j]);
        const float fg = sigmoid_approx(g[H + j]);
        const float og = sigmoid_approx(g[2 * H + j]);
        const float u = tanh_approx(g[3 * H + j]);
        const float cj = fg * c[j] + ig * u;
        c[j] = cj;
        h[j] = og * tanh_approx(cj);
    }
}

/* One layer over T positions; g is scratch of 4H floats. */
ALWAYS_INLINE void layer_body(const float *proj, const float *w_hh_t, const float *packed,
                              float *h, float *c, float *out, Py_ssize_t T, Py_ssize_t H, float *g,
                              gemv_fn gemv) {
    const Py_ssize_t H4 = 4 * H;
    const float *hprev = h;
    for (Py_ssize_t t = 0; t < T; t++) {
        memcpy(g, proj + t * H4, (size_t)H4 * sizeof(float));
        gemv(hprev, H, 1, w_hh_t, packed, H, H4, g, H4);
        float *ht = out + t * H;
        cell(g, c, ht, H);
        hprev = ht;
    }
    if (T > 0) memcpy(h, hprev, (size_t)H * sizeof(float));
}

typedef struct {
    Py_ssize_t L, H, V;
    const float *table0;             /* (V, 4H) */
    const float *w_hh_t[MAX_LAYERS]; /* (H, 4H) */
    const float *w_ih_t[MAX_LAYERS]; /* (H, 4H), layers 1.. */
    const float *bias[MAX_LAYERS];   /* (4H), layers 1.. */
    const float *head_w_t;           /* (H, V) */
    const float *head_b;             /* (V) */
    /* the same in panels (pack_panels), for the AVX2 kernels; NULL where the CPU has none */
    float *pk_hh[MAX_LAYERS], *pk_ih[MAX_LAYERS], *pk_head;
} Weights;

typedef struct {
    const Weights *w;
    Py_ssize_t B;
    const long *symbols;      /* (B) */
    const float *h_in, *c_in; /* (L, B, H) */
    float *h_out, *c_out;     /* (L, B, H) */
    float *logits;            /* (B, V) or NULL */
    float *g;                 /* scratch (B, 4H) */
} StepArgs;

ALWAYS_INLINE void step_body(const StepArgs *a, gemv_fn gemv) {
    const Weights *w = a->w;
    const Py_ssize_t H = w->H, H4 = 4 * H, B = a->B, LBH = B * H;
    float *g = a->g;
    memcpy(a->c_out, a->c_in, (size_t)(w->L * LBH) * sizeof(float));
    for (Py_ssize_t k = 0; k < w->L; k++) {
        const float *h_in = a->h_in + k * LBH;
        float *h_out = a->h_out + k * LBH, *c_out = a->c_out + k * LBH;
        if (k == 0) {
            for (Py_ssize_t b = 0; b < B; b++)
                memcpy(g + b * H4, w->table0 + a->symbols[b] * H4, (size_t)H4 * sizeof(float));
        } else {
            for (Py_ssize_t b = 0; b < B; b++)
                memcpy(g + b * H4, w->bias[k], (size_t)H4 * sizeof(float));
            gemv(a->h_out + (k - 1) * LBH, H, B, w->w_ih_t[k], w->pk_ih[k], H, H4, g, H4);
        }
        gemv(h_in, H, B, w->w_hh_t[k], w->pk_hh[k], H, H4, g, H4);
        for (Py_ssize_t b = 0; b < B; b++) cell(g + b * H4, c_out + b * H, h_out + b * H, H);
    }
    if (a->logits) {
        const Py_ssize_t V = w->V;
        for (Py_ssize_t b = 0; b < B; b++)
            memcpy(a->logits + b * V, w->head_b, (size_t)V * sizeof(float));
        gemv(a->h_out + (w->L - 1) * LBH, H, B, w->head_w_t, w->pk_head, H, V, a->logits, V);
    }
}

static void layer_generic(const float *proj, const float *w_hh_t, const float *packed, float *h,
                          float *c, float *out, Py_ssize_t T, Py_ssize_t H, float *g) {
    (void)packed;
    layer_body(proj, w_hh_t, NULL, h, c, out, T, H, g, gemv_generic);
}

static void step_generic(const StepArgs *a) { step_body(a, gemv_generic); }

#if HAVE_AVX2_KERNELS
TARGET_AVX2 static void layer_avx2(const float *proj, const float *w_hh_t, const float *packed,
                                   float *h, float *c, float *out, Py_ssize_t T, Py_ssize_t H,
                                   float *g) {
    /* Without packed weights (the module's layer()), packing them pays from about 50
     * positions on (it costs about 0.1 ms for a 2x256 model); without the memory, the
     * unpacked product. */
    float *own = NULL;
    if (!packed && T >= PACK_MIN_POSITIONS) packed = own = pack_panels(w_hh_t, H, 4 * H);
    layer_body(proj, w_hh_t, packed, h, c, out, T, H, g, gemv_avx2);
    PyMem_RawFree(own);
}

TARGET_AVX2 static void step_avx2(const StepArgs *a) { step_body(a, gemv_avx2); }
#endif

typedef void (*layer_fn)(const float *, const float *, const float *, float *, float *, float *,
                         Py_ssize_t, Py_ssize_t, float *);
typedef void (*step_fn)(const StepArgs *);

static layer_fn layer_impl = layer_generic;
static step_fn step_impl = step_generic;
static const char *isa_name = "generic";

static int cpu_has_avx2(void) {
#if HAVE_AVX2_KERNELS
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

static void use_isa(int avx2) {
#if HAVE_AVX2_KERNELS
    if (avx2) {
        layer_impl = layer_avx2;
        step_impl = step_avx2;
        isa_name = "avx2+fma";
        return;
    }
#endif
    (void)avx2;
    layer_impl = layer_generic;
    step_impl = step_generic;
    isa_name = "generic";
}

/* ---- argument checks ---- */

/* A float32 C-contiguous buffer of ndim dimensions; shape[d] < 0 means any (and is filled in). */
static int get_f32(PyObject *o, Py_buffer *b, int writable, int ndim, Py_ssize_t *shape,
                   const char *what) {
    if (!PyObject_CheckBuffer(o)) {
        PyErr_Format(PyExc_TypeError, "%s: expected a float32 array, got %.80s", what,
                     Py_TYPE(o)->tp_name);
        return -1;
    }
    if (PyObject_GetBuffer(o, b, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT |
                                     (writable ? PyBUF_WRITABLE : 0)) < 0) {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyErr_Format(PyExc_ValueError, "%s: expected a C-contiguous%s float32 array (%S)", what,
                     writable ? " writable" : "", value ? value : Py_None);
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(tb);
        return -1;
    }
    const char *f = b->format ? b->format : "B";
    if ((f[0] == '<' || f[0] == '=' || f[0] == '@') && f[1] == 'f' && f[2] == '\0') f++;
    if (b->itemsize != 4 || strcmp(f, "f") != 0) {
        PyErr_Format(PyExc_TypeError, "%s: expected float32, got buffer format '%s'", what,
                     b->format ? b->format : "B");
        PyBuffer_Release(b);
        return -1;
    }
    if (b->ndim != ndim) {
        PyErr_Format(PyExc_ValueError, "%s: expected %d dimensions, got %d", what, ndim, b->ndim);
        PyBuffer_Release(b);
        return -1;
    }
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0)
            shape[d] = b->shape[d];
        else if (b->shape[d] != shape[d]) {
            PyErr_Format(PyExc_ValueError, "%s: dimension %d is %zd, expected %zd", what, d,
                         b->shape[d], shape[d]);
            PyBuffer_Release(b);
            return -1;
        }
    }
    return 0;
}

static int overlap(const Py_buffer *a, const Py_buffer *b) {
    const char *a0 = (const char *)a->buf, *b0 = (const char *)b->buf;
    return a->len > 0 && b->len > 0 && a0 < b0 + b->len && b0 < a0 + a->len;
}

/* No written buffer may share memory with another argument. */
static int check_overlaps(Py_buffer **bufs, const int *written, int n, const char *const *names) {
    for (int i = 0; i < n; i++) {
        if (!written[i]) continue;
        for (int j = 0; j < n; j++)
            if (j != i && overlap(bufs[i], bufs[j])) {
                PyErr_Format(PyExc_ValueError, "%s and %s share memory", names[i], names[j]);
                return -1;
            }
    }
    return 0;
}

static void release_all(Py_buffer *bufs, int n) {
    for (int i = 0; i < n; i++) PyBuffer_Release(&bufs[i]);
}

/* ---- layer() ---- */

/* One layer over proj's T positions with the recurrent weights wb (H, 4H), already checked, and
 * their panels (or NULL); proj, h, c and out are checked here. */
static PyObject *run_layer(PyObject *o_proj, Py_buffer *wb, const float *packed, PyObject *o_h,
                           PyObject *o_c, PyObject *o_out) {
    static const char *const names[5] = {"proj", "w_hh_t", "h", "c", "out"};
    const Py_ssize_t H = wb->shape[0];
    Py_buffer bufs[5];
    int got[5] = {0, 1, 0, 0, 0};
    bufs[1] = *wb;
    Py_ssize_t s_proj[2] = {-1, 4 * H}, s_h[1] = {H}, s_c[1] = {H};
    PyObject *ret = NULL;
    if (get_f32(o_proj, &bufs[0], 0, 2, s_proj, "proj") < 0) goto done;
    got[0] = 1;
    const Py_ssize_t T = s_proj[0];
    Py_ssize_t s_out[2] = {T, H};
    if (get_f32(o_h, &bufs[2], 1, 1, s_h, "h") < 0) goto done;
    got[2] = 1;
    if (get_f32(o_c, &bufs[3], 1, 1, s_c, "c") < 0) goto done;
    got[3] = 1;
    if (get_f32(o_out, &bufs[4], 1, 2, s_out, "out") < 0) goto done;
    got[4] = 1;
    {
        Py_buffer *p[5] = {&bufs[0], &bufs[1], &bufs[2], &bufs[3], &bufs[4]};
        static const int written[5] = {0, 0, 1, 1, 1};
        if (check_overlaps(p, written, 5, names) < 0) goto done;
    }
    if (T > 0 && H > 0) {
        float *g = (float *)PyMem_RawMalloc((size_t)(4 * H) * sizeof(float));
        if (!g) {
            PyErr_NoMemory();
            goto done;
        }
        Py_BEGIN_ALLOW_THREADS;
        layer_impl((const float *)bufs[0].buf, (const float *)wb->buf, packed,
                   (float *)bufs[2].buf, (float *)bufs[3].buf, (float *)bufs[4].buf, T, H, g);
        Py_END_ALLOW_THREADS;
        PyMem_RawFree(g);
    }
    Py_INCREF(Py_None);
    ret = Py_None;
done:
    for (int i = 0; i < 5; i++)
        if (got[i] && i != 1) PyBuffer_Release(&bufs[i]);
    return ret;
}

static PyObject *mod_layer(PyObject *mod, PyObject *const *args, Py_ssize_t nargs) {
    (void)mod;
    if (nargs != 5) {
        PyErr_Format(PyExc_TypeError, "layer() takes 5 arguments (proj, w_hh_t, h, c, out), got %zd",
                     nargs);
        return NULL;
    }
    Py_buffer wb;
    Py_ssize_t s_w[2] = {-1, -1};
    if (get_f32(args[1], &wb, 0, 2, s_w, "w_hh_t") < 0) return NULL;
    if (s_w[1] != 4 * s_w[0]) {
        PyErr_Format(PyExc_ValueError, "w_hh_t: expected shape (H, 4H), got (%zd, %zd)", s_w[0],
                     s_w[1]);
        PyBuffer_Release(&wb);
        return NULL;
    }
    PyObject *ret = run_layer(args[0], &wb, NULL, args[2], args[3], args[4]);
    PyBuffer_Release(&wb);
    return ret;
}

/* ---- Cell ---- */

typedef struct {
    PyObject_HEAD int nbufs;
    Py_buffer *bufs; /* the weights' views, held while the Cell lives */
    Py_buffer *hh_buf[MAX_LAYERS];
    Weights w;
} CellObject;

static void Cell_clear(CellObject *self) {
    for (int k = 0; k < MAX_LAYERS; k++) {
        PyMem_RawFree(self->w.pk_hh[k]);
        PyMem_RawFree(self->w.pk_ih[k]);
    }
    PyMem_RawFree(self->w.pk_head);
    if (self->bufs) {
        release_all(self->bufs, self->nbufs);
        PyMem_Free(self->bufs);
    }
    self->bufs = NULL;
    self->nbufs = 0;
    memset(self->hh_buf, 0, sizeof self->hh_buf);
    memset(&self->w, 0, sizeof self->w);
}

static void Cell_dealloc(CellObject *self) {
    Cell_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Cell(table0, w_hh_t: sequence of L, w_ih_t: sequence of L-1, bias: sequence of L-1,
 *      head_w_t, head_b) */
static int Cell_init(CellObject *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"table0", "w_hh_t", "w_ih_t", "bias", "head_w_t", "head_b", NULL};
    PyObject *o_table0, *o_hh, *o_ih, *o_bias, *o_head_w, *o_head_b;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOOOO:Cell", kwlist, &o_table0, &o_hh, &o_ih,
                                     &o_bias, &o_head_w, &o_head_b))
        return -1;
    if (self->w.L != 0) {
        /* another thread may be stepping with these weights, without the GIL */
        PyErr_SetString(PyExc_RuntimeError, "Cell is already initialised");
        return -1;
    }
    PyObject *hh = PySequence_Fast(o_hh, "w_hh_t: expected a sequence of arrays");
    if (!hh) return -1;
    PyObject *ih = PySequence_Fast(o_ih, "w_ih_t: expected a sequence of arrays");
    PyObject *bias = ih ? PySequence_Fast(o_bias, "bias: expected a sequence of arrays") : NULL;
    int rc = -1;
    if (!bias) goto done;
    const Py_ssize_t L = PySequence_Fast_GET_SIZE(hh);
    if (L < 1 || L > MAX_LAYERS) {
        PyErr_Format(PyExc_ValueError, "w_hh_t: expected 1 to %d layers, got %zd", MAX_LAYERS, L);
        goto done;
    }
    if (PySequence_Fast_GET_SIZE(ih) != L - 1 || PySequence_Fast_GET_SIZE(bias) != L - 1) {
        PyErr_Format(PyExc_ValueError, "w_ih_t and bias: expected %zd arrays each (layers 1..)",
                     L - 1);
        goto done;
    }
    self->bufs = (Py_buffer *)PyMem_Calloc((size_t)(3 * L + 1), sizeof(Py_buffer));
    if (!self->bufs) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t s_t0[2] = {-1, -1};
    if (get_f32(o_table0, &self->bufs[self->nbufs], 0, 2, s_t0, "table0") < 0) goto done;
    self->w.table0 = (const float *)self->bufs[self->nbufs++].buf;
    const Py_ssize_t V = s_t0[0];
    if (s_t0[1] % 4 != 0 || s_t0[1] == 0 || V == 0) {
        PyErr_SetString(PyExc_ValueError, "table0: expected shape (vocab, 4 * hidden)");
        goto done;
    }
    const Py_ssize_t H = s_t0[1] / 4;
    for (Py_ssize_t k = 0; k < L; k++) {
        Py_ssize_t s_w[2] = {H, 4 * H}, s_b[1] = {4 * H};
        if (get_f32(PySequence_Fast_GET_ITEM(hh, k), &self->bufs[self->nbufs], 0, 2, s_w,
                    "w_hh_t") < 0)
            goto done;
        self->hh_buf[k] = &self->bufs[self->nbufs];
        self->w.w_hh_t[k] = (const float *)self->bufs[self->nbufs++].buf;
        if (k == 0) continue;
        if (get_f32(PySequence_Fast_GET_ITEM(ih, k - 1), &self->bufs[self->nbufs], 0, 2, s_w,
                    "w_ih_t") < 0)
            goto done;
        self->w.w_ih_t[k] = (const float *)self->bufs[self->nbufs++].buf;
        if (get_f32(PySequence_Fast_GET_ITEM(bias, k - 1), &self->bufs[self->nbufs], 0, 1, s_b,
                    "bias") < 0)
            goto done;
        self->w.bias[k] = (const float *)self->bufs[self->nbufs++].buf;
    }
    Py_ssize_t s_hw[2] = {H, V}, s_hb[1] = {V};
    if (get_f32(o_head_w, &self->bufs[self->nbufs], 0, 2, s_hw, "head_w_t") < 0) goto done;
    self->w.head_w_t = (const float *)self->bufs[self->nbufs++].buf;
    if (get_f32(o_head_b, &self->bufs[self->nbufs], 0, 1, s_hb, "head_b") < 0) goto done;
    self->w.head_b = (const float *)self->bufs[self->nbufs++].buf;
    if (cpu_has_avx2()) {
        for (Py_ssize_t k = 0; k < L; k++) {
            if (!(self->w.pk_hh[k] = pack_panels(self->w.w_hh_t[k], H, 4 * H))) goto nomem;
            if (k && !(self->w.pk_ih[k] = pack_panels(self->w.w_ih_t[k], H, 4 * H))) goto nomem;
        }
        if (!(self->w.pk_head = pack_panels(self->w.head_w_t, H, V))) goto nomem;
    }
    self->w.L = L;
    self->w.H = H;
    self->w.V = V;
    rc = 0;
    goto done;
nomem:
    PyErr_NoMemory();
done:
    if (rc < 0) Cell_clear(self);
    Py_DECREF(hh);
    Py_XDECREF(ih);
    Py_XDECREF(bias);
    return rc;
}

#define STACK_SYMBOLS 16

/* step(symbols, h, c, h_out, c_out, logits=None) */
static PyObject *Cell_step(CellObject *self, PyObject *const *args, Py_ssize_t nargs) {
    static const char *const names[5] = {"h", "c", "h_out", "c_out", "logits"};
    if (self->w.L == 0) {
        PyErr_SetString(PyExc_RuntimeError, "Cell not initialised");
        return NULL;
    }
    if (nargs != 5 && nargs != 6) {
        PyErr_Format(PyExc_TypeError,
                     "step() takes 5 or 6 arguments (symbols, h, c, h_out, c_out, logits=None), "
                     "got %zd",
                     nargs);
        return NULL;
    }
    PyObject *seq = PySequence_Fast(args[0], "symbols: expected a sequence of ints");
    if (!seq) return NULL;
    const Py_ssize_t B = PySequence_Fast_GET_SIZE(seq);
    long stack_sym[STACK_SYMBOLS];
    long *sym = stack_sym;
    Py_buffer bufs[5];
    int nb = 0;
    float *g = NULL;
    if (B == 0) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "symbols: expected at least one symbol");
        return NULL;
    }
    if (B > STACK_SYMBOLS && !(sym = (long *)PyMem_Malloc((size_t)B * sizeof(long)))) {
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t b = 0; b < B; b++) {
        long s = PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, b));
        if (s == -1 && PyErr_Occurred()) goto fail;
        if (s < 0 || s >= self->w.V) {
            PyErr_Format(PyExc_ValueError, "symbols: %ld is out of range [0, %zd)", s, self->w.V);
            goto fail;
        }
        sym[b] = s;
    }
    const int has_logits = nargs == 6 && args[5] != Py_None;
    for (int i = 0; i < 4 + has_logits; i++) {
        Py_ssize_t s_state[3] = {self->w.L, B, self->w.H}, s_logits[2] = {B, self->w.V};
        if (i < 4 ? get_f32(args[1 + i], &bufs[i], i >= 2, 3, s_state, names[i])
                  : get_f32(args[5], &bufs[i], 1, 2, s_logits, names[i]))
            goto fail;
        nb++;
    }
    {
        Py_buffer *p[5] = {&bufs[0], &bufs[1], &bufs[2], &bufs[3], &bufs[4]};
        static const int written[5] = {0, 0, 1, 1, 1};
        if (check_overlaps(p, written, nb, names) < 0) goto fail;
    }
    if (!(g = (float *)PyMem_RawMalloc((size_t)(B * 4 * self->w.H) * sizeof(float)))) {
        PyErr_NoMemory();
        goto fail;
    }
    {
        StepArgs a;
        a.w = &self->w;
        a.B = B;
        a.symbols = sym;
        a.h_in = (const float *)bufs[0].buf;
        a.c_in = (const float *)bufs[1].buf;
        a.h_out = (float *)bufs[2].buf;
        a.c_out = (float *)bufs[3].buf;
        a.logits = has_logits ? (float *)bufs[4].buf : NULL;
        a.g = g;
        Py_BEGIN_ALLOW_THREADS;
        step_impl(&a);
        Py_END_ALLOW_THREADS;
    }
    PyMem_RawFree(g);
    release_all(bufs, nb);
    if (sym != stack_sym) PyMem_Free(sym);
    Py_DECREF(seq);
    Py_RETURN_NONE;
fail:
    release_all(bufs, nb);
    if (sym != stack_sym) PyMem_Free(sym);
    Py_DECREF(seq);
    return NULL;
}

/* layer(k, proj, h, c, out): layer k over a sequence, with the Cell's recurrent weights */
static PyObject *Cell_layer(CellObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (self->w.L == 0) {
        PyErr_SetString(PyExc_RuntimeError, "Cell not initialised");
        return NULL;
    }
    if (nargs != 5) {
        PyErr_Format(PyExc_TypeError, "layer() takes 5 arguments (k, proj, h, c, out), got %zd",
                     nargs);
        return NULL;
    }
    const Py_ssize_t k = PyLong_AsSsize_t(args[0]);
    if (k == -1 && PyErr_Occurred()) return NULL;
    if (k < 0 || k >= self->w.L) {
        PyErr_Format(PyExc_ValueError, "layer %zd: the Cell has layers 0 to %zd", k,
                     self->w.L - 1);
        return NULL;
    }
    return run_layer(args[1], self->hh_buf[k], self->w.pk_hh[k], args[2], args[3], args[4]);
}

static PyObject *Cell_get_layers(CellObject *self, void *closure) {
    (void)closure;
    return PyLong_FromSsize_t(self->w.L);
}

static PyObject *Cell_get_hidden(CellObject *self, void *closure) {
    (void)closure;
    return PyLong_FromSsize_t(self->w.H);
}

static PyObject *Cell_get_vocab(CellObject *self, void *closure) {
    (void)closure;
    return PyLong_FromSsize_t(self->w.V);
}

static PyGetSetDef Cell_getset[] = {
    {"layers", (getter)Cell_get_layers, NULL, "number of layers", NULL},
    {"hidden", (getter)Cell_get_hidden, NULL, "hidden size", NULL},
    {"vocab", (getter)Cell_get_vocab, NULL, "vocabulary size", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyMethodDef Cell_methods[] = {
    {"layer", (PyCFunction)(void (*)(void))Cell_layer, METH_FASTCALL,
     "layer(k, proj, h, c, out): the module's layer() with the Cell's layer k weights (and "
     "their packed copy)"},
    {"step", (PyCFunction)(void (*)(void))Cell_step, METH_FASTCALL,
     "step(symbols, h, c, h_out, c_out, logits=None): one symbol per batch row through every "
     "layer; states (layers, batch, hidden), logits (batch, vocab); all float32 C-contiguous"},
    {NULL, NULL, 0, NULL}};

static PyTypeObject CellType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "charcode.server.core._lstm.Cell",
    .tp_basicsize = sizeof(CellObject),
    .tp_dealloc = (destructor)Cell_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Cell(table0, w_hh_t, w_ih_t, bias, head_w_t, head_b): an LSTM's weights for steps "
              "(see core/lstm.py); w_ih_t and bias list layers 1..",
    .tp_methods = Cell_methods,
    .tp_getset = Cell_getset,
    .tp_init = (initproc)Cell_init,
    .tp_new = PyType_GenericNew,
};

/* ---- module ---- */

static PyObject *mod_isa(PyObject *mod, PyObject *Py_UNUSED(ignored)) {
    (void)mod;
    return PyUnicode_FromString(isa_name);
}

/* set_isa(name) -> previous name: "avx2+fma" (where the CPU has it) or "generic"; for tests and
 * benchmarks. */
static PyObject *mod_set_isa(PyObject *mod, PyObject *arg) {
    (void)mod;
    const char *name = PyUnicode_Check(arg) ? PyUnicode_AsUTF8(arg) : NULL;
    if (!name) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "set_isa: expected a str");
        return NULL;
    }
    PyObject *prev = PyUnicode_FromString(isa_name);
    if (!prev) return NULL;
    if (strcmp(name, "generic") == 0)
        use_isa(0);
    else if (strcmp(name, "avx2+fma") == 0 && cpu_has_avx2())
        use_isa(1);
    else {
        Py_DECREF(prev);
        PyErr_Format(PyExc_ValueError, "set_isa: '%s' is not available here", name);
        return NULL;
    }
    return prev;
}

static PyMethodDef mod_methods[] = {
    {"layer", (PyCFunction)(void (*)(void))mod_layer, METH_FASTCALL,
     "layer(proj, w_hh_t, h, c, out): one LSTM layer over T positions (batch 1); proj (T, 4H), "
     "w_hh_t (H, 4H), h and c (H,) updated in place, out (T, H); float32 C-contiguous; gates "
     "in the order (i, f, o, g)"},
    {"isa", (PyCFunction)mod_isa, METH_NOARGS, "the instruction set the kernels use"},
    {"set_isa", (PyCFunction)mod_set_isa, METH_O, "set_isa(name) -> previous; for tests"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef moddef = {PyModuleDef_HEAD_INIT, "_lstm", NULL, -1, mod_methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__lstm(void) {
    use_isa(cpu_has_avx2());
    if (PyType_Ready(&CellType) < 0) return NULL;
    PyObject *m = PyModule_Create(&moddef);
    if (!m) return NULL;
    Py_INCREF(&CellType);
    if (PyModule_AddObject(m, "Cell", (PyObject *)&CellType) < 0) {
        Py_DECREF(&CellType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
