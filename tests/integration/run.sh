#!/usr/bin/env bash
# run.sh — runs every numbered integration test (NN-feature-case.*) against
# the real broker binary ($PLEXUS_BIN) and prints a summary of test cases.
#
# Tests are independent (each starts its own broker on free ports with its
# own data directory), so they run side by side: PLEXUS_TEST_JOBS at a time
# (default: one per core, plus one, since most of a test's time is spent
# waiting on the broker). A file whose first lines hold "plexus-test: serial"
# runs alone afterwards (memory or load figures that a neighbour would skew).
# TESTS="03-send-receive.py 11-bad-input.py" runs just those.
# PLEXUS_TEST_BROKER=amqp://guest:guest@127.0.0.1:PORT runs the AMQP 0-9-1
# client tests (51-56) against that already running broker (RabbitMQ, to check
# the tests themselves) instead of bin/plexus; cases that need the Plexus
# process are skipped then, and only then (harness.py).
#
# Counting: a file reports its cases (harness.py prints a "#plexus-counts"
# line; Node's test runner prints TAP "# pass/# fail/# skipped"); a file
# that exits 77 is one skipped case. A case skipped for a reason beginning
# "missing:" lacks a dependency that scripts/deps.sh installs: under CI
# (CI=true) that is a failure, since a skip there would hide a broken set-up.
#
# Under ThreadSanitizer (PLEXUS_TSAN=1, as `make tsan` runs it) each test's
# brokers write their reports to a log path of the test's own, and a report
# fails the test however the broker ended (killed by the test, or stopped
# without its exit status being looked at).
set -u
cd "$(dirname "$0")"
: "${PLEXUS_BIN:?set PLEXUS_BIN to the broker binary}"
export PLEXUS_BIN
PY=/usr/bin/python3

# The Node.js tests (*.js) drive the broker with rhea (and the dashboard
# with playwright-core and Debian's chromium), pinned in
# package-lock.json: a clean clone installs it here with `npm ci`.
if ls [0-9][0-9]-*.js >/dev/null 2>&1; then
    missing=""
    command -v node >/dev/null 2>&1 || missing="$missing node"
    command -v npm >/dev/null 2>&1 || missing="$missing npm"
    if [ -n "$missing" ]; then
        echo "run.sh: the *.js tests need Node.js 18 or later and npm; not found:$missing" >&2
        echo "run.sh: install them with 'scripts/deps.sh test' as root, or 'apt-get install nodejs npm'" >&2
        exit 1
    fi
    if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)'; then
        echo "run.sh: the *.js tests need Node.js 18 or later (node:test); this is $(node --version)" >&2
        exit 1
    fi
    if [ ! -d node_modules/rhea ] || [ ! -d node_modules/playwright-core ]; then
        echo "run.sh: installing the Node.js test dependencies (npm ci in tests/integration)"
        if ! npm ci --ignore-scripts --no-audit --no-fund --loglevel=error; then
            echo "run.sh: npm ci failed in $(pwd); the *.js tests cannot run" >&2
            exit 1
        fi
    fi
fi

out=$(mktemp -d "${TMPDIR:-/tmp}/plexus-it.XXXXXX")
trap 'rm -rf "$out"' EXIT
jobs_max=${PLEXUS_TEST_JOBS:-$(($(nproc 2>/dev/null || echo 1) + 1))}

# run_one FILE: runs one test file, its output in $out/FILE.out and its
# exit status in $out/FILE.rc, and prints one line when it ends.
run_one() {
    local t=$1 rc
    case "$t" in
    *.py) set -- "$PY" "$t" ;;
    *.js) set -- node --test-reporter=tap "$t" ;;
    *.sh) set -- sh "$t" ;;
    esac
    local start=$SECONDS
    if [ -n "${PLEXUS_TSAN:-}" ]; then
        mkdir -p "$out/$t.tsan"
        TSAN_OPTIONS="${TSAN_OPTIONS:-} log_path=$out/$t.tsan/report" "$@" >"$out/$t.out" 2>&1
    else
        "$@" >"$out/$t.out" 2>&1
    fi
    rc=$?
    echo "$rc" >"$out/$t.rc"
    echo "  done $t ($((SECONDS - start)) s, exit $rc)"
}

tests=()
serial=()
for t in ${TESTS:-[0-9][0-9]-*}; do
    case "$t" in *.py | *.js | *.sh) ;; *) continue ;; esac
    if head -n 15 "$t" | grep -q 'plexus-test: serial'; then
        serial+=("$t")
    else
        tests+=("$t")
    fi
done

echo "integration: ${#tests[@]} tests, $jobs_max at a time, then ${#serial[@]} alone"
running=0
for t in "${tests[@]}"; do
    if [ "$running" -ge "$jobs_max" ]; then
        wait -n
        running=$((running - 1))
    fi
    run_one "$t" &
    running=$((running + 1))
done
wait
for t in "${serial[@]}"; do
    run_one "$t"
done

# counts FILE: "passed failed skipped" for one finished test file.
counts() {
    local t=$1 rc f=$out/$1.out
    rc=$(cat "$out/$t.rc")
    if [ "$rc" -eq 77 ]; then
        echo "0 0 1"
        return
    fi
    local line p=0 x=0 s=0
    case "$t" in
    *.py)
        line=$(grep -a '^#plexus-counts ' "$f" | tail -n 1)
        if [ -n "$line" ]; then
            p=$(echo "$line" | sed 's/.*passed=\([0-9]*\).*/\1/')
            x=$(echo "$line" | sed 's/.*failed=\([0-9]*\).*/\1/')
            s=$(echo "$line" | sed 's/.*skipped=\([0-9]*\).*/\1/')
        fi
        ;;
    *.js)
        p=$(grep -a '^# pass ' "$f" | tail -n 1 | awk '{print $3}')
        x=$(grep -a '^# fail ' "$f" | tail -n 1 | awk '{print $3}')
        s=$(grep -a '^# skipped ' "$f" | tail -n 1 | awk '{print $3}')
        ;;
    esac
    p=${p:-0} x=${x:-0} s=${s:-0}
    if [ -n "$(ls "$out/$t.tsan" 2>/dev/null)" ]; then
        x=$((x + 1))
        { echo "ThreadSanitizer reports:"; cat "$out/$t.tsan"/*; } >>"$f"
    fi
    # A file that failed without saying so (a crash, a syntax error, a
    # broker that did not stop cleanly) is one failure more.
    if [ "$rc" -ne 0 ] && [ "$x" -eq 0 ]; then x=1; fi
    if [ "$rc" -eq 0 ] && [ $((p + x + s)) -eq 0 ]; then x=1; echo "    $t ran no test case" >&2; fi
    echo "$p $x $s"
}

# skips FILE: one "reason" line per skipped case.
skips() {
    local f=$out/$1.out
    grep -a -h -e '^#plexus-skip ' -e '^SKIP: ' "$f" | sed -e 's/^#plexus-skip //' -e 's/^SKIP: //'
    grep -a -h '^ok .* # SKIP' "$f" | sed 's/^ok [0-9]* - \(.*\) # SKIP \(.*\)/\1: \2/'
}

pass=0 fail=0 skip=0
failed="" skipped=""
for t in "${tests[@]}" "${serial[@]}"; do
    read -r p x s < <(counts "$t")
    while IFS= read -r why; do
        [ -n "$why" ] || continue
        skipped="$skipped
    $t: $why"
        case "$why" in
        *missing:*)
            if [ "${CI:-}" = true ]; then
                echo "FAIL $t: skipped for a missing dependency under CI ($why)"
                x=$((x + 1))
                s=$((s > 0 ? s - 1 : 0))
            fi
            ;;
        esac
    done < <(skips "$t")
    pass=$((pass + p)) fail=$((fail + x)) skip=$((skip + s))
    if [ "$x" -gt 0 ]; then
        failed="$failed $t"
        echo "FAIL $t ($p passed, $x failed, $s skipped)"
        sed 's/^/    /' "$out/$t.out"
    elif [ "$s" -gt 0 ]; then
        echo "SKIP $t ($p passed, $s skipped)"
    else
        echo "PASS $t ($p passed)"
    fi
done
[ -n "$skipped" ] && echo "skipped:$skipped"
[ -n "$failed" ] && echo "failed:$failed"
echo "integration: $pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
