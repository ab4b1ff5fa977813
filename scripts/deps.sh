#!/bin/sh
# deps.sh PROFILE — make sure the Debian packages Plexus needs are installed.
#
#   build  what `make` needs to compile bin/plexus and the unit tests
#   test   build + what the integration tests drive the broker with (chromium:
#          the dashboard's browser test; wrk: the admin API's load figures)
#   fuzz   build + clang and libFuzzer's runtime (make fuzz, tests/fuzz/)
#
# As root, missing packages are installed with apt-get; otherwise the one
# apt-get line that would install them is printed and the script fails.
set -eu

build="gcc make libc6-dev pkg-config libuv1-dev libqpid-proton11-dev libjansson-dev libconfig-dev libssl-dev libjemalloc-dev zlib1g-dev libmicrohttpd-dev libcurl4-openssl-dev check"
test="$build python3 python3-qpid-proton libqpid-proton11-dev-examples curl chromium wrk nodejs$(command -v npm >/dev/null 2>&1 || echo ' npm')" # npm: unless the nodejs in use brings its own

fuzz="$build clang-14 libclang-rt-14-dev"

case "${1:-build}" in
build) want=$build ;;
test) want=$test ;;
fuzz) want=$fuzz ;;
*) echo "usage: $0 build|test|fuzz" >&2; exit 2 ;;
esac

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "deps.sh: not a Debian system; make sure these are installed: $want" >&2
    exit 0
fi

missing=""
for p in $want; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "Plexus needs these Debian packages:$missing" >&2
    echo "Install them with:" >&2
    echo "  sudo apt-get install -y$missing" >&2
    exit 1
fi

echo "Installing Debian packages:$missing"
export DEBIAN_FRONTEND=noninteractive
# A fresh machine has no package lists yet; refresh them only when needed.
apt-get install -y --no-install-recommends $missing >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing; }
