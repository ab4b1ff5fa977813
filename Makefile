# Plexus — build, run, test. See README.md.
#
#   make            build bin/plexus
#   make run        start the broker with its embedded defaults
#   make test       build and run every test (unit, then integration)
#   make asan       the same tests under AddressSanitizer + UBSan
#   make tsan       the unit tests and the broker's integration tests under ThreadSanitizer
#   make bench      print the benchmark figures
#   make amqp091-gen-check  the committed AMQP 0-9-1 method tables are what the spec gives
#   make format     apply .clang-format (format-check: fail where it would change a file)
#   make fuzz       run each libFuzzer target for FUZZ_SECONDS (tests/fuzz/README.md)
#   make install    binaries, example configuration and systemd unit (PREFIX, DESTDIR; uninstall)
#
# `make run` and `make test` install missing Debian packages first when run
# as root (scripts/deps.sh), or print the apt-get line that would.

VERSION := 0.1.0
CC      ?= cc
BUILD   ?= build
BINDIR  ?= bin
PKGS    := libuv libqpid-proton jansson libconfig libssl libcrypto zlib libmicrohttpd libsystemd
OPT     ?= -O2
SAN     ?=
XCFLAGS := -std=gnu11 -g $(OPT) $(SAN) -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
           -Wno-missing-field-initializers -fno-strict-aliasing -D_GNU_SOURCE -I. -DPLEXUS_VERSION='"$(VERSION)"' \
           $(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(CFLAGS)
XLDFLAGS := $(SAN) $(LDFLAGS)
LDLIBS  += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)
# jemalloc for the broker and its runtime benchmark: messages are allocated
# on one scheduler thread and freed on another, which glibc's malloc serves
# through arena locks (36% of the runtime benchmark's profile; jemalloc
# gives 2.8x the cross-scheduler message rate). Not under ASan, which
# brings its own allocator.
MALLOC_LIBS ?= $(shell pkg-config --libs jemalloc 2>/dev/null)

# Each folder is one module; lower layers know nothing of higher ones.
# ctl/ (plexusctl) is no part of the library: a client of the admin API.
SV_SRC   := $(wildcard supervisor/*.c)
RT_SRC   := $(wildcard routing/*.c)
AMQP_SRC := $(wildcard amqp/*.c)
ADM_SRC  := $(wildcard admin/*.c)
BRK_SRC  := $(filter-out broker/main.c,$(wildcard broker/*.c))
LIB_SRC  := $(SV_SRC) $(RT_SRC) $(AMQP_SRC) $(ADM_SRC) $(BRK_SRC)
# The dashboard's files, built into the broker (admin/www.S).
WWW      := $(wildcard admin/www/*)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o) $(BUILD)/admin/www.o
LIB      := $(BUILD)/libplexus.a

UNIT_SRC   := $(wildcard tests/unit/test_*.c)
UNIT_BIN   := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
BENCH_BIN  := $(BUILD)/tests/bench_runtime
AMQP_BENCH := $(BUILD)/tests/amqp_bench
AMQP_BENCH_SRC := $(wildcard tests/bench/ab_*.c)
AMQP091_LOAD := $(BUILD)/tests/amqp091_load

PLEXUS := $(BINDIR)/plexus
# plexusctl talks HTTP with libcurl: a client library that does TLS, proxies
# and auth properly, and that scripts' users already trust.
CTL     := $(BINDIR)/plexusctl
CTL_SRC := $(wildcard ctl/*.c)
CTL_LIBS = $(shell pkg-config --libs libcurl jansson 2>/dev/null)

# Quiet by default; `make V=1` shows the commands.
ifeq ($(V),1)
Q :=
else
Q := @
endif

.PHONY: install uninstall all run test unit integration asan tsan tsan-integration bench deps test-deps clean format format-check amqp091-gen-check \
        fuzz fuzz-ci fuzz-build fuzz-bins fuzz-repro fuzz-deps
.DELETE_ON_ERROR:

all: $(PLEXUS) $(CTL)

deps:
	@scripts/deps.sh build

test-deps:
	@scripts/deps.sh test

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@[ "$(V)" = 1 ] || echo "  CC    $<"
	$(Q)$(CC) $(XCFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/admin/www.o: admin/www.S $(WWW)
	@mkdir -p $(dir $@)
	@[ "$(V)" = 1 ] || echo "  AS    $<"
	$(Q)$(CC) $(SAN) -c $< -o $@

$(CTL): $(CTL_SRC) ctl/ctl.h
	@mkdir -p $(dir $@)
	@[ "$(V)" = 1 ] || echo "  LINK  $@"
	$(Q)$(CC) $(XCFLAGS) $(XLDFLAGS) $(shell pkg-config --cflags libcurl 2>/dev/null) -o $@ $(CTL_SRC) $(CTL_LIBS)

$(LIB): $(LIB_OBJ)
	@rm -f $@
	$(Q)ar rcs $@ $^

$(PLEXUS): $(BUILD)/broker/main.o $(LIB)
	@mkdir -p $(dir $@)
	@[ "$(V)" = 1 ] || echo "  LINK  $@"
	$(Q)$(CC) $(XCFLAGS) $(XLDFLAGS) -o $@ $^ $(LDLIBS) $(MALLOC_LIBS)

$(BUILD)/tests/%: tests/unit/%.c $(LIB) $(wildcard tests/unit/*.h)
	@mkdir -p $(dir $@)
	@[ "$(V)" = 1 ] || echo "  LINK  $@"
	$(Q)$(CC) $(XCFLAGS) $(XLDFLAGS) -o $@ $< $(LIB) $(CHECK_LIBS) $(LDLIBS)

# The AMQP benchmark is a plain proton client: it measures any broker.
# tests/bench/ab_*.c, one file per mode beside the shared run machinery.
$(AMQP_BENCH): $(AMQP_BENCH_SRC) tests/bench/ab.h
	@mkdir -p $(dir $@)
	@[ "$(V)" = 1 ] || echo "  LINK  $@"
	$(Q)$(CC) $(XCFLAGS) $(XLDFLAGS) -o $@ $(AMQP_BENCH_SRC) $(shell pkg-config --libs libqpid-proton) -lpthread

# The AMQP 0-9-1 load generator, only built by `make bench`: two engines,
# one on Plexus's own 0-9-1 codec (compiled in from amqp/, no broker code)
# and one on librabbitmq (librabbitmq-dev, in the test profile of
# scripts/deps.sh) as a stock client's cross-check.
AMQP091_LOAD_SRC := $(wildcard tests/bench/amqp091_load*.c) amqp/amqp091.c amqp/amqp091_table.c amqp/amqp091_methods.c
$(AMQP091_LOAD): $(AMQP091_LOAD_SRC) $(wildcard tests/bench/amqp091_load*.h) amqp/amqp091.h amqp/amqp091_methods.h
	@mkdir -p $(dir $@)
	@[ "$(V)" = 1 ] || echo "  LINK  $@"
	$(Q)$(CC) $(XCFLAGS) $(XLDFLAGS) -o $@ $(AMQP091_LOAD_SRC) $(shell pkg-config --libs librabbitmq) -lpthread

$(BENCH_BIN): tests/bench/bench_runtime.c $(LIB)
	@mkdir -p $(dir $@)
	@[ "$(V)" = 1 ] || echo "  LINK  $@"
	$(Q)$(CC) $(XCFLAGS) $(XLDFLAGS) -o $@ $< $(LIB) $(LDLIBS) $(MALLOC_LIBS)

# The recursive make runs after deps, so pkg-config sees the new packages.
run: deps
	@$(MAKE) --no-print-directory all
	$(PLEXUS)

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

integration: $(PLEXUS) $(CTL)
	@PLEXUS_BIN=$(abspath $(PLEXUS)) PLEXUSCTL_BIN=$(abspath $(CTL)) tests/integration/run.sh

test: test-deps
	@$(MAKE) --no-print-directory amqp091-gen-check all unit integration

# amqp/amqp091_methods.[ch] are generated from Debian's amqp-specs XML and
# committed (the build needs no spec); this fails if they drifted from it.
amqp091-gen-check:
	@/usr/bin/python3 scripts/gen_amqp091.py --check

# A separate tree, so sanitized and plain objects never mix.
asan: test-deps
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    $(MAKE) --no-print-directory BUILD=build/asan BINDIR=build/asan/bin OPT=-O1 MALLOC_LIBS= \
	    SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	    all unit integration

# Data races: ThreadSanitizer in its own tree, with clang (Debian's clang-14
# and its runtime, libclang-rt-14-dev; see scripts/deps.sh). No jemalloc:
# TSan must see every malloc and free. Check forks each test, as the suites
# expect (a fresh node per test); the runner process has no threads, so TSan
# works in each child, and a report makes the child exit 66, which Check
# counts as an error. The integration tests are the Python ones that start
# a broker: it runs one scheduler per core, so each crosses schedulers, the
# store threads or the admin API's threads (01 only parses flags and files;
# the Node.js ones drive the same paths through another client and would
# only add minutes). A report anywhere fails the run (halt_on_error, and
# run.sh reads each broker's TSan log); tests/tsan.supp says why each
# of its entries is not a race.
TSAN_SAN  := -fsanitize=thread -fno-omit-frame-pointer
TSAN_OPTS := halt_on_error=1 exitcode=66 second_deadlock_stack=1 suppressions=$(abspath tests/tsan.supp)
# 40 measures the allocator's memory, which TSan's allocator is not.
TSAN_IT   := $(filter-out 01-% 40-%,$(notdir $(wildcard tests/integration/[0-9][0-9]-*.py)))

tsan: test-deps
	@scripts/deps.sh tsan
	@TSAN_OPTIONS="$(TSAN_OPTS)" $(MAKE) --no-print-directory BUILD=build/tsan BINDIR=build/tsan/bin CC=clang-14 \
	    OPT=-O1 MALLOC_LIBS= SAN="$(TSAN_SAN)" all unit tsan-integration

tsan-integration: $(PLEXUS) $(CTL)
	@PLEXUS_TSAN=1 PLEXUS_TEST_JOBS=2 TESTS="$(TSAN_IT)" PLEXUS_BIN=$(abspath $(PLEXUS)) PLEXUSCTL_BIN=$(abspath $(CTL)) \
	    tests/integration/run.sh

# Figures, not tests: the runtime's, then the AMQP ones as ratios against a
# direct client-to-client run (and RabbitMQ with BENCH_RABBITMQ=1).
bench: test-deps
	@$(MAKE) --no-print-directory $(BENCH_BIN) $(AMQP_BENCH) $(AMQP091_LOAD) all
	$(BENCH_BIN)
	@PLEXUS_BIN=$(abspath $(PLEXUS)) AMQP_BENCH=$(abspath $(AMQP_BENCH)) AMQP091_LOAD=$(abspath $(AMQP091_LOAD)) \
	    /usr/bin/python3 tests/bench/run_bench.py

# ------------------------------------------------------------------ install
# make install [PREFIX=/usr/local] [DESTDIR=...]: the two binaries, the
# example configuration and the systemd unit (dist/plexus.service.in, with
# the paths below written in). The directories take GNU's lower-case names
# (bindir, sysconfdir, unitdir) because BINDIR already names where the
# build puts its binaries. A configuration already installed is kept (it
# is the administrator's); uninstall removes it only if it is unchanged.
PREFIX     ?= /usr/local
bindir     ?= $(PREFIX)/bin
# /usr's configuration lives in /etc, any other prefix's in PREFIX/etc.
sysconfdir ?= $(if $(filter /usr /usr/,$(PREFIX)),/etc,$(PREFIX)/etc)
# systemd reads units from /usr/lib/systemd/system and, for local
# installs, from /usr/local/lib/systemd/system.
unitdir    ?= $(PREFIX)/lib/systemd/system
INSTALL    ?= install

install: all
	$(INSTALL) -d $(DESTDIR)$(bindir) $(DESTDIR)$(sysconfdir)/plexus $(DESTDIR)$(unitdir)
	$(INSTALL) -m 755 $(PLEXUS) $(DESTDIR)$(bindir)/plexus
	$(INSTALL) -m 755 $(CTL) $(DESTDIR)$(bindir)/plexusctl
	@if [ -e $(DESTDIR)$(sysconfdir)/plexus/plexus.conf ]; then \
	    echo "install: keeping $(DESTDIR)$(sysconfdir)/plexus/plexus.conf (the example is conf/plexus.conf)"; \
	else \
	    echo "$(INSTALL) -m 640 conf/plexus.conf $(DESTDIR)$(sysconfdir)/plexus/plexus.conf"; \
	    $(INSTALL) -m 640 conf/plexus.conf $(DESTDIR)$(sysconfdir)/plexus/plexus.conf; \
	fi
	sed -e 's|@bindir@|$(bindir)|g' -e 's|@sysconfdir@|$(sysconfdir)|g' dist/plexus.service.in \
	    > $(DESTDIR)$(unitdir)/plexus.service.tmp
	chmod 644 $(DESTDIR)$(unitdir)/plexus.service.tmp
	mv -f $(DESTDIR)$(unitdir)/plexus.service.tmp $(DESTDIR)$(unitdir)/plexus.service

uninstall:
	rm -f $(DESTDIR)$(bindir)/plexus $(DESTDIR)$(bindir)/plexusctl $(DESTDIR)$(unitdir)/plexus.service
	@c=$(DESTDIR)$(sysconfdir)/plexus/plexus.conf; \
	if [ -e $$c ] && ! cmp -s $$c conf/plexus.conf; then \
	    echo "uninstall: keeping $$c (changed since it was installed)"; \
	else \
	    rm -f $$c; rmdir $(DESTDIR)$(sysconfdir)/plexus 2>/dev/null || true; \
	fi

# ------------------------------------------------------------------ fuzzing
# libFuzzer targets (tests/fuzz/fuzz_NAME.c) in a tree of their own, built
# with clang: the library with fuzzer-no-link (coverage, no main), each
# target linked with libFuzzer. Runs copy the checked-in corpus into
# build/fuzz/corpus first, so they never grow tests/fuzz/corpus.
FUZZ_CC      ?= clang-14
FUZZ_SAN     := -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_NAMES   := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN     := $(FUZZ_NAMES:%=$(BUILD)/fuzz/fuzz_%)
FUZZ_SECONDS ?= 60

fuzz-deps:
	@scripts/deps.sh fuzz

fuzz-build: fuzz-deps
	@$(MAKE) --no-print-directory BUILD=build/fuzz BINDIR=build/fuzz/bin CC=$(FUZZ_CC) OPT=-O1 MALLOC_LIBS= \
	    SAN="$(FUZZ_SAN)" fuzz-bins

fuzz-bins: $(FUZZ_BIN)

$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(LIB)
	@mkdir -p $(dir $@)
	@[ "$(V)" = 1 ] || echo "  LINK  $@"
	$(Q)$(CC) $(XCFLAGS) $(XLDFLAGS) -fsanitize=fuzzer -o $@ $< $(LIB) $(LDLIBS)

# Each target for FUZZ_SECONDS (FUZZ_TARGETS="frames msg" for some only).
fuzz: fuzz-build
	@tests/fuzz/run.sh $(FUZZ_SECONDS) $(or $(FUZZ_TARGETS),$(FUZZ_NAMES))

# CI: all targets within 60 s, from a fresh copy of the corpus; any crash,
# leak, timeout or sanitizer report fails.
fuzz-ci: fuzz-build
	@FUZZ_FRESH=1 tests/fuzz/run.sh $$((60 / $(words $(FUZZ_NAMES)))) $(FUZZ_NAMES)

# Replays one input: make fuzz-repro TARGET=frames INPUT=crash-1234
fuzz-repro: fuzz-build
	@[ -n "$(TARGET)" ] && [ -n "$(INPUT)" ] || { echo "usage: make fuzz-repro TARGET=name INPUT=file" >&2; exit 2; }
	build/fuzz/fuzz/fuzz_$(TARGET) $(INPUT)

# Every C file in the tree, in the style of .clang-format; format-check (CI)
# changes nothing and fails naming each file that is not in it.
FORMAT_SRC = $(shell git ls-files '*.c' '*.h' 2>/dev/null || find . -name '*.[ch]' -not -path './build/*')

format:
	@scripts/deps.sh format
	clang-format -i $(FORMAT_SRC)

format-check:
	@scripts/deps.sh format
	@clang-format --dry-run --Werror $(FORMAT_SRC) && echo "format-check: $(words $(FORMAT_SRC)) files in the style of .clang-format"

clean:
	rm -rf build bin

-include $(LIB_OBJ:.o=.d) $(BUILD)/broker/main.d
