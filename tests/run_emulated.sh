#!/bin/sh
# Runs the test programs of a build whose binaries this machine cannot run
# directly (a cross build: ARCH = aarch64, ...) under qemu-ARCH, or of a
# second native build (ARCH = native), from a run directory that looks like
# the repository root: links to everything in it (sources, tests/, ...) but
# ./seedx, which is a wrapper that runs BUILD/seedx (under qemu: binfmt_misc
# is not assumed), and BUILD/, the build.
# `ldd ./seedx` (test_core) is answered for BUILD/seedx by a shim first in
# PATH: under qemu, the target's dynamic loader lists the libraries.
#
#   sh tests/run_emulated.sh ARCH BUILD test-programs...
#
# The suite runs once per SIMD setting in SEEDX_TEST_SIMDS (default: "auto
# scalar": the path the CPU picks, then SEEDX_SIMD=scalar; an already set
# SEEDX_SIMD means that one run). Under emulation SEEDX_TEST_EMULATED=1 is
# set: tests skip their real-shape heavy parts (they say which). Closing
# line: "N passed, M failed" summed over the runs; exit status 0 iff none
# failed. QEMU overrides the emulator command (e.g. "qemu-x86_64 -cpu Nehalem"),
# QEMU_LD_PREFIX the target's sysroot (default /usr/ARCH-linux-gnu).
arch=$1; build=$2; shift 2
root=$(pwd)
run="$build/run"
top=${build%%/*}
mkdir -p "$run/bin"
for f in "$root"/* "$root"/.[!.]*; do
  b=${f##*/}
  case $b in seedx | "$top" | ".[!.]*") ;; *) ln -sfn "$f" "$run/$b" ;; esac
done
mkdir -p "$run/$(dirname "$build")"
ln -sfn "$root/$build" "$run/$build"
real_ldd=$(command -v ldd)
if [ "$arch" = native ]; then
  emu=${QEMU:-}
  ldd_cmd="$real_ldd"
else
  emu=${QEMU:-qemu-$arch}
  QEMU_LD_PREFIX=${QEMU_LD_PREFIX:-/usr/$arch-linux-gnu}
  export QEMU_LD_PREFIX
  if ! command -v "${emu%% *}" >/dev/null 2>&1; then
    echo "run_emulated: ${emu%% *} not found (Debian: apt-get install qemu-user)"
    echo "0 passed, 1 failed"
    exit 1
  fi
  SEEDX_TEST_EMULATED=1
  export SEEDX_TEST_EMULATED
  loader=$(ls "$QEMU_LD_PREFIX"/lib/ld-linux*.so.* 2>/dev/null | head -n 1)
  ldd_cmd="$emu $loader --list"
fi
if [ -n "$emu" ] && [ "$arch" = native ]; then SEEDX_TEST_EMULATED=1; export SEEDX_TEST_EMULATED; fi
printf '#!/bin/sh\nexec %s "%s/%s/seedx" "$@"\n' "$emu" "$root" "$build" > "$run/seedx"
# (the emulated loader lists qemu's unnamed vdso as a bare address: dropped)
printf '#!/bin/sh\nif [ "$1" = ./seedx ]; then %s "%s/%s/seedx" | grep -v "^[[:space:]]*(0x"; exit 0; fi\nexec %s "$@"\n' \
  "$ldd_cmd" "$root" "$build" "$real_ldd" > "$run/bin/ldd"
chmod +x "$run/seedx" "$run/bin/ldd"

if [ -n "${SEEDX_SIMD:-}" ]; then simds=$SEEDX_SIMD; else simds=${SEEDX_TEST_SIMDS:-auto scalar}; fi
pass=0; fail=0
for simd in $simds; do
  if [ "$simd" = auto ]; then unset SEEDX_SIMD; else SEEDX_SIMD=$simd; export SEEDX_SIMD; fi
  echo "== $arch${emu:+ under $emu}, SEEDX_SIMD=$simd"
  log="$root/$build/run_$simd.log"
  (cd "$run" && PATH="$root/$run/bin:$PATH" SEEDX_TEST_EXEC="$emu" sh "$root/tests/run.sh" "$build" "$@") 2>&1 |
    tee "$log" | while IFS= read -r l; do
      case $l in *[0-9]" passed, "[0-9]*" failed") ;; *) printf '%s\n' "$l" ;; esac
    done
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
  if [ -z "$line" ]; then line="0 passed, 1 failed"; fi
  echo "$arch SEEDX_SIMD=$simd: $line"
  pass=$((pass + ${line%% passed*})); f=${line#*passed, }; fail=$((fail + ${f%% failed*}))
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
