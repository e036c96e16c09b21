/* Sequential selective scan on the CPU: the recurrence of ssmctl.engine.scan, fused into one pass.
 *
 *   h_t[h, p, n] = exp(dt_t[h] * A[h, n]) * h_{t-1}[h, p, n] + v_t[h, p] * B_t[g(h), n]
 *   y_t[h, p]    = sum_n C_t[g(h), n] * h_t[h, p, n]
 *
 * Layouts (all C-contiguous): dt (batch, L, H); A (H, Na) with Na = N or 1; v (batch, L, H, P);
 * B, C (batch, L, G, N); h (batch, H, P, N) holds h_0 on entry and h_L on return; y (batch, L, H, P);
 * states (batch, L, H, P, N) or NULL. g(h) = h / (H / G).
 *
 * Why C: the eager-tensor scan makes about nine passes over (tokens x channels x states) memory. Here a tile
 * of (channel, input) lanes keeps its states in L1 while the tokens stream by, and each state is loaded,
 * decayed, fed and stored once per token, with its decay exp(dt A) computed in registers. Lanes go in SIMD
 * vectors (GCC/Clang vector extensions: no intrinsics, no -ffast-math), so IEEE semantics hold, NaN
 * propagates and the sum over n runs in order. exp is a polynomial evaluated in the vectors.
 * One call handles channels [h_begin, h_end), so callers can split the channels over threads.
 * Built by ssmctl/systems/native.py; no Python API, called through ctypes (which releases the GIL).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define VBYTES 32           /* one AVX register; split in two on SSE-only machines */
#ifndef TILE_STATES
#define TILE_STATES 1024    /* states per tile (4 KB in float): a tile's states and decays stay in L1 */
#endif

typedef float vf32 __attribute__((vector_size(VBYTES)));
typedef int32_t vi32 __attribute__((vector_size(VBYTES)));
typedef double vf64 __attribute__((vector_size(VBYTES)));
typedef int64_t vi64 __attribute__((vector_size(VBYTES)));

/* where(mask, a, b) on bit patterns: mask lanes are all ones (take a) or all zeros (take b). */
#define SELECT(VF, VI, mask, a, b) ((VF)(((VI)(a) & (mask)) | ((VI)(b) & ~(mask))))

/* 2^z in float lanes: z = i + f with i = round(z) (the 1.5 * 2^23 trick: the integer lands in the low mantissa
 * bits), |f| <= 1/2; 2^f = e^{f ln 2} by its Taylor series to degree 7 (truncation < 6e-9 relative, below
 * float's 6e-8); 2^i written into the exponent bits. Below 2^-126 the result is 0 (a decay that small is 0
 * to float precision), above 2^127 +inf. A NaN fails both comparisons and goes through the polynomial as NaN. */
static inline vf32 exp2_v32(vf32 z)
{
    const vf32 lo = z - z - 126.0f, hi = z - z + 127.0f, magic = z - z + 12582912.0f;
    const vi32 below = z < lo, above = z > hi;
    vf32 zc = SELECT(vf32, vi32, below, lo, z);
    zc = SELECT(vf32, vi32, above, hi, zc);
    const vf32 shifted = zc + magic;
    const vi32 zi = (vi32)shifted - (vi32)magic;
    const vf32 f = (zc - (shifted - magic)) * 0.693147180559945309f;
    vf32 p = f * (1.0f / 5040.0f) + 1.0f / 720.0f;
    p = p * f + 1.0f / 120.0f;
    p = p * f + 1.0f / 24.0f;
    p = p * f + 1.0f / 6.0f;
    p = p * f + 0.5f;
    p = p * f + 1.0f;
    p = p * f + 1.0f;
    vf32 r = p * (vf32)((zi + 127) << 23);
    r = SELECT(vf32, vi32, below, lo - lo, r);
    r = SELECT(vf32, vi32, above, (vf32)((zi - zi) + 0x7f800000), r);
    return r;
}

/* The same in double lanes: round by 1.5 * 2^52, degree 13 (truncation < 5e-18), exponent range [-1022, 1023]. */
static inline vf64 exp2_v64(vf64 z)
{
    const vf64 lo = z - z - 1022.0, hi = z - z + 1023.0, magic = z - z + 6755399441055744.0;
    const vi64 below = z < lo, above = z > hi;
    vf64 zc = SELECT(vf64, vi64, below, lo, z);
    zc = SELECT(vf64, vi64, above, hi, zc);
    const vf64 shifted = zc + magic;
    const vi64 zi = (vi64)shifted - (vi64)magic;
    const vf64 f = (zc - (shifted - magic)) * 0.693147180559945309417232;
    vf64 p = f * (1.0 / 6227020800.0) + 1.0 / 479001600.0;
    p = p * f + 1.0 / 39916800.0;
    p = p * f + 1.0 / 3628800.0;
    p = p * f + 1.0 / 362880.0;
    p = p * f + 1.0 / 40320.0;
    p = p * f + 1.0 / 5040.0;
    p = p * f + 1.0 / 720.0;
    p = p * f + 1.0 / 120.0;
    p = p * f + 1.0 / 24.0;
    p = p * f + 1.0 / 6.0;
    p = p * f + 0.5;
    p = p * f + 1.0;
    p = p * f + 1.0;
    vf64 r = p * (vf64)((zi + 1023) << 52);
    r = SELECT(vf64, vi64, below, lo - lo, r);
    r = SELECT(vf64, vi64, above, (vf64)((zi - zi) + 0x7ff0000000000000LL), r);
    return r;
}

#define DEFINE_SCAN(NAME, T, VF, EXP2V, LOG2E)                                                             \
int64_t NAME(int64_t batch, int64_t L, int64_t H, int64_t P, int64_t G, int64_t N, int64_t Na,             \
             const T *restrict dt, const T *restrict A, const T *restrict v, const T *restrict B,        \
             const T *restrict C, T *restrict h, T *restrict y, T *restrict states,                       \
             int64_t h_begin, int64_t h_end)                                                              \
{                                                                                                         \
    enum { VL = VBYTES / sizeof(T) };                                                                     \
    if (batch < 0 || L < 0 || H <= 0 || P <= 0 || G <= 0 || N <= 0 || (Na != N && Na != 1) || H % G     \
        || h_begin < 0 || h_end > H || h_begin > h_end)                                                   \
        return -1;                                                                                        \
    const int64_t Hg = H / G;                                                                             \
    const int64_t lanes = TILE_STATES / N > 64 ? TILE_STATES / N : 64;  /* fewer states: wider tiles */    \
    const int64_t tile_channels = P >= lanes ? 1 : lanes / P;                                             \
    const int64_t W_max = (tile_channels * P + VL - 1) / VL * VL;                                          \
    /* tile buffers, lanes padded to whole vectors: states (N, W), A log2(e) (Na, W), rate, input, output */ \
    void *mem = NULL;                                                                                     \
    if (posix_memalign(&mem, VBYTES, sizeof(T) * (size_t)(W_max * (N + Na + 3)))) return -2;              \
    T *restrict hs = (T *)mem;                                                                            \
    T *restrict As = hs + N * W_max;                                                                      \
    T *restrict rate = As + Na * W_max;                                                                   \
    T *restrict inp = rate + W_max;                                                                       \
    T *restrict out = inp + W_max;                                                                        \
    for (int64_t b = 0; b < batch; ++b) {                                                                 \
        for (int64_t c0 = h_begin; c0 < h_end;) {                                                         \
            const int64_t g = c0 / Hg;                                                                    \
            int64_t c1 = c0 + tile_channels;                                                              \
            if (c1 > h_end) c1 = h_end;                                                                   \
            if (c1 > (g + 1) * Hg) c1 = (g + 1) * Hg; /* one group per tile: B_t, C_t shared */          \
            const int64_t W = (c1 - c0) * P, nvec = (W + VL - 1) / VL, Wp = nvec * VL;                     \
            T *restrict h_tile = h + (b * H + c0) * P * N;                                                \
            /* padded lanes: rate 0, input 0, state 0 -- they stay 0 and are never written out */        \
            memset(mem, 0, sizeof(T) * (size_t)(W_max * (N + Na + 3)));                                   \
            for (int64_t l = 0; l < W; ++l) {                                                             \
                for (int64_t n = 0; n < N; ++n) hs[n * Wp + l] = h_tile[l * N + n];                       \
                for (int64_t k = 0; k < Na; ++k) As[k * Wp + l] = A[(c0 + l / P) * Na + k] * LOG2E;       \
            }                                                                                             \
            for (int64_t t = 0; t < L; ++t) {                                                             \
                const int64_t row = b * L + t;                                                            \
                const T *restrict dt_row = dt + row * H + c0;                                             \
                const T *restrict Bt = B + (row * G + g) * N;                                             \
                const T *restrict Ct = C + (row * G + g) * N;                                             \
                memcpy(inp, v + (row * H + c0) * P, sizeof(T) * (size_t)W);                               \
                if (P == 1) memcpy(rate, dt_row, sizeof(T) * (size_t)W);                                  \
                else for (int64_t l = 0; l < W; ++l) rate[l] = dt_row[l / P];                             \
                for (int64_t j = 0; j < nvec; ++j) {                                                      \
                    const VF r = *(const VF *)(rate + j * VL);                                            \
                    const VF u = *(const VF *)(inp + j * VL);                                             \
                    VF acc = r - r;                                                                       \
                    VF a = EXP2V(r * *(const VF *)(As + j * VL));                                         \
                    for (int64_t n = 0; n < N; ++n) {                                                     \
                        if (Na != 1) a = EXP2V(r * *(const VF *)(As + n * Wp + j * VL));                  \
                        VF *hv = (VF *)(hs + n * Wp + j * VL);                                            \
                        const VF s = a * *hv + u * Bt[n];                                                 \
                        *hv = s;                                                                          \
                        acc += s * Ct[n];                                                                 \
                    }                                                                                     \
                    *(VF *)(out + j * VL) = acc;                                                          \
                }                                                                                         \
                memcpy(y + (row * H + c0) * P, out, sizeof(T) * (size_t)W);                               \
                if (states) {                                                                             \
                    T *restrict st = states + (row * H + c0) * P * N;                                     \
                    for (int64_t l = 0; l < W; ++l)                                                       \
                        for (int64_t n = 0; n < N; ++n) st[l * N + n] = hs[n * Wp + l];                   \
                }                                                                                         \
            }                                                                                             \
            for (int64_t l = 0; l < W; ++l)                                                               \
                for (int64_t n = 0; n < N; ++n) h_tile[l * N + n] = hs[n * Wp + l];                       \
            c0 = c1;                                                                                      \
        }                                                                                                 \
    }                                                                                                     \
    free(mem);                                                                                            \
    return 0;                                                                                             \
}

DEFINE_SCAN(ssmctl_scan_f32, float, vf32, exp2_v32, 1.4426950408889634f)
DEFINE_SCAN(ssmctl_scan_f64, double, vf64, exp2_v64, 1.4426950408889634073599)
