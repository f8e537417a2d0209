/* ops_amx.c - the BF16 GEMM micro-kernel on AMX tiles (TDPBF16PS).
 *
 * Tiles, all 16 rows x 64 bytes (palette 1): tmm0..3 the float32 sums of a
 * 32 x 32 block of C (2 x 2 tiles of 16 x 16), tmm4/5 two A tiles (16 rows
 * x 32 k of bfloat16, read straight from the A rows), tmm6/7 two B tiles
 * (16 k pairs x 16 columns: 1 KiB of a tile-layout panel). Per 32-k step:
 * 4 tile loads, 4 TDPBF16PS. With 16 rows or fewer only tmm4 and tmm0/1.
 * The tile configuration is loaded once per thread, on its first call.
 *
 * Compiled twice: as is (flags -mamx-tile -mamx-bf16) for the CPU, and by
 * ops_amxemu.c with SX_AMX_EMULATE, which computes the same tile
 * instructions in C (the operation as Intel's SDM describes it), so the
 * tests run this kernel's addressing, and the driver around it, on any
 * CPU. */
#include <stdint.h>
#include <string.h>

#include "ops_impl.h"

#if defined(SX_AMX_EMULATE)
#include "half.h"

static _Thread_local union {
    uint8_t b[64];
    float f[16];
    uint16_t h[32];
} tile[8][16];

static void t_load(int t, const void *p, size_t stride) {
    for (int r = 0; r < 16; r++) memcpy(tile[t][r].b, (const char *)p + r * stride, 64);
}
static void t_store(int t, void *p, size_t stride) {
    for (int r = 0; r < 16; r++) memcpy((char *)p + r * stride, tile[t][r].b, 64);
}
static void t_zero(int t) { memset(tile[t], 0, sizeof tile[t]); }
/* TDPBF16PS c, a, b: c[m][n] += a[m][2k] b[k][2n], then += a[m][2k+1] b[k][2n+1],
 * k = 0..15, denormals flushed (the SDM's pseudo-code). */
static void t_dp(int c, int a, int b) {
    unsigned csr = sx_flush_denormals_begin();
    for (int m = 0; m < 16; m++)
        for (int k = 0; k < 16; k++)
            for (int n = 0; n < 16; n++) {
                float s = tile[c][m].f[n];
                s += sx_bf16_to_f32(tile[a][m].h[2 * k]) * sx_bf16_to_f32(tile[b][k].h[2 * n]);
                s += sx_bf16_to_f32(tile[a][m].h[2 * k + 1]) * sx_bf16_to_f32(tile[b][k].h[2 * n + 1]);
                tile[c][m].f[n] = s;
            }
    sx_flush_denormals_end(csr);
}
static void tiles_config(void) {}
#define TLOAD(t, p, s) t_load(t, p, s)
#define TSTORE(t, p, s) t_store(t, p, s)
#define TZERO(t) t_zero(t)
#define TDP(c, a, b) t_dp(c, a, b)
#define KERNELS sx_bf16_kernels_amx_emulated
#define NAME "amx-emulated"

#else
#include <immintrin.h>

static _Thread_local int configured;
static void tiles_config(void) {
    if (configured) return;
    struct {
        uint8_t palette, start_row, reserved[14];
        uint16_t colsb[16];
        uint8_t rows[16];
    } __attribute__((packed, aligned(64))) cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int i = 0; i < 8; i++) {
        cfg.colsb[i] = 64;
        cfg.rows[i] = 16;
    }
    _tile_loadconfig(&cfg);
    configured = 1;
}
#define TLOAD(t, p, s) _tile_loadd(t, p, s)
#define TSTORE(t, p, s) _tile_stored(t, p, s)
#define TZERO(t) _tile_zero(t)
#define TDP(c, a, b) _tile_dpbf16ps(c, a, b)
#define KERNELS sx_bf16_kernels_amx
#define NAME "amx"
#endif

#define MR 32

static void ukr(int64_t kp, const void *av, int64_t lda, int rows, const uint16_t *b,
                int64_t bstride, float *c, int64_t ldc, int load_c) {
    const uint16_t *a = av;
    const uint16_t *b1 = b + bstride;
    size_t sa = (size_t)lda * 2, sc = (size_t)ldc * 4;
    int two = rows > 16; /* a second row of tiles (A rows 16..31) */
    tiles_config();
    if (load_c) {
        TLOAD(0, c, sc);
        TLOAD(1, c + 16, sc);
        if (two) {
            TLOAD(2, c + 16 * ldc, sc);
            TLOAD(3, c + 16 * ldc + 16, sc);
        }
    } else {
        TZERO(0);
        TZERO(1);
        if (two) {
            TZERO(2);
            TZERO(3);
        }
    }
    for (int64_t j = 0; j < kp; j += 16) {
        TLOAD(4, a + 2 * j, sa);
        TLOAD(6, b + 32 * j, 64);
        TLOAD(7, b1 + 32 * j, 64);
        TDP(0, 4, 6);
        TDP(1, 4, 7);
        if (two) {
            TLOAD(5, a + 16 * lda + 2 * j, sa);
            TDP(2, 5, 6);
            TDP(3, 5, 7);
        }
    }
    TSTORE(0, c, sc);
    TSTORE(1, c + 16, sc);
    if (two) {
        TSTORE(2, c + 16 * ldc, sc);
        TSTORE(3, c + 16 * ldc + 16, sc);
    }
}

/* kc: 256 k pairs = 512 k (multiple of the 16 pairs of a tile): per call
 * the two B panels are 32 KiB, A's 32 rows 32 KiB, in L1/L2. */
const sx_bf16_kernels KERNELS = {
    .name = NAME, .mr = MR, .a_layout = SX_BF16_A_ROWS, .kc = 256, .native = 1, .ukr = ukr};
