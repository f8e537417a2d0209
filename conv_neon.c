/* conv_neon.c - the convolution micro-kernel on AArch64 NEON (see
 * sx_conv_kernels in ops_impl.h), written once in conv_f32.h over this
 * file's vector macros: 12 output channels x 8 pixels, 24 q-register
 * accumulators; per k step two loads of X (unaligned: shifted input rows)
 * and twelve broadcasts of the packed weights (LD1R). */
#include <arm_neon.h>

#include "ops.h"
#include "ops_impl.h"
#define SX_NEON_F32_VEC
#include "ops_neon.h"

/* source order kept (see ops_neon.c): no spills in the register tile */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-schedule-insns")
#endif

#define MR 12
#define NV 2 /* q registers per row: NR = 4 * NV pixels */
#define NR (4 * NV)

#define CONV_F32_PLAIN_EDGES
#include "conv_f32.h"

const sx_conv_kernels sx_conv_neon = CONV_F32_KERNELS("neon");
