#!/bin/sh
# run.sh — runs every numbered integration test (NN-feature-case.*) against
# the real broker binary ($PLEXUS_BIN) and prints a summary. Python tests run
# with Debian's /usr/bin/python3 (python3-qpid-proton lives there).
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

pass=0
fail=0
failed=""
for t in [0-9][0-9]-*; do
    case "$t" in
    *.py) cmd="$PY $t" ;;
    *.sh) cmd="sh $t" ;;
    *.js) cmd="node $t" ;;
    *) continue ;;
    esac
    if out=$($cmd 2>&1); then
        pass=$((pass + 1))
        echo "PASS $t"
    else
        fail=$((fail + 1))
        failed="$failed $t"
        echo "FAIL $t"
        echo "$out" | sed 's/^/    /'
    fi
done
echo "integration: $pass passed, $fail failed${failed:+ ($failed )}"
[ "$fail" -eq 0 ]
