/* simd.c - run-time choice of the SIMD path: what the CPU has (CPUID and
 * what the OS agreed to save, XCR0, on x86-64, for AMX also the per-process
 * permission of arch_prctl; the kernel's hwcaps on aarch64), and SEEDX_SIMD
 * to force one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif
#if defined(__x86_64__) && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif

#include "ops_impl.h"
#include "simd.h"
#include "sx_core.h"

static const sx_kernels *cur = &sx_kernels_scalar;
static const sx_bf16_kernels *cur_bf16 = &sx_bf16_kernels_scalar;
static int cur_level = SX_SIMD_SCALAR;
static int vnni_on; /* AVX512-VNNI (avx512 path) or SDOT (neon path) in use */

const char *sx_simd_name(int level) {
    switch (level) {
    case SX_SIMD_SCALAR: return "scalar";
    case SX_SIMD_AVX2: return "avx2";
    case SX_SIMD_AVX512: return "avx512";
    case SX_SIMD_NEON: return "neon";
    case SX_SIMD_AMX: return "amx";
    }
    return "?";
}

static const sx_kernels *kernels_for(int level) {
    switch (level) {
    case SX_SIMD_SCALAR: return &sx_kernels_scalar;
#if defined(__x86_64__) && !defined(SX_NO_SIMD_FILES)
    case SX_SIMD_AVX2: return &sx_kernels_avx2;
    case SX_SIMD_AVX512:
    case SX_SIMD_AMX: return &sx_kernels_avx512;
#endif
#if defined(__aarch64__) && !defined(SX_NO_SIMD_FILES)
    case SX_SIMD_NEON: return &sx_kernels_neon;
#endif
    }
    return NULL;
}

#if defined(__x86_64__)
static unsigned xcr0(void) {
    unsigned xlo, xhi;
    __asm__("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
    (void)xhi;
    return xlo;
}

/* CPUID feature bits, plus the OS's consent (XCR0) to save the wider
 * register state. */
static int x86_has(int level) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, f16c = (c >> 29) & 1;
    if (!osxsave || !avx) return 0;
    unsigned x = xcr0();
    if ((x & 6) != 6) return 0; /* XMM and YMM state */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    int avx2 = (b >> 5) & 1, avx512f = (b >> 16) & 1, avx512dq = (b >> 17) & 1;
    int avx512bw = (b >> 30) & 1, avx512vl = (b >> 31) & 1;
    if (level == SX_SIMD_AVX2) return avx2 && fma && f16c;
    if (level == SX_SIMD_AVX512)
        return avx2 && fma && f16c && avx512f && avx512dq && avx512bw && avx512vl &&
               (x & 0xe6) == 0xe6; /* opmask, ZMM_Hi256, Hi16_ZMM state */
    return 0;
}

/* AVX512-VNNI: CPUID.(7,0):ECX bit 11 (on top of the avx512 path). */
static __attribute__((unused)) int x86_has_vnni(void) {
    unsigned a, b, c, d;
    if (!x86_has(SX_SIMD_AVX512) || !__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    return (c >> 11) & 1;
}

static int x86_avx512bf16(void) {
    unsigned a, b, c, d;
    if (!x86_has(SX_SIMD_AVX512) || !__get_cpuid_count(7, 1, &a, &b, &c, &d)) return 0;
    return (a >> 5) & 1;
}

/* AMX: AMX-TILE and AMX-BF16 (CPUID 7.0 EDX bits 24, 22), tile palette 1 as
 * the kernel assumes it (8 tiles of 16 rows x 64 bytes: CPUID 0x1D), the
 * OS saving tile state (XCR0 bits 17, 18), and Linux's per-process
 * permission to use it (arch_prctl ARCH_REQ_XCOMP_PERM for XTILEDATA),
 * asked once. Any refusal: 0, and the caller falls back silently. */
static int amx_probe(void) {
    unsigned a, b, c, d;
    if (!x86_has(SX_SIMD_AVX512) || !__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    if (!((d >> 24) & 1) || !((d >> 22) & 1)) return 0;
    if ((xcr0() & 0x60000) != 0x60000) return 0;
    if (__get_cpuid_max(0, NULL) < 0x1d) return 0;
    __cpuid_count(0x1d, 0, a, b, c, d);
    if (a < 1) return 0; /* max palette */
    __cpuid_count(0x1d, 1, a, b, c, d);
    if ((a >> 16) < 1024 || (b & 0xffff) < 64 || (b >> 16) < 8 || (c & 0xffff) < 16) return 0;
#if defined(__linux__) && defined(SYS_arch_prctl)
    /* ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 */
    if (syscall(SYS_arch_prctl, 0x1023, 18) != 0) return 0;
    return 1;
#else
    return 0;
#endif
}

static int x86_amx(void) {
    static int state = -1; /* -1: not asked yet (benign race: asking twice is harmless) */
    if (state < 0) state = amx_probe();
    return state;
}
#endif

#if defined(__aarch64__)
/* AArch64: NEON (ASIMD) is baseline; the optional extensions come from the
 * kernel's hwcaps (Linux; elsewhere none are assumed). */
#ifndef HWCAP_ASIMD
#define HWCAP_ASIMD (1 << 1)
#endif
#ifndef HWCAP_ASIMDHP
#define HWCAP_ASIMDHP (1 << 10)
#endif
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#ifndef HWCAP_SVE
#define HWCAP_SVE (1 << 22)
#endif
#ifndef HWCAP2_I8MM
#define HWCAP2_I8MM (1 << 13)
#endif
#ifndef HWCAP2_BF16
#define HWCAP2_BF16 (1 << 14)
#endif
#endif

unsigned sx_cpu_flags(void) {
    unsigned f = 0;
#if defined(__aarch64__) && defined(__linux__)
    unsigned long h = getauxval(AT_HWCAP), h2 = getauxval(AT_HWCAP2); /* reads a table: cheap */
    if (h & HWCAP_ASIMD) f |= SX_CPU_NEON;
    if (h & HWCAP_ASIMDDP) f |= SX_CPU_DOTPROD;
    if (h & HWCAP_ASIMDHP) f |= SX_CPU_FP16;
    if (h2 & HWCAP2_BF16) f |= SX_CPU_BF16;
    if (h2 & HWCAP2_I8MM) f |= SX_CPU_I8MM;
    if (h & HWCAP_SVE) f |= SX_CPU_SVE;
#elif defined(__aarch64__)
    f = SX_CPU_NEON;
#endif
    return f;
}

/* Appends a space-separated name to buf (size 96). */
static void add_name(char *buf, size_t *o, const char *name) {
    int n = snprintf(buf + *o, 96 - *o, "%s%s", *o ? " " : "", name);
    if (n > 0 && *o + (size_t)n < 96) *o += (size_t)n;
}

const char *sx_simd_features(void) {
    static _Thread_local char buf[96];
    size_t o = 0;
    buf[0] = 0;
#if defined(__aarch64__)
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {{SX_CPU_NEON, "asimd"}, {SX_CPU_DOTPROD, "asimddp"}, {SX_CPU_FP16, "asimdhp"},
                 {SX_CPU_BF16, "bf16"},  {SX_CPU_I8MM, "i8mm"},       {SX_CPU_SVE, "sve"}};
    unsigned f = sx_cpu_flags();
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (f & names[i].bit) add_name(buf, &o, names[i].name);
#elif defined(__x86_64__)
    if (x86_has(SX_SIMD_AVX2)) add_name(buf, &o, "avx2 fma f16c");
    if (x86_has(SX_SIMD_AVX512)) add_name(buf, &o, "avx512f avx512bw avx512vl avx512dq");
    if (x86_avx512bf16()) add_name(buf, &o, "avx512bf16");
    if (x86_amx()) add_name(buf, &o, "amx-tile amx-bf16");
    if (!o) add_name(buf, &o, "sse2");
#endif
    return buf;
}

int sx_simd_vnni(void) { return vnni_on; }

int sx_simd_set_vnni(int on) {
#if defined(__x86_64__) && !defined(SX_NO_SIMD_FILES)
    if (on && !x86_has_vnni()) return sx_err("AVX512-VNNI is not supported by this CPU");
    vnni_on = on ? 1 : 0;
    return 0;
#elif defined(__aarch64__) && !defined(SX_NO_SIMD_FILES)
    if (on && !(sx_cpu_flags() & SX_CPU_DOTPROD))
        return sx_err("the dot-product extension (SDOT) is not supported by this CPU");
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
#if !defined(SX_NO_SIMD_FILES)
    if (level == SX_SIMD_AMX) return x86_amx();
#endif
#endif
#if defined(__aarch64__)
    if (level == SX_SIMD_NEON) return (sx_cpu_flags() & SX_CPU_NEON) != 0;
#endif
    return level != SX_SIMD_AMX;
}

int sx_simd_has_avx512bf16(void) {
#if defined(__x86_64__)
    static _Atomic int has = -1; /* cpuid is slow in a virtual machine: ask once */
    if (has < 0) has = x86_avx512bf16();
    return has;
#else
    return 0;
#endif
}

/* The BF16 GEMM kernels of a level (a level without BF16 instructions runs
 * the same arithmetic on float32 FMAs). */
static const sx_bf16_kernels *bf16_kernels_for(int level) {
    switch (level) {
#if defined(__x86_64__) && !defined(SX_NO_SIMD_FILES)
    case SX_SIMD_AVX2: return &sx_bf16_kernels_avx2;
    case SX_SIMD_AVX512:
        return x86_avx512bf16() ? &sx_bf16_kernels_avx512bf16 : &sx_bf16_kernels_avx512;
    case SX_SIMD_AMX: return &sx_bf16_kernels_amx;
#endif
#if defined(__aarch64__) && !defined(SX_NO_SIMD_FILES)
    case SX_SIMD_NEON: return &sx_bf16_kernels_neon;
#endif
    }
    return &sx_bf16_kernels_scalar;
}

int sx_simd_set(int level) {
    if (!sx_simd_supported(level))
        return sx_err("SIMD path '%s' is not supported by this CPU or build", sx_simd_name(level));
    cur = kernels_for(level);
    cur_bf16 = bf16_kernels_for(level);
    cur_level = level;
    return 0;
}

int sx_simd_level(void) { return cur_level; }

int sx_simd_vec_level(void) { return cur_level == SX_SIMD_AMX ? SX_SIMD_AVX512 : cur_level; }

const sx_kernels *sx_kernels_cur(void) { return cur; }

const sx_bf16_kernels *sx_bf16_kernels_cur(void) { return cur_bf16; }

void sx_bf16_kernels_override(const sx_bf16_kernels *k) {
    cur_bf16 = k ? k : bf16_kernels_for(cur_level);
}

int sx_simd_init(void) {
    const char *v = getenv("SEEDX_VNNI");
#if defined(__x86_64__) && !defined(SX_NO_SIMD_FILES)
    vnni_on = x86_has_vnni() && !(v && !strcmp(v, "0"));
#elif defined(__aarch64__) && !defined(SX_NO_SIMD_FILES)
    vnni_on = (sx_cpu_flags() & SX_CPU_DOTPROD) && !(v && !strcmp(v, "0"));
#else
    (void)v;
#endif
    const char *e = getenv("SEEDX_SIMD");
    if (e && *e) {
        for (int l = 0; l < SX_SIMD_N; l++)
            if (!strcmp(e, sx_simd_name(l))) return sx_simd_set(l);
        return sx_err("SEEDX_SIMD='%s': expected scalar, avx2, avx512, amx or neon", e);
    }
    for (int l = SX_SIMD_N - 1; l >= 0; l--)
        if (sx_simd_supported(l)) return sx_simd_set(l);
    return sx_simd_set(SX_SIMD_SCALAR);
}
