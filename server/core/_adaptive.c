/*
 * charcode.server.core._adaptive: the compiled core of the adaptive predictor.
 *
 * Bit-level context mixing. A byte is coded as 8 binary decisions, high bit
 * first. For each decision a set of models gives a probability, in the logit
 * ("stretch") domain; gated linear mixers (weight sets chosen by a small
 * context) combine them, two adaptive probability maps (APM/SSE) refine the
 * result. The models:
 *   - hashed context models of orders 0-6, 8 and 12 and two word contexts:
 *     per context and nibble, a 64-byte slot of 15 adaptive bit counters;
 *   - a match model: the byte that followed the most recent earlier
 *     occurrence of the last 12 (or else 5) bytes, with its verified length;
 *   - the LSTM's 257-way distribution, turned into the probability of each
 *     bit through subtree sums.
 * Everything the models read about the position comes from the last
 * CONTEXT_BYTES bytes of the document, so a prediction is a pure function of
 * (state, context bytes, LSTM distribution): predict() mutates nothing, and
 * score() computes the very same predictions before it learns.
 *
 * Plain C99 and the CPython API; no numpy headers (arrays travel through the
 * buffer protocol as contiguous float64). Every size read from a state file
 * is checked before use.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CTX_BYTES 128
#define NSYM 257
#define FORMAT_VERSION 9u

/* context models: order 0, orders ORDERS[], two word models */
static const int ORDERS[] = {1, 2, 3, 4, 5, 6, 8, 12, 16, 24};
#define NORD 10
#define MAXORD 24
#define NCM (1 + NORD + 3)
#define NIN (4 * NCM + 2 + 2 + 1) /* counters, match, LSTM, bias */
#define XM (4 * NCM)     /* match inputs */
#define XL (4 * NCM + 2) /* LSTM inputs */
#define RM_N (NCM * 64)
#define AM_N (NCM * 1024)
#define NSETS_A 256
#define NSETS_B ((NORD + 1) * 4 * 8 * 4)
#define NSETS_C 256
#define NFIN 4 /* final mixer inputs: 3 mixers + bias */
#define NSETS_F 8
#define APM_N 33
#define MATCH_LONG 12 /* the order-12 and order-5 hashes key the match tables */
#define MATCH_SHORT 5
#define IDX_LONG (1 + 7)
#define IDX_SHORT (1 + 4)
#define SM_N (2 * 32)
#define ST_CLAMP 8.0f
#define LSTM_CLAMP 12.0f

static const char MAGIC[8] = {'C', 'C', 'A', 'D', 'P', 'T', '\r', '\n'};

typedef struct {
    float lr_mix, lr_final, apm_rate, w_apm1, w_apm2, lr_boost;
    uint32_t limit;
} Params;

typedef struct {
    /* sizes */
    uint64_t memory_cap;
    uint64_t cm_slots; /* 64-byte slots, even */
    uint32_t hist_bits, mt_bits;
    /* counters */
    uint64_t total; /* bytes ever appended to the history */
    uint64_t bytes_learned, files_learned, bytes_scored, docs_scored, updates;
    Params prm;
    /* tables */
    uint32_t *cm;    /* cm_slots * 16 */
    uint8_t *hist;   /* 1 << hist_bits */
    uint32_t *mt;    /* 2 << mt_bits: long then short match table */
    uint32_t *sm;    /* SM_N match counters */
    uint32_t *am;    /* AM_N: per model, (count, probability) -> adaptive probability */
    uint32_t *rm;    /* RM_N: per model, (run length, expected bit) -> probability */
    float *wa, *wb, *wc, *wf;
    uint16_t *apm1, *apm2;
} Core;

/* ---------------------------------------------------------------- tables */

static float ST_TAB[4096];
static int32_t RECIP[1024];
/* A slot: word 0 holds the check (low 16 bits), the byte that followed last
 * time and its run length; words 1-15 the counters of the nibble's nodes: a
 * slow probability (16 bits, rate 1/(n+1.5) up to the limit), a fast one (10
 * bits, rate about 1/3) and the count n (6 bits). */
#define CTR0 0x80008000u
static const uint32_t EMPTY_SLOT[16] = {0,    CTR0, CTR0, CTR0, CTR0, CTR0, CTR0, CTR0,
                                        CTR0, CTR0, CTR0, CTR0, CTR0, CTR0, CTR0, CTR0};

static void init_tables(void) {
    for (int i = 0; i < 4096; i++) {
        double p = (i + 0.5) / 4096.0;
        ST_TAB[i] = (float)log(p / (1.0 - p));
    }
    for (int n = 0; n < 1024; n++) RECIP[n] = (int32_t)(65536.0 / (n + 1.5));
}

static inline float squash(float x) {
    if (x > 30.f) x = 30.f;
    if (x < -30.f) x = -30.f;
    return 1.0f / (1.0f + expf(-x));
}

static inline float clampf(float x, float lo, float hi) { return x < lo ? lo : (x > hi ? hi : x); }

static inline uint64_t mix64(uint64_t h) {
    h ^= h >> 31;
    h *= 0x7fb5d329728ea185ULL;
    h ^= h >> 27;
    h *= 0x81dadef4bc2dd44dULL;
    h ^= h >> 33;
    return h;
}

/* -------------------------------------------------------------- sizing */

static uint64_t fixed_bytes(void) {
    return (uint64_t)SM_N * 4 + (uint64_t)AM_N * 4 + (uint64_t)RM_N * 4 + (uint64_t)(NSETS_A + NSETS_B + NSETS_C) * NIN * 4 +
           (uint64_t)NSETS_F * NFIN * 4 + (uint64_t)512 * APM_N * 2 + (uint64_t)131072 * APM_N * 2;
}

static uint64_t core_bytes(const Core *c) {
    return fixed_bytes() + c->cm_slots * 64 + ((uint64_t)1 << c->hist_bits) +
           ((uint64_t)8 << c->mt_bits);
}

#define MIN_MEMORY ((uint64_t)16 << 20)
#define MAX_MEMORY ((uint64_t)16 << 30)

static int plan_sizes(uint64_t mem, uint64_t *slots, uint32_t *hb, uint32_t *mb) {
    if (mem < MIN_MEMORY || mem > MAX_MEMORY) return -1;
    uint64_t rest = mem - fixed_bytes();
    uint32_t h = 10;
    while (((uint64_t)2 << h) <= rest / 8) h++;
    uint32_t m = 8;
    while (((uint64_t)16 << m) <= rest / 16) m++; /* 2 tables of 4-byte entries */
    uint64_t left = rest - ((uint64_t)1 << h) - ((uint64_t)8 << m);
    *slots = (left / 64) & ~(uint64_t)1;
    *hb = h;
    *mb = m;
    return 0;
}

static void core_free(Core *c) {
    free(c->cm);
    free(c->hist);
    free(c->mt);
    free(c->sm);
    free(c->am);
    free(c->rm);
    free(c->wa);
    free(c->wb);
    free(c->wc);
    free(c->wf);
    free(c->apm1);
    free(c->apm2);
    memset(c, 0, sizeof *c);
}

/* The context slots are read at random: on Linux ask for transparent huge pages,
 * which saves most TLB misses. */
static void *alloc_big(size_t n) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    void *p = NULL;
    if (n >= ((size_t)4 << 20) && posix_memalign(&p, (size_t)2 << 20, n) == 0) {
        madvise(p, n, MADV_HUGEPAGE);
        return p;
    }
#endif
    return malloc(n);
}

static int core_alloc(Core *c) {
    c->cm = (uint32_t *)alloc_big(c->cm_slots * 64);
    c->hist = (uint8_t *)malloc((size_t)1 << c->hist_bits);
    c->mt = (uint32_t *)malloc((size_t)8 << c->mt_bits);
    c->sm = (uint32_t *)malloc(SM_N * 4);
    c->am = (uint32_t *)malloc(AM_N * 4);
    c->rm = (uint32_t *)malloc(RM_N * 4);
    c->wa = (float *)malloc(sizeof(float) * NSETS_A * NIN);
    c->wb = (float *)malloc(sizeof(float) * NSETS_B * NIN);
    c->wc = (float *)malloc(sizeof(float) * NSETS_C * NIN);
    c->wf = (float *)malloc(sizeof(float) * NSETS_F * NFIN);
    c->apm1 = (uint16_t *)malloc(2 * 512 * APM_N); /* final APM by c0, then the LSTM's by c0 */
    c->apm2 = (uint16_t *)malloc((size_t)2 * 131072 * APM_N); /* by (c0, c1), then by hash(c0, c1, c2) */
    if (!c->cm || !c->hist || !c->mt || !c->sm || !c->am || !c->rm || !c->wa || !c->wb || !c->wc || !c->wf || !c->apm1 ||
        !c->apm2)
        return -1;
    return 0;
}

static void init_weights(float *w, int nsets) {
    for (int s = 0; s < nsets; s++) {
        float *v = w + (size_t)s * NIN;
        for (int i = 0; i < NIN; i++) v[i] = 0.f;
        for (int i = 0; i < NCM; i++) v[4 * i] = v[4 * i + 2] = v[4 * i + 3] = 0.1f;
        v[XM] = 0.3f;  /* match */
        v[XL] = 1.0f; /* LSTM */
    }
}

static void core_reset(Core *c) {
    for (uint64_t i = 0; i < c->cm_slots; i++) memcpy(c->cm + i * 16, EMPTY_SLOT, 64);
    memset(c->hist, 0, (size_t)1 << c->hist_bits);
    memset(c->mt, 0, (size_t)8 << c->mt_bits);
    for (int i = 0; i < SM_N; i++) c->sm[i] = 1u << 31;
    for (int i = 0; i < RM_N; i++) c->rm[i] = 1u << 31;
    for (int i = 0; i < AM_N; i++) c->am[i] = (uint32_t)(((i & 63) * 65536 + 32768) << 10);
    init_weights(c->wa, NSETS_A);
    init_weights(c->wb, NSETS_B);
    init_weights(c->wc, NSETS_C);
    for (int s = 0; s < NSETS_F; s++) {
        c->wf[s * NFIN + 0] = 0.4f;
        c->wf[s * NFIN + 1] = 0.3f;
        c->wf[s * NFIN + 2] = 0.3f;
        c->wf[s * NFIN + 3] = 0.f;
    }
    for (int j = 0; j < APM_N; j++) {
        float p = squash((j - 16) * 0.5f);
        uint16_t v = (uint16_t)(p * 65535.f + 0.5f);
        for (int k = 0; k < 512; k++) c->apm1[k * APM_N + j] = v;
        for (int k = 0; k < 131072; k++) c->apm2[(size_t)k * APM_N + j] = v;
    }
    c->total = c->bytes_learned = c->files_learned = c->bytes_scored = c->docs_scored = 0;
    c->updates = 0;
}

/* Tuned on the tuning projects of bench/adaptive_bits.py (--set tuning), never on
 * the reported ones. */
static void default_params(Params *p) {
    p->lr_mix = 0.005f;
    p->lr_final = 0.001f;
    p->apm_rate = 0.02f;
    p->w_apm1 = 0.05f;
    p->w_apm2 = 0.75f;
    p->limit = 40;
    p->lr_boost = 0.0f;
}

static int params_ok(const Params *p) {
    return isfinite(p->lr_mix) && p->lr_mix >= 0.f && p->lr_mix <= 10.f && isfinite(p->lr_final) &&
           p->lr_final >= 0.f && p->lr_final <= 10.f && isfinite(p->apm_rate) && p->apm_rate >= 0.f &&
           p->apm_rate <= 1.f && isfinite(p->w_apm1) && isfinite(p->w_apm2) && p->w_apm1 >= 0.f &&
           p->w_apm2 >= 0.f && p->w_apm1 + p->w_apm2 <= 1.f && p->limit >= 1 && p->limit <= 63 && isfinite(p->lr_boost) && p->lr_boost >= 0.f &&
           p->lr_boost <= 10.f;
}

/* ----------------------------------------------------- byte contexts */

typedef struct {
    uint64_t h[NCM]; /* byte-level context hashes */
    int mbyte;       /* expected byte from the match model, or -1 */
    int mlen;        /* its verified length */
    int c1, c2;      /* last bytes, or 0 before the start */
} ByteCtx;

static inline int is_word(int ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch >= 128;
}

/* The absolute history position stored as ptr32 if it is still in the
 * history, else UINT64_MAX. */
static uint64_t resolve(const Core *c, uint32_t ptr32) {
    uint32_t diff = (uint32_t)c->total - ptr32;
    uint64_t hsize = (uint64_t)1 << c->hist_bits;
    if (diff == 0 || diff > c->total || diff >= hsize) return UINT64_MAX;
    return c->total - diff;
}

/* How many bytes before history position p equal the window's tail. */
static int verify(const Core *c, uint64_t p, const uint8_t *w, int L) {
    uint64_t hmask = ((uint64_t)1 << c->hist_bits) - 1;
    uint64_t lo = c->total > hmask ? c->total - hmask : 0; /* oldest byte still present */
    int n = 0;
    while (n < L && p >= lo + 1 + (uint64_t)n && c->hist[(p - 1 - n) & hmask] == w[L - 1 - n]) n++;
    return n;
}

static inline int x_c1(const uint8_t *w, int L) { return L > 0 ? w[L - 1] : 256; }

static void byte_ctx(const Core *c, const uint8_t *w, int L, ByteCtx *x, int with_match) {
    /* orders */
    uint64_t h = 0x243F6A8885A308D3ULL;
    int oi = 0;
    x->h[0] = mix64(h + 1);
    for (int k = 1; k <= MAXORD && oi < NORD; k++) {
        h = (h + (k <= L ? w[L - k] : 256) + 1) * 0xBF58476D1CE4E5B9ULL;
        if (k == ORDERS[oi]) {
            x->h[1 + oi] = mix64(h + (uint64_t)k * 0x9E3779B97F4A7C15ULL);
            oi++;
        }
    }
    /* words: the identifier being typed (with the byte before it), and the
     * previous identifier with the current one */
    int i = L;
    uint64_t hw = 0x452821E638D01377ULL;
    while (i > 0 && L - i < 32 && is_word(w[i - 1])) {
        hw = (hw + w[i - 1] + 1) * 0xBF58476D1CE4E5B9ULL;
        i--;
    }
    int before = i > 0 ? w[i - 1] : 256;
    x->h[1 + NORD] = mix64(hw + (uint64_t)(before + 1) * 0x94D049BB133111EBULL + 11);
    while (i > 0 && !is_word(w[i - 1])) i--;
    uint64_t hp = 0x13198A2E03707344ULL;
    int j = i;
    while (j > 0 && i - j < 32 && is_word(w[j - 1])) {
        hp = (hp + w[j - 1] + 1) * 0xBF58476D1CE4E5B9ULL;
        j--;
    }
    x->h[2 + NORD] = mix64(hw * 31 + hp + 12);
    /* layout: the byte above (same column, previous line), the last byte and the
     * current line's indentation */
    {
        int ls = L;
        while (ls > 0 && w[ls - 1] != '\n') ls--;
        int col = L - ls, above = 256, indent = 0;
        while (ls + indent < L && (w[ls + indent] == ' ' || w[ls + indent] == '\t')) indent++;
        if (ls > 0) { /* the previous line is w[ps .. ls-1) */
            int ps = ls - 1;
            while (ps > 0 && w[ps - 1] != '\n') ps--;
            above = col < ls - 1 - ps ? w[ps + col] : 257;
        } else if (L == CTX_BYTES) {
            above = 258; /* the line's start is out of sight */
        }
        x->h[3 + NORD] = mix64(((uint64_t)above << 24 | (uint64_t)x_c1(w, L) << 8 |
                                (uint64_t)(indent < 255 ? indent : 255)) * 0x9E3779B97F4A7C15ULL + 13);
    }
    x->c1 = L > 0 ? w[L - 1] : 0;
    x->c2 = L > 1 ? w[L - 2] : 0;
    /* match */
    x->mbyte = -1;
    x->mlen = 0;
    if (!with_match) return;
    uint32_t mmask = ((uint32_t)1 << c->mt_bits) - 1;
    if (L >= MATCH_LONG) {
        uint64_t p = resolve(c, c->mt[(x->h[IDX_LONG] >> 8) & mmask]);
        if (p != UINT64_MAX) {
            int n = verify(c, p, w, L);
            if (n >= MATCH_LONG) {
                x->mlen = n;
                x->mbyte = c->hist[p & (((uint64_t)1 << c->hist_bits) - 1)];
            }
        }
    }
    if (x->mbyte < 0 && L >= MATCH_SHORT) {
        uint64_t p = resolve(c, c->mt[((uint64_t)1 << c->mt_bits) + ((x->h[IDX_SHORT] >> 8) & mmask)]);
        if (p != UINT64_MAX) {
            int n = verify(c, p, w, L);
            if (n >= MATCH_SHORT) {
                x->mlen = n;
                x->mbyte = c->hist[p & (((uint64_t)1 << c->hist_bits) - 1)];
            }
        }
    }
}

/* Append byte b (which followed window w[0..L)) to the history and index it. */
static void append_byte(Core *c, const ByteCtx *x, int L, int b) {
    uint64_t p = c->total;
    c->hist[p & (((uint64_t)1 << c->hist_bits) - 1)] = (uint8_t)b;
    c->total = p + 1;
    uint32_t mmask = ((uint32_t)1 << c->mt_bits) - 1;
    if (L >= MATCH_LONG) c->mt[(x->h[IDX_LONG] >> 8) & mmask] = (uint32_t)p;
    if (L >= MATCH_SHORT) c->mt[((uint64_t)1 << c->mt_bits) + ((x->h[IDX_SHORT] >> 8) & mmask)] = (uint32_t)p;
}

/* ------------------------------------------------------------- slots */

static inline uint64_t nib_hash(uint64_t h, int hn) {
    return mix64(h + (uint64_t)(hn + 1) * 0xD6E8FEB86659FD93ULL);
}

static uint32_t *slot_find(Core *c, uint64_t h, int insert) {
    uint64_t idx = (((uint64_t)(uint32_t)(h >> 32) * c->cm_slots) >> 32) & ~(uint64_t)1;
    uint32_t chk = (uint32_t)(h & 0xFFFF) | 1;
    uint32_t *s0 = c->cm + idx * 16, *s1 = s0 + 16;
    if ((s0[0] & 0xFFFF) == chk) return s0;
    if ((s1[0] & 0xFFFF) == chk) return s1;
    if (!insert) return NULL;
    uint32_t *r = (s0[1] & 63) <= (s1[1] & 63) ? s0 : s1;
    memcpy(r, EMPTY_SLOT, 64);
    r[0] = chk;
    return r;
}

static inline void prefetch_slot(const Core *c, uint64_t h) {
#if defined(__GNUC__)
    uint64_t idx = (((uint64_t)(uint32_t)(h >> 32) * c->cm_slots) >> 32) & ~(uint64_t)1;
    __builtin_prefetch(c->cm + idx * 16);
    __builtin_prefetch(c->cm + idx * 16 + 16);
#else
    (void)c;
    (void)h;
#endif
}

static inline void ctr2_update(uint32_t *v, int y, uint32_t limit) {
    uint32_t n = *v & 63;
    int32_t ps = (int32_t)(*v >> 16), pf = (int32_t)((*v >> 6) & 1023);
    ps += (int32_t)(((int64_t)((y ? 65535 : 0) - ps) * RECIP[n]) >> 16);
    pf += ((y ? 1023 : 0) - pf) * RECIP[n < 2 ? n : 2] >> 16;
    if (n < limit) n++;
    *v = ((uint32_t)ps << 16) | ((uint32_t)pf << 6) | n;
}

static inline void ctr_update(uint32_t *v, int y, uint32_t limit) {
    uint32_t n = *v & 1023;
    int32_t p = (int32_t)(*v >> 10);
    int32_t target = y ? (1 << 22) - 1 : 0;
    p += (int32_t)(((int64_t)(target - p) * RECIP[n]) >> 16);
    if (n < limit) n++;
    *v = ((uint32_t)p << 10) | n;
}

/* ----------------------------------------------------------- LSTM tree */

typedef struct {
    double s[512]; /* subtree sums over bytes, heap order: node k has 2k, 2k+1 */
    double p256;   /* probability of the boundary symbol */
} Tree;

/* exp(x) for x <= 0, relative error below 1e-9: the same bits on every machine
 * (no libm), and several times faster than exp(). */
static inline double exp_neg(double x) {
    if (!(x > -700.0)) return 0.0; /* also NaN */
    if (x > 0.0) x = 0.0;
    double k = floor(x * 1.4426950408889634 + 0.5);
    double r = x - k * 0.6931471805599453;
    double p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6 + r * (1.0 / 24 + r * (1.0 / 120 +
               r * (1.0 / 720 + r * (1.0 / 5040 + r * (1.0 / 40320 + r * (1.0 / 362880)))))))));
    int64_t e = (int64_t)k + 1023;
    if (e <= 0) return 0.0;
    uint64_t bits = (uint64_t)e << 52;
    double scale;
    memcpy(&scale, &bits, 8);
    return p * scale;
}

static void lstm_tree(const double *lp, Tree *t) {
    double m = lp[0];
    for (int i = 1; i < NSYM; i++)
        if (lp[i] > m) m = lp[i];
    if (!isfinite(m)) m = 0.0;
    double z = 0.0;
    for (int b = 0; b < 256; b++) {
        double e = exp_neg(lp[b] - m);
        t->s[256 + b] = e + 1e-30;
        z += e;
    }
    double e256 = exp_neg(lp[256] - m);
    z += e256;
    for (int k = 255; k >= 1; k--) t->s[k] = t->s[2 * k] + t->s[2 * k + 1];
    double p = z > 0.0 ? e256 / z : 0.0;
    if (!(p >= 1e-7)) p = 1e-7;
    if (p > 0.5) p = 0.5;
    t->p256 = p;
}

/* ------------------------------------------------------- one decision */

typedef struct {
    float x[NIN];
    float sa, sb, sc, sf, pf, pa1, pa2, p;
    int seta, setb, setc, setf;
    int a1lo, a2lo, a3lo, lclo;
    float a1w, a2w, a3w, lcw;
    float pa3;
    size_t a3ctx;
    int smi; /* match counter index, or -1 */
    int ami[NCM]; /* adaptive map index per model, or -1 */
    int rmi[NCM]; /* run map index per model, or -1 */
} Bit;

/* Four partial sums in a fixed order: the compiler may pack them into one vector
 * register, and every build still adds in the same order. */
static inline float dot(const float *w, const float *x) {
    float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f;
    int i = 0;
    for (; i + 4 <= NIN; i += 4) {
        s0 += w[i] * x[i];
        s1 += w[i + 1] * x[i + 1];
        s2 += w[i + 2] * x[i + 2];
        s3 += w[i + 3] * x[i + 3];
    }
    for (; i < NIN; i++) s0 += w[i] * x[i];
    return (s0 + s1) + (s2 + s3);
}

static inline void train(float *w, const float *x, float err) {
    for (int i = 0; i < NIN; i++) w[i] += err * x[i];
}

static inline float apm_read(const uint16_t *t, float s, int *lo, float *wt) {
    float pos = (clampf(s, -7.999f, 7.999f) + 8.f) * 2.f;
    int i = (int)pos;
    float f = pos - (float)i;
    *lo = i;
    *wt = f;
    return ((float)t[i] * (1.f - f) + (float)t[i + 1] * f) * (1.f / 65536.f);
}

static inline void apm_train(uint16_t *t, int lo, float f, int y, float rate) {
    float target = y ? 65535.f : 0.f;
    float a = (float)t[lo], b = (float)t[lo + 1];
    a += (target - a) * rate * (1.f - f);
    b += (target - b) * rate * f;
    t[lo] = (uint16_t)clampf(a + 0.5f, 0.f, 65535.f);
    t[lo + 1] = (uint16_t)clampf(b + 0.5f, 0.f, 65535.f);
}

/* The order-2 APM's context (hashed into the second half of apm2). */
static inline size_t apm3_ctx(const ByteCtx *x, int c0) {
    return 65536 + (size_t)((((uint32_t)x->c2 * 0x2F0F3u + (uint32_t)x->c1) * 0x9E3779B1u >> 16 ^
                             (uint32_t)c0 * 0x3Bu) &
                            0xFFFF);
}

/* The probability that the next bit is 1 at partial byte c0 (1..255), with
 * the counters of the nibble's slots at node j (1..15). */
static void predict_bit(const Core *c, uint32_t *const *slots, const uint32_t *run, int j, int c0,
                        int bitpos, const ByteCtx *x, const Tree *t, Bit *b) {
    int ordseen = 0;
    for (int i = 0; i < NCM; i++) {
        uint32_t v = slots[i][j];
        uint32_t n = v & 63;
        if (n) {
            uint32_t ps = v >> 16, pf = (v >> 6) & 1023;
            int a = i * 1024 + (n < 16 ? (int)n : 15) * 64 + (int)(ps >> 10);
            b->ami[i] = a;
            b->x[4 * i] = ST_TAB[ps >> 4];
            b->x[4 * i + 1] = ST_TAB[pf << 2 | 2];
            b->x[4 * i + 2] = ST_TAB[c->am[a] >> 20];
            if (i >= 1 && i <= NORD) ordseen = i;
        } else {
            b->ami[i] = -1;
            b->x[4 * i] = b->x[4 * i + 1] = b->x[4 * i + 2] = 0.f;
        }
        /* run: the byte that followed this context last time, and how often in a row */
        uint32_t rn = run[i] >> 24, rb = (run[i] >> 16) & 255;
        if (rn && ((rb | 256) >> (8 - bitpos)) == (uint32_t)c0) {
            int e = (rb >> (7 - bitpos)) & 1;
            b->rmi[i] = i * 64 + (int)(rn < 31 ? rn : 31) * 2 + e;
            b->x[4 * i + 3] = ST_TAB[c->rm[b->rmi[i]] >> 20];
        } else {
            b->rmi[i] = -1;
            b->x[4 * i + 3] = 0.f;
        }
    }
    /* match */
    int mstate = 0;
    b->smi = -1;
    b->x[XM] = b->x[XM + 1] = 0.f;
    if (x->mbyte >= 0 && ((x->mbyte | 256) >> (8 - bitpos)) == c0) {
        int ebit = (x->mbyte >> (7 - bitpos)) & 1;
        int lb = x->mlen < 16 ? x->mlen : 16 + (x->mlen - 16) / 4;
        if (lb > 31) lb = 31;
        b->smi = lb * 2 + ebit;
        b->x[XM] = ST_TAB[c->sm[b->smi] >> 20];
        b->x[XM + 1] = (ebit ? 1.f : -1.f) * (float)lb * (1.f / 16.f);
        mstate = x->mlen < 16 ? 1 : (x->mlen < 32 ? 2 : 3);
    }
    /* LSTM */
    double s1 = t->s[2 * c0 + 1], s0 = t->s[2 * c0];
    float sl = clampf((float)log(s1 / s0), -LSTM_CLAMP, LSTM_CLAMP);
    b->x[XL] = sl;
    /* the LSTM calibrated on this text (an APM on its stretch, by node) */
    float pl = apm_read(c->apm1 + (size_t)(256 + c0) * APM_N, sl, &b->lclo, &b->lcw);
    pl = clampf(pl, 1e-4f, 1.f - 1e-4f);
    b->x[XL + 1] = logf(pl / (1.f - pl));
    b->x[NIN - 1] = 0.25f;
    /* mixers */
    b->seta = c0;
    float asl = sl < 0.f ? -sl : sl; /* how sure the LSTM is about this bit */
    int lconf = asl < 1.f ? 0 : (asl < 2.5f ? 1 : (asl < 5.f ? 2 : 3));
    b->setb = ((ordseen * 4 + mstate) * 8 + bitpos) * 4 + lconf;
    b->setc = x->c1;
    b->setf = bitpos;
    b->sa = clampf(dot(c->wa + (size_t)b->seta * NIN, b->x), -LSTM_CLAMP, LSTM_CLAMP);
    b->sb = clampf(dot(c->wb + (size_t)b->setb * NIN, b->x), -LSTM_CLAMP, LSTM_CLAMP);
    b->sc = clampf(dot(c->wc + (size_t)b->setc * NIN, b->x), -LSTM_CLAMP, LSTM_CLAMP);
    const float *wf = c->wf + b->setf * NFIN;
    b->sf = clampf(wf[0] * b->sa + wf[1] * b->sb + wf[2] * b->sc + wf[3] * 0.25f, -LSTM_CLAMP,
                   LSTM_CLAMP);
    b->pf = squash(b->sf);
    /* APMs */
    b->pa1 = apm_read(c->apm1 + (size_t)c0 * APM_N, b->sf, &b->a1lo, &b->a1w);
    b->pa2 = apm_read(c->apm2 + ((size_t)c0 | ((size_t)x->c1 << 8)) * APM_N, b->sf, &b->a2lo, &b->a2w);
    b->a3ctx = apm3_ctx(x, c0);
    b->pa3 = apm_read(c->apm2 + b->a3ctx * APM_N, b->sf, &b->a3lo, &b->a3w);
    float wm = 1.f - c->prm.w_apm1 - c->prm.w_apm2;
    float p = wm * b->pf + c->prm.w_apm1 * b->pa1 + c->prm.w_apm2 * 0.5f * (b->pa2 + b->pa3);
    b->p = clampf(p, 1e-6f, 1.f - 1e-6f);
}

static void update_bit(Core *c, int c0, const ByteCtx *x, const Bit *b, int y) {
    /* faster at first, while the weights are far from where the text wants them */
    float lr = c->prm.lr_mix + c->prm.lr_boost / (1.f + (float)(c->updates >> 10) * (1.f / 64.f));
    float ea = ((float)y - squash(b->sa)) * lr;
    float eb = ((float)y - squash(b->sb)) * lr;
    float ec = ((float)y - squash(b->sc)) * lr;
    train(c->wa + (size_t)b->seta * NIN, b->x, ea);
    train(c->wb + (size_t)b->setb * NIN, b->x, eb);
    train(c->wc + (size_t)b->setc * NIN, b->x, ec);
    float ef = ((float)y - b->pf) * c->prm.lr_final;
    float *wf = c->wf + b->setf * NFIN;
    wf[0] += ef * b->sa;
    wf[1] += ef * b->sb;
    wf[2] += ef * b->sc;
    wf[3] += ef * 0.25f;
    apm_train(c->apm1 + (size_t)c0 * APM_N, b->a1lo, b->a1w, y, c->prm.apm_rate);
    apm_train(c->apm1 + (size_t)(256 + c0) * APM_N, b->lclo, b->lcw, y, c->prm.apm_rate);
    apm_train(c->apm2 + b->a3ctx * APM_N, b->a3lo, b->a3w, y, c->prm.apm_rate);
    apm_train(c->apm2 + ((size_t)c0 | ((size_t)x->c1 << 8)) * APM_N, b->a2lo, b->a2w, y,
              c->prm.apm_rate);
    for (int i = 0; i < NCM; i++) {
        if (b->ami[i] >= 0) ctr_update(&c->am[b->ami[i]], y, 1023);
        if (b->rmi[i] >= 0) ctr_update(&c->rm[b->rmi[i]], y, 1023);
    }
    c->updates++;
}

static void update_counters(Core *c, uint32_t *const *slots, int j, int y) {
    for (int i = 0; i < NCM; i++) ctr2_update(&slots[i][j], y, c->prm.limit);
}



static void update_match(Core *c, int c0, int bitpos, const ByteCtx *x, int y) {
    if (x->mbyte >= 0 && ((x->mbyte | 256) >> (8 - bitpos)) == c0) {
        int ebit = (x->mbyte >> (7 - bitpos)) & 1;
        int lb = x->mlen < 16 ? x->mlen : 16 + (x->mlen - 16) / 4;
        if (lb > 31) lb = 31;
        ctr_update(&c->sm[lb * 2 + ebit], y, 1023);
    }
}

/* After byte b: the run of each model's byte-level slot (if still its own). */
static void update_runs(uint32_t *const *slot0, const ByteCtx *x, int b) {
    for (int i = 0; i < NCM; i++) {
        uint32_t *s = slot0[i];
        if (s == (uint32_t *)EMPTY_SLOT || (s[0] & 0xFFFF) != ((uint32_t)(x->h[i] & 0xFFFF) | 1)) continue;
        uint32_t rn = s[0] >> 24, rb = (s[0] >> 16) & 255;
        if (rn && rb == (uint32_t)b)
            rn = rn < 255 ? rn + 1 : 255;
        else
            rn = 1;
        s[0] = (s[0] & 0xFFFF) | ((uint32_t)b << 16) | (rn << 24);
    }
}

/* learn(): the run maps learn from the runs as they were before the byte */
static void learn_runs(Core *c, uint32_t *const *slot0, int b) {
    for (int i = 0; i < NCM; i++) {
        uint32_t rn = slot0[i][0] >> 24, rb = (slot0[i][0] >> 16) & 255;
        if (!rn) continue;
        for (int bitpos = 0; bitpos < 8; bitpos++) {
            int e = (rb >> (7 - bitpos)) & 1, y = (b >> (7 - bitpos)) & 1;
            ctr_update(&c->rm[i * 64 + (int)(rn < 31 ? rn : 31) * 2 + e], y, 1023);
            if (e != y) break;
        }
    }
}

static void find_slots(Core *c, const ByteCtx *x, int hn, int insert, uint32_t **slots) {
    uint64_t hs[NCM];
    for (int i = 0; i < NCM; i++) {
        hs[i] = hn < 0 ? x->h[i] : nib_hash(x->h[i], hn);
        prefetch_slot(c, hs[i]);
    }
    for (int i = 0; i < NCM; i++) {
        uint32_t *s = slot_find(c, hs[i], insert);
        slots[i] = s ? s : (uint32_t *)EMPTY_SLOT;
    }
}

/* ------------------------------------------------------------ drivers */

/* Learn one file: counters, match model and history; no mixing. The slots of
 * the next byte are prefetched while this one is learned. */
#define AHEAD 4 /* bytes whose slots are prefetched ahead (a power of 2) */
static void core_learn(Core *c, const uint8_t *d, Py_ssize_t n) {
    ByteCtx x[AHEAD];
    uint32_t *slots[NCM];
    uint64_t hs[AHEAD][2][NCM];
    for (Py_ssize_t i = 0; i < n + AHEAD - 1; i++) {
        if (i < n) { /* context of byte i: hashes and prefetches */
            int L = i < CTX_BYTES ? (int)i : CTX_BYTES;
            ByteCtx *cx = &x[i & (AHEAD - 1)];
            byte_ctx(c, d + i - L, L, cx, 0); /* the match model learns in score() */
            for (int k = 0; k < NCM; k++) {
                hs[i & (AHEAD - 1)][0][k] = cx->h[k];
                hs[i & (AHEAD - 1)][1][k] = nib_hash(cx->h[k], d[i] >> 4);
                prefetch_slot(c, hs[i & (AHEAD - 1)][0][k]);
                prefetch_slot(c, hs[i & (AHEAD - 1)][1][k]);
            }
        }
        if (i < AHEAD - 1) continue;
        Py_ssize_t b = i - (AHEAD - 1); /* learn byte b */
        int L = b < CTX_BYTES ? (int)b : CTX_BYTES;
        const ByteCtx *cx = &x[b & (AHEAD - 1)];
        int byte = d[b];
        uint32_t *slot0[NCM];
        for (int half = 0; half < 2; half++) {
            for (int k = 0; k < NCM; k++) slots[k] = slot_find(c, hs[b & (AHEAD - 1)][half][k], 1);
            if (!half) {
                memcpy(slot0, slots, sizeof slots);
                learn_runs(c, slot0, byte);
            }
            int j = 1;
            for (int k = 0; k < 4; k++) {
                int y = (byte >> (7 - half * 4 - k)) & 1;
                update_counters(c, slots, j, y);
                j = j * 2 + y;
            }
        }
        update_runs(slot0, cx, byte);
        append_byte(c, cx, L, byte);
    }
    c->bytes_learned += (uint64_t)n;
    c->files_learned++;
}

/* Score each byte of d (which follows the window buf[0..off)), then learn it.
 * buf holds the context and d contiguously: d == buf + off. */
static void core_score(Core *c, const uint8_t *buf, Py_ssize_t off, Py_ssize_t n, const double *lp,
                       double *out) {
    ByteCtx x;
    Tree t;
    Bit bits[8];
    uint32_t *slots[NCM];
    if (!lp) { /* no LSTM: a flat prior over the bytes that the mixer learns to ignore */
        double flat[NSYM];
        for (int k = 0; k < 256; k++) flat[k] = 0.0;
        flat[256] = -30.0;
        lstm_tree(flat, &t);
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t pos = off + i;
        int L = pos < CTX_BYTES ? (int)pos : CTX_BYTES;
        const uint8_t *w = buf + pos - L;
        byte_ctx(c, w, L, &x, 1);
        if (lp) lstm_tree(lp + (size_t)i * NSYM, &t);
        int byte = buf[pos];
        double cost = -log2(1.0 - t.p256);
        /* All eight predictions come from the state before the byte (as predict()
         * sees it); the counters of a nibble are updated once its four predictions
         * are made (the other nibble's slots are other slots), the shared state
         * (mixers, APMs, match counters) after the whole byte. */
        uint32_t *slot0[NCM], run[NCM];
        for (int half = 0; half < 2; half++) {
            find_slots(c, &x, half ? (byte >> 4) : -1, 1, slots);
            if (!half) {
                memcpy(slot0, slots, sizeof slots);
                for (int k = 0; k < NCM; k++) run[k] = slots[k][0];
            }
            int j = 1;
            for (int k = 0; k < 4; k++) {
                int bitpos = half * 4 + k;
                int c0 = (byte | 256) >> (8 - bitpos);
                int y = (byte >> (7 - bitpos)) & 1;
                predict_bit(c, slots, run, j, c0, bitpos, &x, &t, &bits[bitpos]);
                cost -= log2(y ? (double)bits[bitpos].p : 1.0 - (double)bits[bitpos].p);
                j = j * 2 + y;
            }
            j = 1;
            for (int k = 0; k < 4; k++) {
                int y = (byte >> (7 - half * 4 - k)) & 1;
                update_counters(c, slots, j, y);
                j = j * 2 + y;
            }
        }
        for (int bitpos = 0; bitpos < 8; bitpos++) {
            int c0 = (byte | 256) >> (8 - bitpos);
            int y = (byte >> (7 - bitpos)) & 1;
            update_bit(c, c0, &x, &bits[bitpos], y);
            update_match(c, c0, bitpos, &x, y);
        }
        out[i] = cost;
        update_runs(slot0, &x, byte);
        append_byte(c, &x, L, byte);
    }
    c->bytes_scored += (uint64_t)n;
}

/* The full 257-way distribution after window w[0..L). Reads only. */
static void core_predict(Core *c, const uint8_t *w, int L, const double *lp, double *out) {
    ByteCtx x;
    Tree t;
    Bit b;
    uint32_t *slots[NCM];
    double pn[32]; /* probability of each node of the first nibble, heap order 1..31 */
    byte_ctx(c, w, L, &x, 1);
    lstm_tree(lp, &t);
    uint32_t run[NCM];
    find_slots(c, &x, -1, 0, slots);
    for (int k = 0; k < NCM; k++) run[k] = slots[k][0];
    pn[1] = 1.0 - t.p256;
    for (int c0 = 1; c0 < 16; c0++) {
        int bitpos = c0 >= 8 ? 3 : (c0 >= 4 ? 2 : (c0 >= 2 ? 1 : 0));
        predict_bit(c, slots, run, c0, c0, bitpos, &x, &t, &b);
        pn[2 * c0 + 1] = pn[c0] * (double)b.p;
        pn[2 * c0] = pn[c0] * (1.0 - (double)b.p);
    }
    /* the second nibble's slots of all 16 high nibbles: hashes and prefetches first */
    uint64_t hs[16][NCM];
    for (int hn = 0; hn < 16; hn++)
        for (int k = 0; k < NCM; k++) {
            hs[hn][k] = nib_hash(x.h[k], hn);
            prefetch_slot(c, hs[hn][k]);
        }
    for (int hn = 0; hn < 16; hn++) {
        double q[32];
        for (int k = 0; k < NCM; k++) {
            uint32_t *s = slot_find(c, hs[hn][k], 0);
            slots[k] = s ? s : (uint32_t *)EMPTY_SLOT;
        }
        q[1] = pn[16 + hn];
        for (int j = 1; j < 16; j++) {
            int k = j >= 8 ? 3 : (j >= 4 ? 2 : (j >= 2 ? 1 : 0));
            int c0 = ((16 + hn) << k) | (j ^ (1 << k));
            predict_bit(c, slots, run, j, c0, 4 + k, &x, &t, &b);
            q[2 * j + 1] = q[j] * (double)b.p;
            q[2 * j] = q[j] * (1.0 - (double)b.p);
        }
        for (int lo = 0; lo < 16; lo++) out[hn * 16 + lo] = q[16 + lo];
    }
    out[256] = t.p256;
}

/* The most likely symbol after window w[0..L) among the allowed ones (allowed[s]
 * nonzero), without the full distribution: best-first search down the bit tree. A
 * node's probability bounds every leaf below it, so the first allowed leaf taken from
 * the queue is the best one; when the mixture is sure, that is a dozen nodes instead
 * of 255. Every probability is the product core_predict() computes, in its order, so
 * the symbol is the argmax of core_predict()'s distribution (ties: the lower symbol).
 * Returns -1 if nothing is allowed. Reads only. */
typedef struct {
    double p;
    int node;
} Open;

static void heap_push(Open *h, int *n, double p, int node) {
    int i = (*n)++;
    while (i > 0) {
        int up = (i - 1) / 2;
        if (h[up].p > p || (h[up].p == p && h[up].node < node)) break;
        h[i] = h[up];
        i = up;
    }
    h[i].p = p, h[i].node = node;
}

static Open heap_pop(Open *h, int *n) {
    Open top = h[0], last = h[--(*n)];
    int i = 0;
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        const Open *best = &last;
        if (l < *n && (h[l].p > best->p || (h[l].p == best->p && h[l].node < best->node)))
            m = l, best = &h[l];
        if (r < *n && (h[r].p > best->p || (h[r].p == best->p && h[r].node < best->node)))
            m = r;
        if (m == i) break;
        h[i] = h[m];
        i = m;
    }
    h[i] = last;
    return top;
}

static int core_best(Core *c, const uint8_t *w, int L, const double *lp, const uint8_t *allowed,
                     double *best_p) {
    ByteCtx x;
    Tree t;
    Bit b;
    uint32_t *first[NCM], *second[16][NCM], run[NCM];
    int have_second[16] = {0};
    uint8_t any[512]; /* any allowed byte below node k */
    for (int k = 0; k < 256; k++) any[256 + k] = allowed[k] != 0;
    for (int k = 255; k >= 1; k--) any[k] = any[2 * k] | any[2 * k + 1];
    byte_ctx(c, w, L, &x, 1);
    lstm_tree(lp, &t);
    find_slots(c, &x, -1, 0, first);
    for (int k = 0; k < NCM; k++) run[k] = first[k][0];
    Open heap[512];
    int n = 0;
    if (any[1]) heap_push(heap, &n, 1.0 - t.p256, 1);
    int best = allowed[256] ? 256 : -1;
    double bp = allowed[256] ? t.p256 : -1.0;
    while (n > 0) {
        Open o = heap_pop(heap, &n);
        if (o.p < bp) break; /* nothing below can beat the best found */
        int k = o.node;
        if (k >= 256) { /* a leaf: the best byte (bytes before the boundary on a tie) */
            best = k - 256, bp = o.p;
            break;
        }
        int d = k >= 128 ? 7 : k >= 64 ? 6 : k >= 32 ? 5 : k >= 16 ? 4 : k >= 8 ? 3 : k >= 4 ? 2 : k >= 2 ? 1 : 0;
        if (d < 4) {
            predict_bit(c, first, run, k, k, d, &x, &t, &b);
        } else {
            int hn = (k >> (d - 4)) & 15;
            if (!have_second[hn]) {
                for (int m = 0; m < NCM; m++) {
                    uint32_t *s = slot_find(c, nib_hash(x.h[m], hn), 0);
                    second[hn][m] = s ? s : (uint32_t *)EMPTY_SLOT;
                }
                have_second[hn] = 1;
            }
            int j = (1 << (d - 4)) | (k & ((1 << (d - 4)) - 1));
            predict_bit(c, second[hn], run, j, k, d, &x, &t, &b);
        }
        if (any[2 * k + 1]) heap_push(heap, &n, o.p * (double)b.p, 2 * k + 1);
        if (any[2 * k]) heap_push(heap, &n, o.p * (1.0 - (double)b.p), 2 * k);
    }
    *best_p = bp;
    return best;
}

/* ------------------------------------------------------- state file */

typedef struct {
    char magic[8];
    uint32_t version, endian;
    uint32_t nin, ncm, hist_bits, mt_bits;
    uint64_t memory_cap, cm_slots, total, bytes_learned, files_learned, bytes_scored, docs_scored,
        updates;
    float lr_mix, lr_final, apm_rate, w_apm1, w_apm2, lr_boost;
    uint32_t limit;
} Header;

static uint64_t checksum(const uint8_t *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL ^ (uint64_t)n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, p + i, 8);
        h = (h ^ v) * 0x100000001b3ULL;
        h ^= h >> 29;
    }
    for (; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    return mix64(h);
}

typedef struct {
    void *ptr;
    size_t bytes;
} Part;

static int parts(const Core *c, Part *p) {
    p[0].ptr = c->cm, p[0].bytes = (size_t)(c->cm_slots * 64);
    p[1].ptr = c->hist, p[1].bytes = (size_t)1 << c->hist_bits;
    p[2].ptr = c->mt, p[2].bytes = (size_t)8 << c->mt_bits;
    p[3].ptr = c->sm, p[3].bytes = SM_N * 4;
    p[10].ptr = c->am, p[10].bytes = AM_N * 4;
    p[11].ptr = c->rm, p[11].bytes = RM_N * 4;
    p[4].ptr = c->wa, p[4].bytes = sizeof(float) * NSETS_A * NIN;
    p[5].ptr = c->wb, p[5].bytes = sizeof(float) * NSETS_B * NIN;
    p[6].ptr = c->wc, p[6].bytes = sizeof(float) * NSETS_C * NIN;
    p[7].ptr = c->wf, p[7].bytes = sizeof(float) * NSETS_F * NFIN;
    p[8].ptr = c->apm1, p[8].bytes = 2 * 512 * APM_N;
    p[9].ptr = c->apm2, p[9].bytes = (size_t)2 * 131072 * APM_N;
    return 12;
}

/* ------------------------------------------------------- Python type */

typedef struct {
    PyObject_HEAD Core c;
} CoreObject;

static PyObject *StateError; /* set from Python: the AdaptiveStateError class */

static void Core_dealloc(CoreObject *self) {
    core_free(&self->c);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Core_init(CoreObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"memory_bytes", "lr_mix", "lr_final", "apm_rate", "w_apm1", "w_apm2",
                             "limit", "lr_boost", NULL};
    unsigned long long mem = 64ULL << 20;
    Params p;
    default_params(&p);
    unsigned int limit = p.limit;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|KfffffIf", kwlist, &mem, &p.lr_mix, &p.lr_final,
                                     &p.apm_rate, &p.w_apm1, &p.w_apm2, &limit, &p.lr_boost))
        return -1;
    p.limit = limit;
    if (!params_ok(&p)) {
        PyErr_SetString(PyExc_ValueError, "adaptive parameters out of range");
        return -1;
    }
    core_free(&self->c);
    Core *c = &self->c;
    if (plan_sizes(mem, &c->cm_slots, &c->hist_bits, &c->mt_bits) < 0) {
        PyErr_Format(PyExc_ValueError, "memory_bytes must be between %llu and %llu",
                     (unsigned long long)MIN_MEMORY, (unsigned long long)MAX_MEMORY);
        return -1;
    }
    c->memory_cap = mem;
    c->prm = p;
    if (core_alloc(c) < 0) {
        core_free(c);
        PyErr_NoMemory();
        return -1;
    }
    core_reset(c);
    return 0;
}

static int ready(CoreObject *self) {
    if (!self->c.cm) {
        PyErr_SetString(PyExc_RuntimeError, "adaptive core not initialised");
        return 0;
    }
    return 1;
}

static PyObject *Core_learn(CoreObject *self, PyObject *args) {
    Py_buffer d;
    if (!ready(self) || !PyArg_ParseTuple(args, "y*", &d)) return NULL;
    Py_BEGIN_ALLOW_THREADS core_learn(&self->c, (const uint8_t *)d.buf, d.len);
    Py_END_ALLOW_THREADS PyBuffer_Release(&d);
    Py_RETURN_NONE;
}

static int get_f64(PyObject *o, Py_buffer *b, int writable, Py_ssize_t n, const char *what) {
    if (PyObject_GetBuffer(o, b, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0)) <
        0)
        return -1;
    if (b->itemsize != 8 || !b->format || strcmp(b->format, "d") != 0 || b->len != n * 8) {
        PyBuffer_Release(b);
        PyErr_Format(PyExc_ValueError, "%s: expected %zd contiguous float64 values", what, n);
        return -1;
    }
    return 0;
}

/* predict(window: bytes, logprobs: float64[257], out: float64[257]) */
static PyObject *Core_predict(CoreObject *self, PyObject *args) {
    Py_buffer w, lp, out;
    PyObject *olp, *oout;
    if (!ready(self) || !PyArg_ParseTuple(args, "y*OO", &w, &olp, &oout)) return NULL;
    if (get_f64(olp, &lp, 0, NSYM, "logprobs") < 0) {
        PyBuffer_Release(&w);
        return NULL;
    }
    if (get_f64(oout, &out, 1, NSYM, "out") < 0) {
        PyBuffer_Release(&w);
        PyBuffer_Release(&lp);
        return NULL;
    }
    Py_ssize_t L = w.len < CTX_BYTES ? w.len : CTX_BYTES;
    const uint8_t *wp = (const uint8_t *)w.buf + (w.len - L);
    Py_BEGIN_ALLOW_THREADS core_predict(&self->c, wp, (int)L, (const double *)lp.buf,
                                        (double *)out.buf);
    Py_END_ALLOW_THREADS PyBuffer_Release(&w);
    PyBuffer_Release(&lp);
    PyBuffer_Release(&out);
    Py_RETURN_NONE;
}

static int get_f32(PyObject *o, Py_buffer *b, int writable, Py_ssize_t n, const char *what) {
    if (PyObject_GetBuffer(o, b, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0)) <
        0)
        return -1;
    if (b->itemsize != 4 || !b->format || strcmp(b->format, "f") != 0 || b->len != n * 4) {
        PyBuffer_Release(b);
        PyErr_Format(PyExc_ValueError, "%s: expected %zd contiguous float32 values", what, n);
        return -1;
    }
    return 0;
}

/* The LSTM's float32 logits as the float64 logits the tree reads: NaN is impossible,
 * +inf certain (as adaptive._log_probs does for predict()). */
static void logits_f64(const float *in, double *lp) {
    int posinf = 0;
    for (int i = 0; i < NSYM; i++) {
        float v = in[i];
        lp[i] = isnan(v) ? -INFINITY : (double)v;
        if (isinf(v) && v > 0) posinf = 1;
    }
    if (posinf)
        for (int i = 0; i < NSYM; i++) lp[i] = isinf(lp[i]) && lp[i] > 0 ? 0.0 : -INFINITY;
}

/* predict_logs(windows: sequence of k bytes, logits: float32[k*257], out: float32[k*257]):
 * for each row, the natural log of the mixed distribution after the window (the last
 * CONTEXT_BYTES bytes count) given the LSTM's logits there. Reads only. One call per
 * decoding step of any batch: the decoders' hot path. */
static PyObject *Core_predict_logs(CoreObject *self, PyObject *args) {
    PyObject *owin, *olg, *oout;
    Py_buffer lg, out;
    if (!ready(self) || !PyArg_ParseTuple(args, "OOO", &owin, &olg, &oout)) return NULL;
    PyObject *seq = PySequence_Fast(owin, "windows must be a sequence of bytes");
    if (!seq) return NULL;
    Py_ssize_t k = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t r = 0; r < k; r++)
        if (!PyBytes_Check(items[r])) {
            Py_DECREF(seq);
            PyErr_SetString(PyExc_TypeError, "windows must be bytes");
            return NULL;
        }
    if (get_f32(olg, &lg, 0, k * NSYM, "logits") < 0) {
        Py_DECREF(seq);
        return NULL;
    }
    if (get_f32(oout, &out, 1, k * NSYM, "out") < 0) {
        Py_DECREF(seq);
        PyBuffer_Release(&lg);
        return NULL;
    }
    /* the windows are immutable bytes held by seq: safe to read without the GIL */
    Py_BEGIN_ALLOW_THREADS for (Py_ssize_t r = 0; r < k; r++) {
        Py_ssize_t n = PyBytes_GET_SIZE(items[r]);
        Py_ssize_t L = n < CTX_BYTES ? n : CTX_BYTES;
        const uint8_t *wp = (const uint8_t *)PyBytes_AS_STRING(items[r]) + (n - L);
        double lp[NSYM], p[NSYM], z = 0.0;
        logits_f64((const float *)lg.buf + r * NSYM, lp);
        core_predict(&self->c, wp, (int)L, lp, p);
        for (int i = 0; i < NSYM; i++) z += p[i];
        float *o = (float *)out.buf + r * NSYM;
        for (int i = 0; i < NSYM; i++) o[i] = (float)log(p[i] / z);
    }
    Py_END_ALLOW_THREADS Py_DECREF(seq);
    PyBuffer_Release(&lg);
    PyBuffer_Release(&out);
    Py_RETURN_NONE;
}

/* best(window: bytes, logits: float32[257], allowed: float32[257]) -> (int, float): the
 * most likely symbol of the mixture where allowed (0 allowed, -inf not, as the decoders'
 * additive masks) and its probability; (-1, 0.0) if none. Reads only. Greedy decoding's
 * hot path. */
static PyObject *Core_best(CoreObject *self, PyObject *args) {
    Py_buffer w, lg, mk;
    PyObject *olg, *omk;
    if (!ready(self) || !PyArg_ParseTuple(args, "y*OO", &w, &olg, &omk)) return NULL;
    if (get_f32(olg, &lg, 0, NSYM, "logits") < 0) {
        PyBuffer_Release(&w);
        return NULL;
    }
    if (get_f32(omk, &mk, 0, NSYM, "allowed") < 0) {
        PyBuffer_Release(&w);
        PyBuffer_Release(&lg);
        return NULL;
    }
    Py_ssize_t L = w.len < CTX_BYTES ? w.len : CTX_BYTES;
    const uint8_t *wp = (const uint8_t *)w.buf + (w.len - L);
    double lp[NSYM], bp;
    uint8_t allowed[NSYM];
    int best;
    Py_BEGIN_ALLOW_THREADS logits_f64((const float *)lg.buf, lp);
    for (int i = 0; i < NSYM; i++) {
        float m = ((const float *)mk.buf)[i];
        allowed[i] = !(isinf(m) && m < 0) && !isnan(m);
    }
    best = core_best(&self->c, wp, (int)L, lp, allowed, &bp);
    Py_END_ALLOW_THREADS PyBuffer_Release(&w);
    PyBuffer_Release(&lg);
    PyBuffer_Release(&mk);
    return Py_BuildValue("(id)", best, best < 0 ? 0.0 : bp);
}

/* score(buf: bytes, off: int, logprobs: float64[n*257], out: float64[n]); the
 * data scored is buf[off:], after the context buf[:off]. */
static PyObject *Core_score(CoreObject *self, PyObject *args) {
    Py_buffer d, lp, out;
    Py_ssize_t off;
    PyObject *olp, *oout;
    if (!ready(self) || !PyArg_ParseTuple(args, "y*nOO", &d, &off, &olp, &oout)) return NULL;
    if (off < 0 || off > d.len) {
        PyBuffer_Release(&d);
        PyErr_SetString(PyExc_ValueError, "offset out of range");
        return NULL;
    }
    Py_ssize_t n = d.len - off;
    int has_lp = olp != Py_None;
    if (has_lp && get_f64(olp, &lp, 0, n * NSYM, "logprobs") < 0) {
        PyBuffer_Release(&d);
        return NULL;
    }
    if (get_f64(oout, &out, 1, n, "out") < 0) {
        PyBuffer_Release(&d);
        if (has_lp) PyBuffer_Release(&lp);
        return NULL;
    }
    const double *lpp = has_lp ? (const double *)lp.buf : NULL;
    Py_BEGIN_ALLOW_THREADS core_score(&self->c, (const uint8_t *)d.buf, off, n, lpp,
                                      (double *)out.buf);
    Py_END_ALLOW_THREADS self->c.docs_scored++;
    PyBuffer_Release(&d);
    if (has_lp) PyBuffer_Release(&lp);
    PyBuffer_Release(&out);
    Py_RETURN_NONE;
}

static PyObject *Core_stats(CoreObject *self, PyObject *Py_UNUSED(ignored)) {
    if (!ready(self)) return NULL;
    Core *c = &self->c;
    return Py_BuildValue("{s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K}", "bytes_learned",
                         (unsigned long long)c->bytes_learned, "files_learned",
                         (unsigned long long)c->files_learned, "bytes_scored",
                         (unsigned long long)c->bytes_scored, "documents_scored",
                         (unsigned long long)c->docs_scored, "memory_bytes",
                         (unsigned long long)core_bytes(c), "memory_cap",
                         (unsigned long long)c->memory_cap, "history_bytes",
                         (unsigned long long)((uint64_t)1 << c->hist_bits), "context_slots",
                         (unsigned long long)c->cm_slots);
}

static PyObject *Core_dumps(CoreObject *self, PyObject *Py_UNUSED(ignored)) {
    if (!ready(self)) return NULL;
    Core *c = &self->c;
    Header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, MAGIC, 8);
    h.version = FORMAT_VERSION;
    h.endian = 0x01020304u;
    h.nin = NIN;
    h.ncm = NCM;
    h.hist_bits = c->hist_bits;
    h.mt_bits = c->mt_bits;
    h.memory_cap = c->memory_cap;
    h.cm_slots = c->cm_slots;
    h.total = c->total;
    h.bytes_learned = c->bytes_learned;
    h.files_learned = c->files_learned;
    h.bytes_scored = c->bytes_scored;
    h.docs_scored = c->docs_scored;
    h.updates = c->updates;
    h.lr_mix = c->prm.lr_mix;
    h.lr_final = c->prm.lr_final;
    h.apm_rate = c->prm.apm_rate;
    h.w_apm1 = c->prm.w_apm1;
    h.w_apm2 = c->prm.w_apm2;
    h.limit = c->prm.limit;
    h.lr_boost = c->prm.lr_boost;
    Part p[16];
    int np = parts(c, p);
    size_t total = sizeof h + 8;
    for (int i = 0; i < np; i++) total += p[i].bytes;
    PyObject *res = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total);
    if (!res) return NULL;
    uint8_t *o = (uint8_t *)PyBytes_AS_STRING(res);
    memcpy(o, &h, sizeof h);
    size_t at = sizeof h;
    for (int i = 0; i < np; i++) {
        memcpy(o + at, p[i].ptr, p[i].bytes);
        at += p[i].bytes;
    }
    uint64_t cs = checksum(o, at);
    memcpy(o + at, &cs, 8);
    return res;
}

static PyTypeObject CoreType;

static PyObject *bad_state(const char *why) {
    PyErr_SetString(StateError ? StateError : PyExc_ValueError, why);
    return NULL;
}

static int floats_ok(const float *w, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(w[i]) || w[i] > 1e6f || w[i] < -1e6f) return 0;
    return 1;
}

/* loads(data: bytes) -> Core, validating everything. */
static PyObject *mod_loads(PyObject *mod, PyObject *args) {
    (void)mod;
    Py_buffer d;
    if (!PyArg_ParseTuple(args, "y*", &d)) return NULL;
    const uint8_t *s = (const uint8_t *)d.buf;
    size_t n = (size_t)d.len;
    Header h;
    PyObject *err = NULL;
    Core tmp;
    memset(&tmp, 0, sizeof tmp);
    if (n < sizeof h + 8) {
        err = bad_state("adaptive state file is truncated (shorter than its header)");
        goto done;
    }
    memcpy(&h, s, sizeof h);
    if (memcmp(h.magic, MAGIC, 8) != 0) {
        err = bad_state("not an adaptive state file (bad magic)");
        goto done;
    }
    if (h.version != FORMAT_VERSION || h.endian != 0x01020304u || h.nin != NIN || h.ncm != NCM) {
        err = bad_state("adaptive state file of another version or layout");
        goto done;
    }
    uint64_t slots;
    uint32_t hb, mb;
    if (plan_sizes(h.memory_cap, &slots, &hb, &mb) < 0 || slots != h.cm_slots || hb != h.hist_bits ||
        mb != h.mt_bits) {
        err = bad_state("adaptive state file has inconsistent sizes");
        goto done;
    }
    tmp.memory_cap = h.memory_cap;
    tmp.cm_slots = h.cm_slots;
    tmp.hist_bits = h.hist_bits;
    tmp.mt_bits = h.mt_bits;
    {
        Part p[16];
        int np = parts(&tmp, p);
        size_t need = sizeof h + 8;
        for (int i = 0; i < np; i++) need += p[i].bytes;
        if (need != n) {
            err = bad_state(need > n ? "adaptive state file is truncated"
                                     : "adaptive state file has trailing bytes");
            goto done;
        }
        uint64_t cs;
        memcpy(&cs, s + n - 8, 8);
        if (checksum(s, n - 8) != cs) {
            err = bad_state("adaptive state file is corrupt (checksum mismatch)");
            goto done;
        }
    }
    tmp.total = h.total;
    tmp.bytes_learned = h.bytes_learned;
    tmp.files_learned = h.files_learned;
    tmp.bytes_scored = h.bytes_scored;
    tmp.docs_scored = h.docs_scored;
    tmp.updates = h.updates;
    tmp.prm.lr_mix = h.lr_mix;
    tmp.prm.lr_final = h.lr_final;
    tmp.prm.apm_rate = h.apm_rate;
    tmp.prm.w_apm1 = h.w_apm1;
    tmp.prm.w_apm2 = h.w_apm2;
    tmp.prm.limit = h.limit;
    tmp.prm.lr_boost = h.lr_boost;
    if (!params_ok(&tmp.prm)) {
        err = bad_state("adaptive state file holds parameters out of range");
        goto done;
    }
    if (core_alloc(&tmp) < 0) {
        core_free(&tmp);
        PyBuffer_Release(&d);
        return PyErr_NoMemory();
    }
    {
        Part p[16];
        int np = parts(&tmp, p);
        size_t at = sizeof h;
        for (int i = 0; i < np; i++) {
            memcpy(p[i].ptr, s + at, p[i].bytes);
            at += p[i].bytes;
        }
    }
    if (!floats_ok(tmp.wa, (size_t)NSETS_A * NIN) || !floats_ok(tmp.wb, (size_t)NSETS_B * NIN) ||
        !floats_ok(tmp.wc, (size_t)NSETS_C * NIN) || !floats_ok(tmp.wf, (size_t)NSETS_F * NFIN)) {
        err = bad_state("adaptive state file holds invalid mixer weights");
        goto done;
    }
    {
        CoreObject *obj = (CoreObject *)CoreType.tp_alloc(&CoreType, 0);
        if (!obj) goto done;
        obj->c = tmp;
        memset(&tmp, 0, sizeof tmp);
        PyBuffer_Release(&d);
        return (PyObject *)obj;
    }
done:
    (void)err;
    core_free(&tmp);
    PyBuffer_Release(&d);
    return NULL;
}

static PyObject *mod_set_error(PyObject *mod, PyObject *cls) {
    (void)mod;
    if (!PyType_Check(cls) || !PyType_IsSubtype((PyTypeObject *)cls, (PyTypeObject *)PyExc_Exception)) {
        PyErr_SetString(PyExc_TypeError, "an exception class is required");
        return NULL;
    }
    Py_XDECREF(StateError);
    Py_INCREF(cls);
    StateError = cls;
    Py_RETURN_NONE;
}

static PyMethodDef Core_methods[] = {
    {"learn", (PyCFunction)Core_learn, METH_VARARGS, "learn(data: bytes): learn one file"},
    {"predict", (PyCFunction)Core_predict, METH_VARARGS,
     "predict(window, logprobs, out): the 257-way mixture; reads only"},
    {"best", (PyCFunction)Core_best, METH_VARARGS,
     "best(window, logits, allowed) -> (symbol, p): the most likely allowed symbol; reads only"},
    {"predict_logs", (PyCFunction)Core_predict_logs, METH_VARARGS,
     "predict_logs(windows, logits, out): float32 log-mixtures of k rows; reads only"},
    {"score", (PyCFunction)Core_score, METH_VARARGS,
     "score(buf, off, logprobs, out): bits of each byte of buf[off:], then learn it"},
    {"stats", (PyCFunction)Core_stats, METH_NOARGS, "counters and sizes"},
    {"dumps", (PyCFunction)Core_dumps, METH_NOARGS, "the whole state as bytes"},
    {NULL, NULL, 0, NULL}};

static PyTypeObject CoreType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "charcode.server.core._adaptive.Core",
    .tp_basicsize = sizeof(CoreObject),
    .tp_dealloc = (destructor)Core_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Adaptive context-mixing core (see adaptive.py)",
    .tp_methods = Core_methods,
    .tp_init = (initproc)Core_init,
    .tp_new = PyType_GenericNew,
};

static PyMethodDef mod_methods[] = {
    {"loads", (PyCFunction)mod_loads, METH_VARARGS, "loads(data) -> Core; validates everything"},
    {"set_error", (PyCFunction)mod_set_error, METH_O, "the exception class for bad state files"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef moddef = {PyModuleDef_HEAD_INIT, "_adaptive", NULL, -1, mod_methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__adaptive(void) {
    init_tables();
    if (PyType_Ready(&CoreType) < 0) return NULL;
    PyObject *m = PyModule_Create(&moddef);
    if (!m) return NULL;
    Py_INCREF(&CoreType);
    if (PyModule_AddObject(m, "Core", (PyObject *)&CoreType) < 0) {
        Py_DECREF(&CoreType);
        Py_DECREF(m);
        return NULL;
    }
    PyModule_AddIntConstant(m, "CONTEXT_BYTES", CTX_BYTES);
    PyModule_AddIntConstant(m, "FORMAT_VERSION", FORMAT_VERSION);
    PyModule_AddIntConstant(m, "MIN_MEMORY", (long)MIN_MEMORY);
    return m;
}
