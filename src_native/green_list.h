/* The green-list bias of the generation-time text watermark, in plain C.
 *
 * Kept in C rather than Cython for one reason: the loop is a keyed hash per vocabulary entry and
 * it meets the 50 us/token budget only when it vectorises with 32-bit multiplies (SSE4.1
 * pmulld, AVX2 vpmulld). GCC's target_clones compiles it for those ISAs and picks the best at
 * load time, so the extension still runs on any x86-64 (and elsewhere, from the plain loop).
 * The numpy twin is labelkit._kernels_py.green_bias; both must give the same bits.
 */
#ifndef LABELKIT_GREEN_LIST_H
#define LABELKIT_GREEN_LIST_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) \
    && defined(__has_attribute)
#  if __has_attribute(target_clones)
#    define LK_CLONES __attribute__((target_clones("avx2", "sse4.1", "default")))
#  endif
#endif
#ifndef LK_CLONES
#  define LK_CLONES
#endif

/* MurmurHash3's 32-bit finaliser: a bijection on uint32 with full avalanche, so the green
 * sets of two contexts share no visible structure even though both start from hv[v] ^ hp. */
static inline uint32_t lk_fmix32(uint32_t x) {
    x ^= x >> 16;
    x *= 0x85EBCA6Bu;
    x ^= x >> 13;
    x *= 0xC2B2AE35u;
    x ^= x >> 16;
    return x;
}

/* out[i] = scores[i] + delta where token i is green after a context hashed to hp, else
 * scores[i] + 0. out may be scores. */
LK_CLONES static void lk_green_bias_f32(const float *scores, float *out, const uint32_t *hv,
                                        size_t n, uint32_t hp, uint32_t threshold, float delta) {
    for (size_t i = 0; i < n; i++) {
        /* Adding 0 to the others (rather than a select) lets GCC vectorise without
         * -fno-trapping-math; it only turns -0.0 into +0.0. */
        out[i] = scores[i] + (lk_fmix32(hv[i] ^ hp) < threshold ? delta : 0.0f);
    }
}

LK_CLONES static void lk_green_bias_f64(const double *scores, double *out, const uint32_t *hv,
                                        size_t n, uint32_t hp, uint32_t threshold, double delta) {
    for (size_t i = 0; i < n; i++) {
        out[i] = scores[i] + (lk_fmix32(hv[i] ^ hp) < threshold ? delta : 0.0);
    }
}

/* mask[i] = 1 where token i is green after the context hp (for frameworks that add the bias
 * themselves, e.g. on a GPU). */
LK_CLONES static void lk_green_mask(uint8_t *mask, const uint32_t *hv, size_t n, uint32_t hp,
                                    uint32_t threshold) {
    for (size_t i = 0; i < n; i++) {
        mask[i] = lk_fmix32(hv[i] ^ hp) < threshold;
    }
}

#endif
