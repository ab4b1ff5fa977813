#!/bin/sh
# deps.sh PROFILE — make sure the Debian packages Plexus needs are installed.
#
#   build  what `make` needs to compile bin/plexus and the unit tests
#   test   build + what the integration tests drive the broker with (chromium:
#          the dashboard's browser test; wrk: the admin API's load figures),
#          and rabbitmqadmin in build/tools (see fetch_rabbitmqadmin); amqp-specs:
#          the 0-9-1 XML `make amqp091-gen-check` compares amqp/amqp091_methods.[ch] with
#          systemd: systemd-analyze verify, which test 41 runs on the installed unit;
#          librabbitmq-dev: the AMQP 0-9-1 load generator of `make bench` (tests/bench/amqp091_load.c);
#          the 0-9-1 client libraries tests 51-56 and examples/ drive the broker with:
#          python3-pika, python3-kombu (Celery's, over py-amqp), amqp-tools,
#          libanyevent-rabbitmq-perl, golang-go + golang-github-rabbitmq-amqp091-go-dev
#          (Go programs built offline in GOPATH mode from the packaged source)
#   rabbitmqadmin   only that
#   format clang-format, for `make format` and `make format-check`
#   tsan   what `make tsan` adds: clang and its ThreadSanitizer runtime
#   fuzz   build + clang and libFuzzer's runtime (make fuzz, tests/fuzz/)
#
# As root, missing packages are installed with apt-get; otherwise the one
# apt-get line that would install them is printed and the script fails.
set -eu

build="gcc make libc6-dev pkg-config libuv1-dev libqpid-proton11-dev libjansson-dev libconfig-dev libssl-dev libjemalloc-dev zlib1g-dev libmicrohttpd-dev libcurl4-openssl-dev libsystemd-dev check"
tsan="clang-14 libclang-rt-14-dev"
test="$build openssl python3 python3-pika amqp-tools amqp-specs python3-kombu libanyevent-rabbitmq-perl golang-go golang-github-rabbitmq-amqp091-go-dev python3-qpid-proton libqpid-proton11-dev-examples librabbitmq-dev curl chromium wrk systemd nodejs$(command -v npm >/dev/null 2>&1 || echo ' npm')" # npm: unless the nodejs in use brings its own

format="clang-format"
# rabbitmqadmin, RabbitMQ's command line for its management API, is what
# test 35 drives the admin API with. Debian ships it only inside
# rabbitmq-server, as one python3 script that needs nothing but python3's
# standard library. Installing that package would pull in Erlang and start
# a RabbitMQ server on the machine (or need a policy-rc.d to stop it), so
# the .deb is downloaded and unpacked instead, and only the script is kept,
# in build/tools: nothing is installed, no service, no user is created.
fetch_rabbitmqadmin() {
    dest="$(cd "$(dirname "$0")/.." && pwd)/build/tools/rabbitmqadmin"
    [ -x "$dest" ] && return 0
    tmp=$(mktemp -d) && chmod 755 "$tmp" || return 1
    # A fresh machine may have no package lists yet: refresh them (as root) and retry.
    if ! (cd "$tmp" && apt-get download rabbitmq-server >/dev/null 2>&1); then
        if [ "$(id -u)" -eq 0 ]; then apt-get update -qq >/dev/null 2>&1 || true; fi
        (cd "$tmp" && apt-get download rabbitmq-server >/dev/null 2>&1) || true
    fi
    if ! ls "$tmp"/rabbitmq-server_*.deb >/dev/null 2>&1 || ! dpkg-deb -x "$tmp"/rabbitmq-server_*.deb "$tmp/x" ||
        ! install -D -m 755 "$tmp/x/usr/bin/rabbitmqadmin" "$dest"; then
        echo "deps.sh: could not get rabbitmqadmin from Debian's rabbitmq-server package" \
            "(apt-get download rabbitmq-server; run 'apt-get update' as root first if the package lists are missing)" >&2
        rm -rf "$tmp"
        return 1
    fi
    rm -rf "$tmp"
    echo "deps.sh: rabbitmqadmin unpacked from rabbitmq-server into $dest"
}

fuzz="$build clang-14 libclang-rt-14-dev"

case "${1:-build}" in
build) want=$build ;;
test) want=$test ;;
format) want=$format ;;
tsan) want=$tsan ;;
fuzz) want=$fuzz ;;
rabbitmqadmin) fetch_rabbitmqadmin; exit $? ;;
*) echo "usage: $0 build|test|format|tsan|fuzz|rabbitmqadmin" >&2; exit 2 ;;
esac

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "deps.sh: not a Debian system; make sure these are installed: $want" >&2
    exit 0
fi

missing=""
for p in $want; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
    [ "${1:-build}" != test ] || fetch_rabbitmqadmin
    exit
fi

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
[ "${1:-build}" != test ] || fetch_rabbitmqadmin
