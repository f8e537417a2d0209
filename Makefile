# seedx.c - plain Makefile. Every top-level *.c except main.c is library code;
# files named *_avx2.c / *_avx512.c / *_neon.c get their ISA flags and only
# build on the matching architecture. tests/test_*.c are test programs.
CC      ?= cc
OPT     ?= -O2
CFLAGS  ?= $(OPT) -g
BASE    := -std=gnu11 -D_GNU_SOURCE -ffp-contract=off -pthread -Wall -Wextra
LDLIBS  := -lm -lpthread
ARCH    := $(shell uname -m)
BUILD   ?= build

ALL_SRCS := $(filter-out main.c, $(wildcard *.c))
ifeq ($(ARCH),x86_64)
  LIB_SRCS := $(filter-out %_neon.c, $(ALL_SRCS))
else ifeq ($(ARCH),aarch64)
  LIB_SRCS := $(filter-out %_avx2.c %_avx512.c, $(ALL_SRCS))
else
  LIB_SRCS := $(filter-out %_avx2.c %_avx512.c %_neon.c, $(ALL_SRCS))
endif
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/%.o)
HDRS      := $(wildcard *.h)
TEST_SRCS := $(wildcard tests/test_*.c)
TEST_BINS := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)
BENCH_SRCS := $(wildcard tests/bench_*.c)
BENCH_BINS := $(BENCH_SRCS:tests/%.c=$(BUILD)/tests/%)

AVX2_FLAGS   := -mavx2 -mfma -mf16c
# AVX512-VNNI is a run-time sub-feature of the avx512 path (simd.c: sx_simd_vnni): it is
# NOT in these flags but enabled per function (target("avx512vnni")), so that nothing
# else in an *_avx512.c file can use it on a CPU without it (Skylake-X). With
# -mavx512vnni, gcc 12.2 also turns a plain int8 x int8 dot loop into vpdpbusd,
# which multiplies u8 x s8 (wrong for negative weights) -- seen in quant_avx512.c.
AVX512_FLAGS := -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512bf16

.PHONY: all test test-asan bench fixtures format clean fuzz
all: seedx $(BUILD)/libseedx.a

$(BUILD)/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(BASE) $(CFLAGS) -c $< -o $@
$(BUILD)/%_avx2.o: %_avx2.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(BASE) $(CFLAGS) $(AVX2_FLAGS) -c $< -o $@
$(BUILD)/%_avx512.o: %_avx512.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(BASE) $(CFLAGS) $(AVX512_FLAGS) -c $< -o $@

$(BUILD)/libseedx.a: $(LIB_OBJS)
	rm -f $@ && ar rcs $@ $^

seedx: $(BUILD)/main.o $(BUILD)/libseedx.a
	$(CC) $(BASE) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/%.c tests/test.h $(BUILD)/libseedx.a
	@mkdir -p $(dir $@)
	$(CC) $(BASE) $(CFLAGS) -I. -o $@ $< $(BUILD)/libseedx.a $(LDLIBS)

test: seedx $(TEST_BINS)
	@sh tests/run.sh $(BUILD) $(TEST_BINS)

# The sanitized build also makes ./seedx (the CLI tests run it); it is removed
# afterwards so the next `make` links the normal binary again.
test-asan:
	rm -f seedx
	$(MAKE) BUILD=build-asan CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" test; \
	rc=$$?; rm -f seedx; exit $$rc

# Every bench runs even if one fails (bench_image and the PyTorch columns need
# the reference venv); the status is non-zero if any failed.
bench: seedx $(BENCH_BINS)
	@failed=""; for b in $(BENCH_BINS); do echo "== $$b"; ./$$b || failed="$$failed $$b"; done; \
	if [ -n "$$failed" ]; then echo "bench: failed:$$failed"; exit 1; fi

fixtures:
	@[ -x .venv/bin/python ] || { echo "run scripts/setup_reference_env.sh first"; exit 1; }
	.venv/bin/python scripts/make_fixtures.py

format:
	clang-format -i *.c *.h tests/*.c tests/*.h

clean:
	rm -rf build build-asan build-fuzz seedx

# libFuzzer harnesses: tests/fuzz_<name>.c, built with clang; each runs for
# FUZZ_SECONDS (default 60) on its corpus tests/fuzz/<name>/ (seeded from fixtures).
FUZZ_SRCS := $(wildcard tests/fuzz_*.c)
FUZZ_BINS := $(FUZZ_SRCS:tests/%.c=build-fuzz/%)
FUZZ_SECONDS ?= 60
build-fuzz/%: tests/%.c $(LIB_SRCS) $(HDRS)
	@mkdir -p build-fuzz
	clang $(BASE) -O1 -g -DSX_NO_SIMD_FILES -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I. -o $@ $< $(filter-out %_avx2.c %_avx512.c %_neon.c,$(LIB_SRCS)) $(LDLIBS)
fuzz: $(FUZZ_BINS)
	@for f in $(FUZZ_BINS); do n=$$(basename $$f); mkdir -p tests/fuzz/$${n#fuzz_}; \
	  echo "== $$n ($(FUZZ_SECONDS)s)"; new=$$(mktemp -d); \
	  ./$$f -max_total_time=$(FUZZ_SECONDS) $$new tests/fuzz/$${n#fuzz_} || exit 1; rm -rf $$new; done
