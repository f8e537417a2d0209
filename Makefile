# seedx.c - plain Makefile. Every top-level *.c except the front-end files of
# ./seedx (CLI_SRCS) is library code; files named *_avx2.c / *_avx512.c /
# *_avx512bf16.c / *_amx.c / *_neon.c get their ISA flags and only build on
# the matching architecture (the CPU is checked at run time, simd.c).
# tests/test_*.c are test programs.
#
# The target architecture is the compiler's (`$(CC) -dumpmachine`), so
# `make CC=aarch64-linux-gnu-gcc` cross-builds; `make ARCH=aarch64` picks that
# compiler. A cross build goes to build-<arch>/ (seedx included) and its
# `make test` runs the programs under qemu-<arch> (tests/run_emulated.sh).
CC      ?= cc
OPT     ?= -O2
CFLAGS  ?= $(OPT) -g
BASE    := -std=gnu11 -D_GNU_SOURCE -ffp-contract=off -pthread -Wall -Wextra
LDLIBS  := -lm -lpthread
HOST_ARCH := $(shell uname -m)
ifeq ($(origin ARCH),command line)
  ifneq ($(filter-out $(HOST_ARCH),$(ARCH)),)
    ifeq ($(origin CC),default)
      CC := $(ARCH)-linux-gnu-gcc
    endif
  endif
endif
TARGET := $(subst arm64,aarch64,$(firstword $(subst -, ,$(shell $(CC) -dumpmachine))))
ifeq ($(TARGET),)
  $(error '$(CC) -dumpmachine' failed: no compiler '$(CC)' (aarch64 on Debian: apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross))
endif
ifeq ($(TARGET),$(HOST_ARCH))
  BUILD ?= build
  SEEDX := seedx
  RUN_TESTS := sh tests/run.sh
else
  BUILD ?= build-$(TARGET)
  SEEDX := $(BUILD)/seedx
  RUN_TESTS := sh tests/run_emulated.sh $(TARGET)
  ifeq ($(origin AR),default)
    AR := $(or $(shell command -v $(TARGET)-linux-gnu-ar 2>/dev/null),ar)
  endif
endif

CLI_SRCS := main.c cli.c cli_tools.c serve.c http.c json.c
CLI_OBJS := $(CLI_SRCS:%.c=$(BUILD)/%.o)
ALL_SRCS := $(filter-out $(CLI_SRCS), $(wildcard *.c))
X86_SRCS := %_avx2.c %_avx512.c %_avx512bf16.c %_amx.c
ifeq ($(TARGET),x86_64)
  LIB_SRCS := $(filter-out %_neon.c, $(ALL_SRCS))
else ifeq ($(TARGET),aarch64)
  LIB_SRCS := $(filter-out $(X86_SRCS), $(ALL_SRCS))
else
  LIB_SRCS := $(filter-out $(X86_SRCS) %_neon.c, $(ALL_SRCS))
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
AVX512_FLAGS := -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512dq
AVX512BF16_FLAGS := $(AVX512_FLAGS) -mavx512bf16
AMX_FLAGS    := $(AVX512_FLAGS) -mamx-tile -mamx-bf16

.PHONY: all test test-asan test-aarch64 test-portable test-browser bench fixtures format clean \
  fuzz install fullsize bench-full
all: $(SEEDX) $(BUILD)/libseedx.a

$(BUILD)/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(BASE) $(CFLAGS) -c $< -o $@
$(BUILD)/%_avx2.o: %_avx2.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(BASE) $(CFLAGS) $(AVX2_FLAGS) -c $< -o $@
$(BUILD)/%_avx512.o: %_avx512.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(BASE) $(CFLAGS) $(AVX512_FLAGS) -c $< -o $@
$(BUILD)/%_avx512bf16.o: %_avx512bf16.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(BASE) $(CFLAGS) $(AVX512BF16_FLAGS) -c $< -o $@
$(BUILD)/%_amx.o: %_amx.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(BASE) $(CFLAGS) $(AMX_FLAGS) -c $< -o $@
# the emulated AMX kernel includes ops_amx.c
$(BUILD)/ops_amxemu.o: ops_amxemu.c ops_amx.c $(HDRS)
# The quantized kernels' hot loops start on 64-byte boundaries: otherwise their
# speed follows where the linker happens to put them (the integer tiles of a
# 600-token prefill: 12% apart between two builds of the same code, AMD Zen 4).
$(BUILD)/quant_avx512.o: BASE += -falign-loops=64 -falign-functions=64

$(BUILD)/libseedx.a: $(LIB_OBJS)
	rm -f $@ && $(AR) rcs $@ $^

$(SEEDX): $(CLI_OBJS) $(BUILD)/libseedx.a
	$(CC) $(BASE) $(CFLAGS) -o $@ $^ $(LDLIBS)

# `seedx serve` embeds webui.html (.incbin); its tests link the HTTP and JSON code.
$(BUILD)/serve.o: webui.html
$(BUILD)/tests/test_serve: tests/test_serve.c tests/test.h $(BUILD)/http.o $(BUILD)/json.o $(BUILD)/libseedx.a
	@mkdir -p $(dir $@)
	$(CC) $(BASE) $(CFLAGS) -I. -o $@ $< $(BUILD)/http.o $(BUILD)/json.o $(BUILD)/libseedx.a $(LDLIBS)

$(BUILD)/tests/%: tests/%.c tests/test.h $(BUILD)/libseedx.a
	@mkdir -p $(dir $@)
	$(CC) $(BASE) $(CFLAGS) -I. -o $@ $< $(BUILD)/libseedx.a $(LDLIBS)
# gcc 12 for aarch64 stops with an internal compiler error
# (vect_transform_reduction) vectorizing a reduction in test_quant.c
ifeq ($(TARGET),aarch64)
$(BUILD)/tests/test_quant: BASE += -fno-tree-vectorize
endif

# tests/test_cli.c also calls the front-end's own functions (cli.h)
CLI_LIB_OBJS := $(BUILD)/cli.o $(BUILD)/cli_tools.o
$(BUILD)/tests/test_cli: tests/test_cli.c tests/test.h $(BUILD)/libseedx.a $(CLI_LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(BASE) $(CFLAGS) -I. -o $@ $< $(CLI_LIB_OBJS) $(BUILD)/libseedx.a $(LDLIBS)

# make install [PREFIX=/usr/local] [DESTDIR=]: the binary, the library, the
# public headers (a program compiles with -I PREFIX/include/seedx and
# #include "seedx.h") and the tiny model `seedx demo` finds next to the binary.
PREFIX   ?= /usr/local
PUB_HDRS := seedx.h sx_core.h half.h simd.h wtype.h gguf.h ops.h nn.h tokenizer.h image_io.h vit.h \
            llama.h detokenizer.h unet.h sampler.h vae.h
install: $(SEEDX) $(BUILD)/libseedx.a
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include/seedx \
	  $(DESTDIR)$(PREFIX)/share/seedx/tiny-model
	install -m 755 $(SEEDX) $(DESTDIR)$(PREFIX)/bin/seedx
	install -m 644 $(BUILD)/libseedx.a $(DESTDIR)$(PREFIX)/lib/libseedx.a
	install -m 644 $(PUB_HDRS) $(DESTDIR)$(PREFIX)/include/seedx/
	install -m 644 tests/fixtures/seedx_e2e/model/*.gguf $(DESTDIR)$(PREFIX)/share/seedx/tiny-model/

# make test installs into $(BUILD)/install-test and builds tests/example_api.c
# against that tree only; tests/test_install.c runs the installed seedx and the
# example from another directory.
INSTALL_TEST := $(BUILD)/install-test
$(INSTALL_TEST)/.done: $(SEEDX) $(BUILD)/libseedx.a $(PUB_HDRS) Makefile
	rm -rf $(INSTALL_TEST)
	$(MAKE) --no-print-directory install PREFIX=$(abspath $(INSTALL_TEST)) > /dev/null
	touch $@
$(BUILD)/tests/example_api: tests/example_api.c $(INSTALL_TEST)/.done
	$(CC) $(BASE) $(CFLAGS) -I$(INSTALL_TEST)/include/seedx -o $@ $< \
	  $(INSTALL_TEST)/lib/libseedx.a $(LDLIBS)

test: $(SEEDX) $(TEST_BINS) $(BUILD)/tests/example_api
	@$(RUN_TESTS) $(BUILD) $(TEST_BINS)

# Cross-built for aarch64 (gcc-aarch64-linux-gnu, libc6-dev-arm64-cross) and
# run under qemu-aarch64 (qemu-user), once on the NEON path and once with
# SEEDX_SIMD=scalar; one closing line for both runs.
test-aarch64:
	@$(MAKE) --no-print-directory ARCH=aarch64 test

# The x86-64 baseline (-march=x86-64: no AVX outside the *_avx*.c files) on
# the scalar path, in its own build directory. On an emulated CPU without AVX,
# where the dispatch itself must pick scalar:
#   make test-portable QEMU="qemu-x86_64 -cpu Nehalem" PORTABLE_SIMDS=auto
PORTABLE_SIMDS ?= scalar
test-portable:
	@$(MAKE) --no-print-directory BUILD=build-portable CFLAGS="$(OPT) -g -march=x86-64" \
	  SEEDX=build-portable/seedx \
	  RUN_TESTS="env SEEDX_TEST_SIMDS=$(PORTABLE_SIMDS) sh tests/run_emulated.sh native" test

# The web page of `seedx serve` in a real browser: Debian's chromium and
# chromium-driver driven by selenium (tests/requirements-browser.txt);
# BROWSER_PY is a python that has it. Screenshots go to $(BUILD)/browser/.
BROWSER_PY ?= python3
test-browser: $(SEEDX)
	SEEDX_TEST_BUILD=$(BUILD) $(BROWSER_PY) tests/test_serve_browser.py

# The sanitized build also makes ./seedx (the CLI tests run it); it is removed
# afterwards so the next `make` links the normal binary again.
test-asan:
	rm -f seedx
	$(MAKE) BUILD=build-asan CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" test; \
	rc=$$?; rm -f seedx; exit $$rc

# Every bench runs even if one fails (bench_image and the PyTorch columns need
# the reference venv); the status is non-zero if any failed.
bench: $(SEEDX) $(BENCH_BINS)
	@failed=""; for b in $(BENCH_BINS); do echo "== $$b"; ./$$b || failed="$$failed $$b"; done; \
	if [ -n "$$failed" ]; then echo "bench: failed:$$failed"; exit 1; fi

fixtures:
	@[ -x .venv/bin/python ] || { echo "run scripts/setup_reference_env.sh first"; exit 1; }
	.venv/bin/python scripts/make_fixtures.py

# Opt-in, not in CI (hours, tens of GB; README "Full-size rehearsal and benchmarks"):
# random-weight SEED-X files of the real sizes in SEEDX_FULLSIZE_DIR. `fullsize` converts
# every component (time, peak RSS) and runs every mode on the result (per-stage time and
# RSS), `bench-full` times whole models beside PyTorch.
# FULLSIZE_ARGS / BENCH_FULL_ARGS pass options (e.g. BENCH_FULL_ARGS="--groups unet --runs 5").
fullsize bench-full: seedx $(BUILD)/tests/bench_matmul
	@[ -x .venv/bin/python ] || { echo "run scripts/setup_reference_env.sh first"; exit 1; }
	@[ -n "$(SEEDX_FULLSIZE_DIR)" ] || { echo "set SEEDX_FULLSIZE_DIR to a folder on a disk with ~35 GB free"; exit 1; }
	.venv/bin/python scripts/bench_full.py $(if $(filter fullsize,$@),fullsize $(FULLSIZE_ARGS),run $(BENCH_FULL_ARGS)) --dir "$(SEEDX_FULLSIZE_DIR)"

format:
	clang-format -i *.c *.h tests/*.c tests/*.h

clean:
	rm -rf build build-asan build-fuzz build-portable build-aarch64 seedx

# libFuzzer harnesses: tests/fuzz_<name>.c, built with clang (with the library,
# the HTTP/JSON code and the front-end's cli.c / cli_tools.c); each runs for FUZZ_SECONDS
# (default 60) on its corpus tests/fuzz/<name>/ (seeded from fixtures).
FUZZ_SRCS := $(wildcard tests/fuzz_*.c)
FUZZ_BINS := $(FUZZ_SRCS:tests/%.c=build-fuzz/%)
FUZZ_SECONDS ?= 60
FUZZ_LIB_SRCS := $(filter-out $(X86_SRCS) %_neon.c,$(LIB_SRCS)) http.c json.c cli.c cli_tools.c
build-fuzz/%: tests/%.c $(FUZZ_LIB_SRCS) $(HDRS)
	@mkdir -p build-fuzz
	clang $(BASE) -O1 -g -DSX_NO_SIMD_FILES -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I. -o $@ $< $(FUZZ_LIB_SRCS) $(LDLIBS)
fuzz: $(FUZZ_BINS)
	@for f in $(FUZZ_BINS); do n=$$(basename $$f); mkdir -p tests/fuzz/$${n#fuzz_}; \
	  echo "== $$n ($(FUZZ_SECONDS)s)"; new=$$(mktemp -d); \
	  ./$$f -max_total_time=$(FUZZ_SECONDS) $$new tests/fuzz/$${n#fuzz_} || exit 1; rm -rf $$new; done
