# shadowtap build. `make` builds build/shadowtap (BPF object + skeleton included);
# `make test` installs what is missing, builds and runs every test; `make demo` runs
# the main job. V=1 for verbose commands, SAN=1 for an ASan/UBSan agent build.
.DELETE_ON_ERROR:
.SUFFIXES:
.SECONDARY:

# TSAN=1: ThreadSanitizer build of the agent and the unit tests, in its own tree
ifeq ($(TSAN),1)
OUT       ?= build/tsan
endif
OUT       ?= build
CC        ?= cc
CLANG     ?= clang
BPFTOOL   ?= bpftool
ARCH      := $(shell uname -m | sed 's/x86_64/x86/;s/aarch64/arm64/')
VERSION   := $(shell git describe --always --dirty 2>/dev/null || echo 0.1)
# the release this tree is (shadowtap --version prints it with the commit above)
RELEASE   := 0.1.0
PREFIX    ?= /usr/local
NPROC     := $(shell nproc 2>/dev/null || echo 2)
DESTDIR   ?=

ifeq ($(V),1)
Q :=
msg :=
else
Q := @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

WARN      := -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers
CFLAGS    ?= -O2 -g
CFLAGS    += $(WARN) -std=gnu11 -D_GNU_SOURCE -MMD -MP -Icommon -Iagent -I$(OUT) \
             -DSHADOWTAP_VERSION='"$(VERSION)"' -pthread
CFLAGS    += -DSHADOWTAP_RELEASE='"$(RELEASE)"'
SANFLAGS  := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
ifeq ($(SAN),1)
CFLAGS    += $(SANFLAGS)
LDFLAGS   += $(SANFLAGS)
endif
TSANFLAGS := -fsanitize=thread -fno-omit-frame-pointer
ifeq ($(TSAN),1)
CFLAGS    += $(TSANFLAGS)
LDFLAGS   += $(TSANFLAGS)
SANFLAGS  := $(TSANFLAGS)
endif
LIBS      := -lbpf -lelf -lz -lpcap -lcurl -lssl -lcrypto -lmsgpackc -lpthread -lm

BPF_CFLAGS := -O2 -g -target bpf -mcpu=v3 -D__TARGET_ARCH_$(ARCH) -I. -Icommon -Wall -Werror

AGENT_SRC := $(wildcard agent/*.c)
AGENT_OBJ := $(patsubst agent/%.c,$(OUT)/agent/%.o,$(AGENT_SRC))
LIB_OBJ   := $(filter-out $(OUT)/agent/main.o,$(AGENT_OBJ))
BPF_SRC   := $(wildcard bpf/*.bpf.c)
BPF_OBJ   := $(patsubst bpf/%.bpf.c,$(OUT)/%.bpf.o,$(BPF_SRC))
SKELS     := $(patsubst bpf/%.bpf.c,$(OUT)/%.skel.h,$(BPF_SRC))

# Unit tests: tests/unit/test_*.c, each linked with the agent objects, always
# built with ASan/UBSan (separate object dir so sanitizer flags never leak).
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BIN  := $(patsubst tests/unit/%.c,$(OUT)/tests/%,$(UNIT_SRC))
SAN_OBJ   := $(patsubst $(OUT)/agent/%.o,$(OUT)/san/%.o,$(LIB_OBJ))
FUZZ_SRC  := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN  := $(patsubst tests/fuzz/%.c,$(OUT)/fuzz/%,$(FUZZ_SRC))
BPFT_SRC  := $(wildcard tests/bpf/test_*.c)
BPFT_BIN  := $(patsubst tests/bpf/%.c,$(OUT)/tests/%,$(BPFT_SRC))

.PHONY: all test unit-tests bpf-tests fuzz clean demo setup install uninstall bench bench-quick
all: $(OUT)/shadowtap

$(OUT)/%.bpf.o: bpf/%.bpf.c common/shadowtap.h vmlinux.h | $(OUT)
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(OUT)/%.skel.h: $(OUT)/%.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< > $@

$(OUT)/agent/%.o: agent/%.c $(SKELS) | $(OUT)/agent
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(OUT)/san/%.o: agent/%.c $(SKELS) | $(OUT)/san
	$(call msg,CC-SAN,$@)
	$(Q)$(CC) $(CFLAGS) $(SANFLAGS) -c $< -o $@

$(OUT)/shadowtap: $(AGENT_OBJ)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) $^ $(LIBS) -o $@

$(OUT)/tests/%: tests/unit/%.c $(SAN_OBJ) | $(OUT)/tests
	$(call msg,TEST-CC,$@)
	$(Q)$(CC) $(CFLAGS) $(SANFLAGS) -Itests $< $(SAN_OBJ) $(LIBS) -lcmocka -o $@

$(OUT)/tests/%: tests/bpf/%.c $(LIB_OBJ) | $(OUT)/tests
	$(call msg,TEST-CC,$@)
	$(Q)$(CC) $(CFLAGS) -Itests $< $(LIB_OBJ) $(LIBS) -lcmocka -o $@

# libFuzzer targets need clang. The agent sources are compiled once, with the flags
# the targets used to compile them with, into $(OUT)/fuzzobj, and every target links
# those objects (twelve targets each recompiling all of agent/ was most of make
# test's build time).
FUZZ_FLAGS := -g -O1 -std=gnu11 -D_GNU_SOURCE -DSHADOWTAP_VERSION='"fuzz"' -Icommon -Iagent -I$(OUT) \
	-fsanitize=fuzzer,address,undefined
FUZZ_OBJ  := $(patsubst $(OUT)/agent/%.o,$(OUT)/fuzzobj/%.o,$(LIB_OBJ))
$(OUT)/fuzzobj/%.o: agent/%.c $(SKELS) | $(OUT)/fuzzobj
	$(call msg,FUZZ-OBJ,$@)
	$(Q)$(CLANG) $(FUZZ_FLAGS) -MMD -MP -c $< -o $@

$(OUT)/fuzz/%: tests/fuzz/%.c $(FUZZ_OBJ) | $(OUT)/fuzz
	$(call msg,FUZZ-CC,$@)
	$(Q)$(CLANG) $(FUZZ_FLAGS) $< $(FUZZ_OBJ) $(LIBS) -o $@

$(OUT) $(OUT)/agent $(OUT)/san $(OUT)/tests $(OUT)/fuzz $(OUT)/fuzzobj:
	$(Q)mkdir -p $@

unit-tests: $(UNIT_BIN)
bpf-tests: $(BPFT_BIN)
fuzz: $(FUZZ_BIN)

# The whole suite, as CI runs it: installs packages, builds, starts and stops the
# servers the tests need. scripts/run-tests prints the closing "N passed, N failed".
test:
	$(Q)scripts/setup.sh
	$(Q)$(MAKE) --no-print-directory -j$(NPROC) all unit-tests bpf-tests fuzz
	$(Q)$(MAKE) --no-print-directory -j$(NPROC) TSAN=1 all unit-tests
	$(Q)scripts/run-tests

demo:
	$(Q)scripts/setup.sh
	$(Q)$(MAKE) --no-print-directory all
	$(Q)scripts/demo.sh

setup:
	$(Q)scripts/setup.sh

bench:
	$(Q)deploy/bench/run.sh --full

bench-quick:
	$(Q)deploy/bench/run.sh --quick

# difference cost per record alone (make bench runs it too, after the micro-benchmarks)
.PHONY: bench-diff
bench-diff:
	$(Q)deploy/bench/micro_diff.sh --out deploy/bench/results/micro_diff.md

# the capture program's ns per packet under BPF_PROG_TEST_RUN (root; deploy/bench/bpf_micro.c)
.PHONY: bench-bpf
bench-bpf: $(OUT)/bench/bpf_micro
	$(Q)$(OUT)/bench/bpf_micro
$(OUT)/bench/bpf_micro: deploy/bench/bpf_micro.c $(SKELS)
	$(Q)mkdir -p $(OUT)/bench
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $< -lbpf -lelf -lz -pthread -o $@

install: $(OUT)/shadowtap
	install -D -m 0755 $(OUT)/shadowtap $(DESTDIR)$(PREFIX)/bin/shadowtap
	install -d $(DESTDIR)$(PREFIX)/lib/systemd/system
	sed 's|/usr/local/bin/|$(PREFIX)/bin/|g' deploy/systemd/shadowtap.service > $(DESTDIR)$(PREFIX)/lib/systemd/system/shadowtap.service
	install -D -m 0644 deploy/systemd/shadowtap.sysusers $(DESTDIR)$(PREFIX)/lib/sysusers.d/shadowtap.conf
	@# the commented example; an existing /etc/default/shadowtap is never overwritten
	if [ -e $(DESTDIR)/etc/default/shadowtap ]; then \
		install -D -m 0644 deploy/systemd/shadowtap.default $(DESTDIR)/etc/default/shadowtap.example; \
	else \
		install -D -m 0644 deploy/systemd/shadowtap.default $(DESTDIR)/etc/default/shadowtap; \
	fi

# Removes what `make install` put in place; /etc/default/shadowtap is kept if edited.
uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/shadowtap $(DESTDIR)$(PREFIX)/lib/systemd/system/shadowtap.service \
		$(DESTDIR)$(PREFIX)/lib/sysusers.d/shadowtap.conf $(DESTDIR)/etc/default/shadowtap.example
	if cmp -s deploy/systemd/shadowtap.default $(DESTDIR)/etc/default/shadowtap; then \
		rm -f $(DESTDIR)/etc/default/shadowtap; fi

clean:
	rm -rf $(OUT)

-include $(AGENT_OBJ:.o=.d) $(SAN_OBJ:.o=.d) $(FUZZ_OBJ:.o=.d)
