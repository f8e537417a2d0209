/* simd.h - which instruction-set path the kernels use.
 *
 * Every kernel has a scalar reference; SIMD paths are chosen at run time from
 * what the CPU (and the OS) allows, or forced with SEEDX_SIMD=name. */
#ifndef SEEDX_SIMD_H
#define SEEDX_SIMD_H

#ifdef __cplusplus
extern "C" {
#endif

enum {
    SX_SIMD_SCALAR = 0,
    SX_SIMD_AVX2 = 1,   /* x86-64 AVX2 + FMA + F16C */
    SX_SIMD_AVX512 = 2, /* x86-64 AVX-512 F/BW/DQ/VL (+BF16 where present) */
    SX_SIMD_NEON = 3,   /* aarch64 Advanced SIMD */
    SX_SIMD_AMX = 4,    /* x86-64 AVX-512 + AMX-TILE/AMX-BF16 tiles for the BF16 GEMM (its
                         * float32 kernels are AVX-512's) */
    SX_SIMD_N = 5       /* number of paths (table size) */
};

/* Picks the best path the CPU supports, or SEEDX_SIMD if set. Safe to call
 * again. Returns -1 if SEEDX_SIMD names a path this CPU or build lacks. */
int sx_simd_init(void);
int sx_simd_set(int level); /* -1 (with error) if unsupported */
int sx_simd_level(void);
const char *sx_simd_name(int level);
/* AVX512-VNNI, a sub-feature of the avx512 path (its integer GEMV uses
 * vpdpbusd when present), and on aarch64 the dot-product extension of the
 * neon path (SDOT, vdotq_s32): 1 if the CPU has it and it is not switched
 * off (SEEDX_VNNI=0 or sx_simd_set_vnni(0)). */
int sx_simd_vnni(void);
int sx_simd_set_vnni(int on); /* -1 (with error) if on and unsupported */
int sx_simd_supported(int level);
/* The path whose vector kernels run: the level itself, except AMX, whose
 * float32 and conversion kernels are AVX-512's (wtype.c's table has no AMX
 * column). */
int sx_simd_vec_level(void);
/* 1 if the CPU has AVX512_BF16 (vdpbf16ps): the avx512 path's BF16 GEMM
 * then uses it instead of float32 FMAs on widened inputs. */
int sx_simd_has_avx512bf16(void);
/* The CPU's SIMD extensions as one line for `seedx version` (x86-64: avx2 fma
 * f16c, avx512*, avx512bf16, amx-*; aarch64: the hwcap names asimd, asimddp,
 * asimdhp, bf16, i8mm, sve that are present). */
const char *sx_simd_features(void);

#ifdef __cplusplus
}
#endif
#endif
