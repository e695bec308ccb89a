#!/usr/bin/env bash
# Command-line contract: bad options exit 2 with one line naming the option, every
# option is in --help, SHADOWTAP_* environment variables work and the command line
# wins, offline input runs without root, a missing interface fails clearly.
. "$(dirname "$0")/lib.sh"
[ -x "$ST_BIN" ] || { skip "cli (build/shadowtap not built)"; exit 0; }
PCAP=$ST_ROOT/../shared/corpus/zeek-http/get.pcap

bad() { # name expected-word args...
	local name=$1 word=$2 out rc; shift 2
	out=$("$ST_BIN" "$@" 2>&1 >/dev/null); rc=$?
	if [ $rc = 2 ] && [ "$(printf '%s\n' "$out" | wc -l)" = 1 ] && printf '%s' "$out" | grep -q -- "$word"; then
		pass "cli: $name -> exit 2, one line naming $word"
	else
		fail "cli: $name (exit $rc, output: $out)"
	fi
}
bad "unknown option" "--bogus" --bogus
bad "port 0" "--port" -p 0
bad "port list junk" "--port" --port 80,x
bad "negative exit-after" "--exit-after" --exit-after -1
bad "replay URL" "--replay" -r ftp://x
bad "ring size not a power of two" "--ring-size" --ring-size 3000
bad "sample over 100%" "--replay-sample" --replay-sample 150%
bad "missing value" "--port" --port
bad "stray argument" "stray" stray
out=$(SHADOWTAP_PORT=abc "$ST_BIN" --version 2>&1); rc=$?
[ $rc = 2 ] && echo "$out" | grep -q SHADOWTAP_PORT && pass "cli: bad SHADOWTAP_PORT named" || fail "cli: bad env var (exit $rc: $out)"

help=$("$ST_BIN" --help); missing=""
for o in interface port replay es output input-pcap exit-after stats max-flows max-flow-bytes \
	body-limit idle-timeout help version capture; do
	echo "$help" | grep -q -- "--$o" || missing="$missing $o"
done
[ -z "$missing" ] && pass "cli: --help lists every option" || fail "cli: --help misses$missing"
"$ST_BIN" --version | grep -q '^shadowtap ' && pass "cli: --version" || fail "cli: --version"

# env var configures, command line wins
n=$(SHADOWTAP_PORT=81 "$ST_BIN" --input-pcap "$PCAP" -o - 2>/dev/null | wc -l)
m=$(SHADOWTAP_PORT=81 "$ST_BIN" --input-pcap "$PCAP" -p 80 -o - 2>/dev/null | wc -l)
[ "$n" = 0 ] && [ "$m" = 1 ] && pass "cli: SHADOWTAP_PORT applies and -p wins" || fail "cli: env/argv precedence ($n, $m)"

# offline input without root
if command -v setpriv >/dev/null && [ "$(id -u)" = 0 ]; then
	cp "$PCAP" "$ST_TMP/g.pcap"; chmod 644 "$ST_TMP/g.pcap"; chmod 755 "$ST_TMP"
	out=$(setpriv --reuid=nobody --regid=nogroup --clear-groups "$ST_BIN" --input-pcap "$ST_TMP/g.pcap" -o - 2>/dev/null)
	echo "$out" | python3 -c 'import json,sys; r=json.loads(sys.stdin.readline()); assert r["http"]["response"]["status_code"]==200' \
		&& pass "cli: --input-pcap runs without root" || fail "cli: --input-pcap as nobody"
else
	skip "cli: --input-pcap without root (no setpriv or not root)"
fi
out=$("$ST_BIN" --input-pcap /nonexistent.pcap 2>&1); rc=$?
[ $rc = 1 ] && echo "$out" | grep -q nonexistent && pass "cli: missing pcap file -> exit 1 naming it" || fail "cli: missing pcap (exit $rc)"
if [ "$(id -u)" = 0 ]; then
	out=$("$ST_BIN" -i st-no-such-if0 --pin-dir /sys/fs/bpf/st-cli-test 2>&1); rc=$?
	[ $rc = 3 ] && echo "$out" | grep -q st-no-such-if0 && pass "cli: unknown interface -> exit 3 naming it" || fail "cli: unknown interface (exit $rc: $out)"
else
	skip "cli: unknown interface (needs root)"
fi
