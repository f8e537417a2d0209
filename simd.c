/* simd.c - run-time choice of the SIMD path: what the CPU has (CPUID), what
 * the OS agreed to save (XCR0), and SEEDX_SIMD to force one. */
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include "ops_impl.h"
#include "simd.h"
#include "sx_core.h"

static const sx_kernels *cur = &sx_kernels_scalar;
static int cur_level = SX_SIMD_SCALAR;
static int vnni_on; /* AVX512-VNNI in use (avx512 path only) */

const char *sx_simd_name(int level) {
    switch (level) {
    case SX_SIMD_SCALAR: return "scalar";
    case SX_SIMD_AVX2: return "avx2";
    case SX_SIMD_AVX512: return "avx512";
    case SX_SIMD_NEON: return "neon";
    }
    return "?";
}

static const sx_kernels *kernels_for(int level) {
    switch (level) {
    case SX_SIMD_SCALAR: return &sx_kernels_scalar;
#if defined(__x86_64__) && !defined(SX_NO_SIMD_FILES)
    case SX_SIMD_AVX2: return &sx_kernels_avx2;
    case SX_SIMD_AVX512: return &sx_kernels_avx512;
#endif
#if defined(__aarch64__) && !defined(SX_NO_SIMD_FILES)
    case SX_SIMD_NEON: return &sx_kernels_neon;
#endif
    }
    return NULL;
}

#if defined(__x86_64__)
/* CPUID feature bits, plus the OS's consent (XCR0) to save the wider
 * register state. */
static int x86_has(int level) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, f16c = (c >> 29) & 1;
    if (!osxsave || !avx) return 0;
    unsigned xlo, xhi;
    __asm__("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
    (void)xhi;
    if ((xlo & 6) != 6) return 0; /* XMM and YMM state */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    int avx2 = (b >> 5) & 1, avx512f = (b >> 16) & 1, avx512dq = (b >> 17) & 1;
    int avx512bw = (b >> 30) & 1, avx512vl = (b >> 31) & 1;
    if (level == SX_SIMD_AVX2) return avx2 && fma && f16c;
    if (level == SX_SIMD_AVX512)
        return avx2 && fma && f16c && avx512f && avx512dq && avx512bw && avx512vl &&
               (xlo & 0xe6) == 0xe6; /* opmask, ZMM_Hi256, Hi16_ZMM state */
    return 0;
}

/* AVX512-VNNI: CPUID.(7,0):ECX bit 11 (on top of the avx512 path). */
static __attribute__((unused)) int x86_has_vnni(void) {
    unsigned a, b, c, d;
    if (!x86_has(SX_SIMD_AVX512) || !__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    return (c >> 11) & 1;
}
#endif

int sx_simd_vnni(void) { return vnni_on; }

int sx_simd_set_vnni(int on) {
#if defined(__x86_64__) && !defined(SX_NO_SIMD_FILES)
    if (on && !x86_has_vnni()) return sx_err("AVX512-VNNI is not supported by this CPU");
    vnni_on = on ? 1 : 0;
    return 0;
#else
    if (on) return sx_err("AVX512-VNNI is not supported by this build");
    vnni_on = 0;
    return 0;
#endif
}

int sx_simd_supported(int level) {
    if (!kernels_for(level)) return 0;
#if defined(__x86_64__)
    if (level == SX_SIMD_AVX2 || level == SX_SIMD_AVX512) return x86_has(level);
#endif
    return 1;
}

int sx_simd_set(int level) {
    if (!sx_simd_supported(level))
        return sx_err("SIMD path '%s' is not supported by this CPU or build", sx_simd_name(level));
    cur = kernels_for(level);
    cur_level = level;
    return 0;
}

int sx_simd_level(void) { return cur_level; }

const sx_kernels *sx_kernels_cur(void) { return cur; }

int sx_simd_init(void) {
    const char *v = getenv("SEEDX_VNNI");
#if defined(__x86_64__) && !defined(SX_NO_SIMD_FILES)
    vnni_on = x86_has_vnni() && !(v && !strcmp(v, "0"));
#else
    (void)v;
#endif
    const char *e = getenv("SEEDX_SIMD");
    if (e && *e) {
        for (int l = 0; l < SX_SIMD_N; l++)
            if (!strcmp(e, sx_simd_name(l))) return sx_simd_set(l);
        return sx_err("SEEDX_SIMD='%s': expected scalar, avx2, avx512 or neon", e);
    }
    for (int l = SX_SIMD_N - 1; l >= 0; l--)
        if (sx_simd_supported(l)) return sx_simd_set(l);
    return sx_simd_set(SX_SIMD_SCALAR);
}
