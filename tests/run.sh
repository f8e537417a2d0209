#!/bin/sh
# Runs every test program, prints their output and the closing line
# "N passed, M failed" summed over all of them. Exit status 0 iff none failed.
# SEEDX_TEST_EXEC, if set, is the command that runs each program (an
# emulator: see tests/run_emulated.sh).
build=$1; shift
SEEDX_TEST_BUILD=$build; export SEEDX_TEST_BUILD
pass=0; fail=0
for t in "$@"; do
  out=$(${SEEDX_TEST_EXEC:-} "./$t" 2>&1); rc=$?
  printf '%s\n' "$out" | grep -v -E '^[0-9]+ passed, [0-9]+ failed' 
  line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 1)
  if [ -z "$line" ]; then
    echo "FAIL $t: exited with $rc without a summary line"; fail=$((fail+1)); continue
  fi
  p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
  f=$(echo "$line" | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/')
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then echo "FAIL $t: exit status $rc"; f=1; fi
  pass=$((pass+p)); fail=$((fail+f))
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
