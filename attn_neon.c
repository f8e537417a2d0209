/* attn_neon.c - the flash-attention inner kernels on AArch64 NEON (see
 * sx_attn_kernels in ops_impl.h), written once in attn_f32.h over this
 * file's vector macros, as attn_avx2.c and attn_avx512.c. A query tile is
 * QT = 4*QV queries, the lanes of QV q registers; the register tile is RT
 * rows x QT lanes: RT = 8 (divides every head_dim of SEED-X: 64, 104, 128,
 * 512), QV = 3: 24 accumulators, 3 B registers and a broadcast of the 32
 * vector registers. */
#include <arm_neon.h>
#include <math.h>

#include "ops_impl.h"
#define SX_NEON_F32_VEC
#include "ops_neon.h"

/* source order kept (see ops_neon.c): no spills in the register tile */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-schedule-insns")
#endif

#ifndef ATTN_NEON_QV
#define ATTN_NEON_QV 3
#endif
#define QV ATTN_NEON_QV
#define QT (4 * QV)
#define RT 8

#define V_FMSUB(a, b, c)      vfmaq_f32(vnegq_f32(c), a, b) /* a*b - c, one rounding */
#define V_EXP_ALPHA           exp4
#define VI                    int32x4_t
#define VI_LOAD(p)            vld1q_s32((const int32_t *)(p))
#define VI_SET1               vdupq_n_s32
#define V_IF_LT(j, vis, a, b) vbslq_f32(vcltq_s32(j, vis), a, b)
#define V_NINF_TO_0(x)        vbslq_f32(vceqq_f32(x, vdupq_n_f32(-INFINITY)), vdupq_n_f32(0.0f), x)
#include "attn_f32.h"

const sx_attn_kernels sx_attn_neon = ATTN_F32_KERNELS("neon");
