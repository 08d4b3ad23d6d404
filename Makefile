# xtrunk — top-level build. Out-of-tree objects go to $(BUILD).
#   make            build xtrunkd into $(BUILD)/
#   make check      install test dependencies if missing, build, run every test
#   make demo       install what the demo needs, run relay + two Prosody leaves
#   make install    honours PREFIX and DESTDIR

PREFIX  ?= /usr/local
DESTDIR ?=
BUILD   ?= build
CC      ?= cc

PKGS     = libxml-2.0 gnutls libtasn1 libuv libconfig libsystemd json-c
WARN     = -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wvla -Wmissing-prototypes \
           -Wstrict-prototypes -Wpointer-arith -Wno-unused-parameter
CFLAGS  ?= -O2 -g
XCFLAGS  = -std=c11 -D_GNU_SOURCE $(WARN) -Irelay -Icerts -Ipolicy \
           $(shell pkg-config --cflags $(PKGS))
LDLIBS   = $(shell pkg-config --libs $(PKGS))

# Every .c under relay/, certs/, policy/ is part of the daemon; main.c alone
# holds main(), so tests link everything else.
LIB_SRCS  = $(filter-out relay/main.c,$(wildcard relay/*.c certs/*.c policy/*.c))
LIB_OBJS  = $(LIB_SRCS:%.c=$(BUILD)/%.o)
TEST_SRCS = $(wildcard test/unit/test_*.c)
TEST_BINS = $(TEST_SRCS:test/unit/%.c=$(BUILD)/test/%)

CTL_OBJS  = $(BUILD)/tools/xtrunkctl.o $(BUILD)/tools/ops.o $(BUILD)/tools/leafconf.o $(LIB_OBJS)

all: $(BUILD)/xtrunkd $(BUILD)/xtrunkctl

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(XCFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/xtrunkd: $(BUILD)/relay/main.o $(LIB_OBJS)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/xtrunkctl: $(CTL_OBJS)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/test/%: test/unit/%.c $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(XCFLAGS) $(CFLAGS) $(shell pkg-config --cflags check) -o $@ $^ \
	    $(LDLIBS) $(shell pkg-config --libs check)

# Scenario tests drive the relay through the fake network (test/fakenet)
# instead of relay/net.c.
FAKENET_OBJS = $(BUILD)/test/fakenet/fakenet.o $(BUILD)/test/fakenet/scenario.o
$(BUILD)/test/test_s2s: test/unit/test_s2s.c $(FAKENET_OBJS) \
		$(filter-out $(BUILD)/relay/net.o,$(LIB_OBJS))
	@mkdir -p $(dir $@)
	$(CC) $(XCFLAGS) -Itest/fakenet $(CFLAGS) $(shell pkg-config --cflags check) -o $@ $^ \
	    $(LDLIBS) $(shell pkg-config --libs check)

# xtrunkctl leaf-config's generator (tools/leafconf.c) has its own suite.
$(BUILD)/test/test_leafconf: test/unit/test_leafconf.c $(BUILD)/tools/leafconf.o $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(XCFLAGS) -Itools $(CFLAGS) $(shell pkg-config --cflags check) -o $@ $^ \
	    $(LDLIBS) $(shell pkg-config --libs check)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

deps:
	@sh scripts/deps.sh build

test-deps:
	@sh scripts/deps.sh test

unit: $(TEST_BINS)
	@sh test/run-unit.sh $(TEST_BINS)

# make check: unit tests (normal and ASan/UBSan builds), config and man
# checks, then the integration tests with real Prosody leaves: once with the
# sanitizer build of the relay, once under valgrind.
ASAN = BUILD=build-asan CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer" \
       LDFLAGS="-fsanitize=address,undefined"
check: test-deps
	$(MAKE) all unit
	$(MAKE) $(ASAN) all unit
	sh test/check-examples.sh $(BUILD)/xtrunkd $(BUILD)/xtrunkctl
	sh test/check-man.sh $(BUILD)/xtrunkd
	sh test/check-unit.sh $(BUILD)/xtrunkd
	$(MAKE) bench-smoke
	sh test/integration/ops.sh build-asan/xtrunkd build-asan/xtrunkctl
	sh test/integration/protocol.sh build-asan/xtrunkd
	UBSAN_OPTIONS=halt_on_error=1 sh test/integration/run.sh build-asan/xtrunkd
	sh test/integration/certs.sh build-asan/xtrunkd
	sh test/integration/ejabberd.sh build-asan/xtrunkd
	sh test/integration/valgrind.sh $(BUILD)/xtrunkd
	sh test/integration/valgrind.sh $(BUILD)/xtrunkd protocol
	sh test/integration/valgrind.sh $(BUILD)/xtrunkd policy
	UBSAN_OPTIONS=halt_on_error=1 sh test/integration/policy.sh build-asan/xtrunkd
	UBSAN_OPTIONS=halt_on_error=1 sh test/integration/topology.sh build-asan/xtrunkd

demo: deps all
	sh test/lab/demo.sh $(BUILD)/xtrunkd

# make fuzz: the libFuzzer targets test/fuzz/fuzz_*.c, built with clang
# (ASan, UBSan, every UB report fatal) against $(LIB_SRCS) compiled the same
# way into an archive in $(FUZZ_BUILD)/, then each run for FUZZ_SECONDS with
# its seeds from test/fuzz/corpus/<name>/ (fuzz_<name>). New inputs go to
# $(FUZZ_BUILD)/corpus/<target>/, crashes and leaks to
# $(FUZZ_BUILD)/crashes/<target>/ and fail the target. Not part of make check.
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang
FUZZ_FLAGS    = -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
                -fno-sanitize-recover=all
FUZZ_SRCS     = $(wildcard test/fuzz/fuzz_*.c)
FUZZ_BINS     = $(FUZZ_SRCS:test/fuzz/%.c=$(FUZZ_BUILD)/%)
FUZZ_OBJS     = $(LIB_SRCS:%.c=$(FUZZ_BUILD)/%.o)
FUZZ_LIB      = $(FUZZ_BUILD)/libxtrunk.a

fuzz: $(FUZZ_BINS)
	@fail=; for b in $(FUZZ_BINS); do t=$${b##*/}; \
	    mkdir -p $(FUZZ_BUILD)/corpus/$$t $(FUZZ_BUILD)/crashes/$$t; \
	    s=test/fuzz/corpus/$${t#fuzz_}; seeds=; [ -d $$s ] && seeds=$$s; \
	    echo "fuzz: $$t, $(FUZZ_SECONDS)s, log in $(FUZZ_BUILD)/$$t.log"; \
	    $$b -max_total_time=$(FUZZ_SECONDS) -detect_leaks=1 -print_final_stats=1 \
	        -artifact_prefix=$(FUZZ_BUILD)/crashes/$$t/ $(FUZZ_BUILD)/corpus/$$t $$seeds \
	        </dev/null >$(FUZZ_BUILD)/$$t.log 2>&1 || fail="$$fail $$t"; \
	    grep -E '^#[0-9]+' $(FUZZ_BUILD)/$$t.log | tail -n 1; \
	done; \
	if [ -n "$$fail" ]; then echo "fuzz: FAILED:$$fail (inputs in $(FUZZ_BUILD)/crashes/)"; exit 1; fi

fuzz-cc:
	@command -v $(FUZZ_CC) >/dev/null 2>&1 || { echo "make fuzz: $(FUZZ_CC) not found;" \
	    "install the Debian package clang (apt-get install clang)"; exit 1; }
	@mkdir -p $(FUZZ_BUILD)
	@printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }\n' | \
	    $(FUZZ_CC) -fsanitize=fuzzer -x c -o $(FUZZ_BUILD)/.cc-check - >/dev/null 2>&1 || { \
	    echo "make fuzz: $(FUZZ_CC) has no libFuzzer runtime; install the Debian package" \
	    "libclang-rt-$$($(FUZZ_CC) -dumpversion | cut -d. -f1)-dev"; exit 1; }

$(FUZZ_BUILD)/%.o: %.c | fuzz-cc
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(XCFLAGS) $(FUZZ_FLAGS) -MMD -MP -c -o $@ $<

$(FUZZ_LIB): $(FUZZ_OBJS)
	rm -f $@
	ar rcs $@ $^

# The stream fuzzer runs the relay on the fake network: fakenet.o comes
# first, so net.o is never pulled out of the archive.
$(FUZZ_BUILD)/fuzz_s2s: test/fuzz/fuzz_s2s.c $(FUZZ_BUILD)/test/fakenet/fakenet.o \
		$(FUZZ_BUILD)/test/fakenet/scenario.o $(FUZZ_LIB) | fuzz-cc
	$(FUZZ_CC) $(XCFLAGS) -Itest/fakenet $(FUZZ_FLAGS) -MMD -MP -o $@ $< \
	    $(filter %.o %.a,$(wordlist 2,99,$^)) $(LDLIBS)

$(FUZZ_BUILD)/fuzz_%: test/fuzz/fuzz_%.c $(FUZZ_LIB) | fuzz-cc
	$(FUZZ_CC) $(XCFLAGS) $(FUZZ_FLAGS) -MMD -MP -o $@ $< $(FUZZ_LIB) $(LDLIBS)

-include $(shell find $(FUZZ_BUILD) -name '*.d' 2>/dev/null)

.PHONY: fuzz fuzz-cc

# make soak: test/soak/soak.sh runs a load of SOAK_RATE stanzas/s for
# SOAK_SECONDS through the relay with faults injected (next hop refusing,
# stalling, reset mid-stream; SIGHUP) and reports stanzas sent, delivered,
# bounced and lost (must be 0) and the relay's memory every 5 s. Loopback
# 127.0.0.30-32. Not part of make check; the issue asks for one run of
# SOAK_SECONDS=1800 or more. SOAK_TRUNK=1 puts a second relay (127.0.0.33)
# between the relay and leaf-b, joined to it by an XEP-0288 trunk link.
SOAK_SECONDS ?= 120
SOAK_RATE    ?= 2000
SOAK_SEED    ?= 1

soak: all
	SOAK_SECONDS=$(SOAK_SECONDS) SOAK_RATE=$(SOAK_RATE) SOAK_SEED=$(SOAK_SEED) \
	    bash test/soak/soak.sh $(BUILD)/xtrunkd

.PHONY: soak

# make bench: the benchmark ladder of test/bench/bench.sh (direct, haproxy
# mode tcp, haproxy terminating and re-encrypting TLS, xtrunkd without and with policy and
# labels; idle streams, negotiations, route lookups, callgrind) on loopback
# 127.0.2.0/24; installs haproxy (scripts/deps.sh bench),
# prints the table and rewrites BENCHMARKS.md. make bench-smoke: the same
# tools for a few seconds, asserting only that every stanza arrived in
# order (part of make check).
BENCH_BINS = $(BUILD)/xblast $(BUILD)/routebench $(BUILD)/parsebench

$(BUILD)/xblast: $(BUILD)/test/bench/xblast.o $(LIB_OBJS)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/parsebench: $(BUILD)/test/bench/parsebench.o $(LIB_OBJS)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/routebench: $(BUILD)/test/bench/routebench.o $(LIB_OBJS)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

bench: all $(BENCH_BINS)
	@sh scripts/deps.sh bench
	@sh scripts/deps.sh test
	sh test/bench/prosody.sh $(BUILD)/xtrunkd | tee $(BUILD)/prosody-bench.txt
	BENCH_PROSODY="$$(tail -n 1 $(BUILD)/prosody-bench.txt)" bash test/bench/bench.sh $(BUILD)

# Real leaves: Prosody -> Prosody direct against through xtrunkd (ratio).
bench-prosody: all
	@sh scripts/deps.sh test
	sh test/bench/prosody.sh $(BUILD)/xtrunkd

bench-smoke: all $(BENCH_BINS)
	@sh scripts/deps.sh bench
	bash test/bench/bench.sh --smoke $(BUILD)

.PHONY: bench bench-smoke bench-prosody

# The systemd unit goes where systemd looks for it: /lib/systemd/system
# for PREFIX=/usr (Debian 12), else PREFIX/lib/systemd/system; its
# /usr/sbin paths are rewritten to PREFIX/sbin.
ifeq ($(PREFIX),/usr)
UNITDIR ?= /lib/systemd/system
else
UNITDIR ?= $(PREFIX)/lib/systemd/system
endif

install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/share/man/man5 \
	    $(DESTDIR)$(PREFIX)/share/man/man8 $(DESTDIR)$(PREFIX)/share/doc/xtrunk/examples \
	    $(DESTDIR)$(UNITDIR)
	sed 's|/usr/sbin/|$(PREFIX)/sbin/|g' examples/xtrunkd.service >$(BUILD)/xtrunkd.service
	install -m 0644 $(BUILD)/xtrunkd.service $(DESTDIR)$(UNITDIR)/xtrunkd.service
	install -m 0644 examples/xtrunkd.service $(DESTDIR)$(PREFIX)/share/doc/xtrunk/examples/
	# socket activation is optional: the socket unit is an example, not enabled
	install -m 0644 examples/xtrunkd.socket $(DESTDIR)$(PREFIX)/share/doc/xtrunk/examples/
	install -m 0755 $(BUILD)/xtrunkd $(DESTDIR)$(PREFIX)/sbin/xtrunkd
	install -m 0755 $(BUILD)/xtrunkctl $(DESTDIR)$(PREFIX)/sbin/xtrunkctl
	install -m 0644 man/xtrunkd.8 $(DESTDIR)$(PREFIX)/share/man/man8/xtrunkd.8
	install -m 0644 man/xtrunkctl.8 $(DESTDIR)$(PREFIX)/share/man/man8/xtrunkctl.8
	install -m 0644 man/xtrunkd.conf.5 $(DESTDIR)$(PREFIX)/share/man/man5/xtrunkd.conf.5
	install -m 0644 examples/*.conf $(DESTDIR)$(PREFIX)/share/doc/xtrunk/examples/
	for d in star boundary; do \
	    install -d $(DESTDIR)$(PREFIX)/share/doc/xtrunk/examples/$$d && \
	    install -m 0644 examples/$$d/*.conf examples/$$d/README.md \
	        $(DESTDIR)$(PREFIX)/share/doc/xtrunk/examples/$$d/ || exit 1; \
	done

format:
	clang-format -i relay/*.[ch] certs/*.[ch] tools/*.c test/unit/*.c 2>/dev/null || true

clean:
	rm -rf build build-asan

.PHONY: all deps test-deps unit check demo install format clean
