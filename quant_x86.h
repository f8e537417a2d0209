/* quant_x86.h - helpers shared by quant_avx2.c and quant_avx512.c (AVX2
 * level; include only from files compiled with the AVX2 flags). */
#ifndef SEEDX_QUANT_X86_H
#define SEEDX_QUANT_X86_H

#include <immintrin.h>
#include <string.h>

#include "quant.h"

#define MAXR 4 /* (weight row, activation row) pairs per GEMV pass (SX_GEMV_MAX_M) */

static inline size_t al64(size_t n) {
    return (n + 63) / 64 * 64;
}

/* an f16 at a (possibly unaligned) address, converted */
static inline float f16at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

static inline int32_t hsum128_i32(__m128i s) {
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}
static inline int32_t hsum_i32(__m256i v) {
    return hsum128_i32(_mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1)));
}

/* Q4_0 block: 16 bytes of nibbles -> 32 bytes of codes 0..15 in value order */
static inline __m256i nibbles32(const uint8_t *p) {
    __m128i q = _mm_loadu_si128((const __m128i *)p);
    __m256i v = _mm256_set_m128i(_mm_srli_epi16(q, 4), q);
    return _mm256_and_si256(v, _mm256_set1_epi8(15));
}

/* w . a for one block of 32 as 8 int32 lanes: maddubs with |w| unsigned and
 * the sign of w moved onto a (|w| <= 128, |a| <= 127: no saturation) */
static inline __m256i dot32(__m256i w, __m256i a) {
    __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(a, w));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

/* sums of each 4-byte lane of 32 int8 codes, as 8 int32 */
static inline __m256i lane_sums(__m256i a) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), a), _mm256_set1_epi16(1));
}

/* one block against Q8_0 activation codes, exact integers (the tails; with
 * intrinsics: a plain int8 loop may be turned into vpdpbusd in a VNNI
 * function, which gcc 12 gets wrong for s8 x s8) */
static inline int32_t dot_q8_0_1(const uint8_t *w, const int8_t *a) {
    return hsum_i32(
        dot32(_mm256_loadu_si256((const __m256i *)w), _mm256_loadu_si256((const __m256i *)a)));
}
static inline int32_t dot_q4_0_1(const uint8_t *w, const int8_t *a) {
    return hsum_i32(dot32(_mm256_sub_epi8(nibbles32(w), _mm256_set1_epi8(8)),
                          _mm256_loadu_si256((const __m256i *)a)));
}

/* the codes of chunk c (values 64c..64c+63) of a Q4_K block: [0] the low
 * nibbles (sub-block 2c), [1] the high ones (sub-block 2c+1) */
static inline void q4k_chunk(const uint8_t *blk, int c, __m256i nib[2]) {
    __m256i qv = _mm256_loadu_si256((const __m256i *)(blk + 16 + 32 * c));
    nib[0] = _mm256_and_si256(qv, _mm256_set1_epi8(15));
    nib[1] = _mm256_and_si256(_mm256_srli_epi16(qv, 4), _mm256_set1_epi8(15));
}

/* The Q8_0 / Q4_0 GEMVs prefetch the weights QPF_BYTES ahead of the block
 * they multiply, into L2 (past the row: the next row, as the rows are
 * contiguous). One thread reading a 400 MB matrix from DRAM on AMD Zen 4
 * went from 12-14 to 20-23 GB/s at K = 13824 (AVX-512 Q8_0 and Q4_0), from
 * 16-18 to 21-22 for Q4_0 at K = 5120, and the AVX2 Q4_0 from 8.5 to 15-16
 * at K = 13824; into L1 or 1-4 KB ahead gained less or nothing (README,
 * "Prefetching the weights"). */
#define QPF_BYTES 8192
/* (always_inline: gcc 12 took a separate function holding only a prefetch
 * for one without effects, and deleted its calls) */
static inline __attribute__((always_inline)) void prefetch_l2(const void *p) {
    _mm_prefetch((const char *)p + QPF_BYTES, _MM_HINT_T1);
}

/* the lines of one Q4_K super-block at p (144 bytes), QPF_BYTES ahead: a
 * 4th line it may touch is the next block's first */
static inline __attribute__((always_inline)) void prefetch_q4_k(const uint8_t *p) {
    prefetch_l2(p);
    prefetch_l2(p + 64);
    prefetch_l2(p + 128);
}

/* The pairs of one GEMV pass: weight row n against each of the m activation
 * rows. Fills the rows, activation indices and output columns; returns the
 * count (m). One weight row per pass, also for m == 1: the rows of W are
 * contiguous, so the kernel reads the whole matrix as one sequential stream,
 * which the hardware prefetchers follow (passes over 4 rows at once, 4
 * streams a row apart, measured 1.7x slower from DRAM on AMD Zen 4). */
static inline int q_pairs(int m, int64_t n, const void *w, size_t ldw, const uint8_t **wr, int *ai,
                          int64_t *col) {
    for (int i = 0; i < m; i++) {
        col[i] = n;
        wr[i] = (const uint8_t *)w + (size_t)n * ldw;
        ai[i] = i;
    }
    return m;
}

#endif
