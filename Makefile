# xtrunk — top-level build. Out-of-tree objects go to $(BUILD).
#   make            build xtrunkd into $(BUILD)/
#   make check      install test dependencies if missing, build, run every test
#   make demo       install what the demo needs, run relay + two Prosody leaves
#   make install    honours PREFIX and DESTDIR

PREFIX  ?= /usr/local
DESTDIR ?=
BUILD   ?= build
CC      ?= cc

PKGS     = libxml-2.0 gnutls libtasn1 libuv libconfig
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

CTL_OBJS  = $(BUILD)/tools/xtrunkctl.o $(BUILD)/certs/ca.o $(BUILD)/relay/domain.o

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
	sh test/check-examples.sh $(BUILD)/xtrunkd
	sh test/check-man.sh $(BUILD)/xtrunkd
	sh test/integration/protocol.sh build-asan/xtrunkd
	UBSAN_OPTIONS=halt_on_error=1 sh test/integration/run.sh build-asan/xtrunkd
	sh test/integration/certs.sh build-asan/xtrunkd
	sh test/integration/ejabberd.sh build-asan/xtrunkd
	sh test/integration/valgrind.sh $(BUILD)/xtrunkd

demo: deps all
	sh test/lab/demo.sh $(BUILD)/xtrunkd

install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/share/man/man5 \
	    $(DESTDIR)$(PREFIX)/share/man/man8 $(DESTDIR)$(PREFIX)/share/doc/xtrunk/examples
	install -m 0755 $(BUILD)/xtrunkd $(DESTDIR)$(PREFIX)/sbin/xtrunkd
	install -m 0755 $(BUILD)/xtrunkctl $(DESTDIR)$(PREFIX)/sbin/xtrunkctl
	install -m 0644 man/xtrunkd.8 $(DESTDIR)$(PREFIX)/share/man/man8/xtrunkd.8
	install -m 0644 man/xtrunkctl.8 $(DESTDIR)$(PREFIX)/share/man/man8/xtrunkctl.8
	install -m 0644 man/xtrunkd.conf.5 $(DESTDIR)$(PREFIX)/share/man/man5/xtrunkd.conf.5
	install -m 0644 examples/*.conf $(DESTDIR)$(PREFIX)/share/doc/xtrunk/examples/

format:
	clang-format -i relay/*.[ch] certs/*.[ch] tools/*.c test/unit/*.c 2>/dev/null || true

clean:
	rm -rf build build-asan

.PHONY: all deps test-deps unit check demo install format clean
