#!/bin/sh
# run.sh SECONDS NAME... — runs each libFuzzer target for SECONDS on a copy
# of its corpus in build/fuzz/corpus/NAME (seeded from tests/fuzz/corpus/NAME;
# FUZZ_FRESH=1 starts from the checked-in seeds only, as CI does). A crash,
# leak, timeout or sanitizer report fails the run; the input is kept in
# build/fuzz/artifacts/ and the command that replays it is printed.
set -u
cd "$(dirname "$0")/../.."
secs=$1
shift
[ "$secs" -ge 1 ] 2>/dev/null || secs=1
mkdir -p build/fuzz/artifacts
passed=0
failed=0
for name in "$@"; do
    bin=build/fuzz/fuzz/fuzz_$name
    corpus=build/fuzz/corpus/$name
    [ "${FUZZ_FRESH:-0}" = 1 ] && rm -rf "$corpus"
    mkdir -p "$corpus"
    [ -d tests/fuzz/corpus/$name ] && cp -n tests/fuzz/corpus/$name/* "$corpus"/ 2>/dev/null
    dict=""
    [ -f tests/fuzz/$name.dict ] && dict="-dict=tests/fuzz/$name.dict"
    log=build/fuzz/artifacts/$name.log
    echo "== fuzz_$name: ${secs}s"
    # -timeout: one input taking longer is a finding; -rss_limit_mb: so is
    # memory running away. Leaks are reported (libFuzzer's -detect_leaks).
    if "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix=build/fuzz/artifacts/$name- $dict "$corpus" >"$log" 2>&1; then
        grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::new_units_added)" "$log" | tr '\n' ' '
        echo
        passed=$((passed + 1))
    else
        tail -n 60 "$log"
        echo "fuzz_$name FAILED (log: $log); replay: make fuzz-repro TARGET=$name INPUT=$(ls -t build/fuzz/artifacts/$name-* 2>/dev/null | head -n1)"
        failed=$((failed + 1))
    fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
