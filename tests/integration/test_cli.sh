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
# parse-time validation (issue 15 items 4, 14, 15; issue 16 item 6)
bad "trailing comma in ports" "--port" --port 80,
bad "leading space in ports" "--port" --port " 80"
bad "negative size" "--max-flow-bytes" --max-flow-bytes " -1"
bad "negative duration" "--hole-timeout" --hole-timeout " -1"
bad "duration overflow" "--idle-timeout" --idle-timeout 2e10
for o in interface pin-dir output replay-host spool-dir; do
	bad "empty --$o" "--$o" "--$o" ""
done
bad "unknown capture mode" "--capture" --capture bogus
envbad() { # variable value
	local out rc
	out=$(env "$1=$2" "$ST_BIN" --input-pcap "$PCAP" 2>&1 >/dev/null); rc=$?
	if [ $rc = 2 ] && [ "$(printf '%s\n' "$out" | wc -l)" = 1 ] && printf '%s' "$out" | grep -q -- "$1"; then
		pass "cli: $1='$2' -> exit 2, one line naming it"
	else
		fail "cli: $1='$2' (exit $rc, output: $out)"
	fi
}
envbad SHADOWTAP_PORT abc
envbad SHADOWTAP_NO_REDACT disabled
envbad SHADOWTAP_NO_REDACT n
envbad SHADOWTAP_IDLE_TIMEOUT 2e10
envbad ES_PORT 99999
envbad ES_PORT abc
envbad ELASTICSEARCH_URL ftp://x
bools_ok=1
for v in off OFF 0 false no on Yes 1 TRUE; do
	SHADOWTAP_NO_REDACT=$v "$ST_BIN" --version >/dev/null 2>&1 || bools_ok=0
done
[ $bools_ok = 1 ] && pass "cli: SHADOWTAP_NO_REDACT accepts 1/0 true/false yes/no on/off, any case" || fail "cli: a boolean spelling refused"
out=$(SHADOWTAP_REPLAYY=http://x "$ST_BIN" --version 2>&1 >/dev/null); rc=$?
[ $rc = 0 ] && echo "$out" | grep -q "unknown environment variable SHADOWTAP_REPLAYY" \
	&& pass "cli: unknown SHADOWTAP_REPLAYY warned about" || fail "cli: unknown env name (exit $rc: $out)"
out=$("$ST_BIN" --input-pcap "$PCAP" --output-file "$ST_TMP/rec.stap" 2>&1 >/dev/null)
echo "$out" | grep -q "only counted" && fail "cli: --output-file still says records are only counted" \
	|| pass "cli: --output-file is an output (no 'only counted' note)"

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
# Without CAP_PERFMON the verifier refuses the capture program with EACCES or E2BIG,
# neither of which names the capability: the agent must say what is missing.
if [ "$(id -u)" = 0 ] && command -v capsh >/dev/null; then
	out=$(timeout 20 capsh --drop=cap_perfmon,cap_sys_admin -- -c \
		"'$ST_BIN' -p 80 -o /dev/null --pin-dir /sys/fs/bpf/st-cli-test --exit-after 1" 2>&1); rc=$?
	[ $rc = 3 ] && echo "$out" | grep -q "missing capability CAP_PERFMON" \
		&& pass "cli: without CAP_PERFMON -> exit 3 naming it" \
		|| fail "cli: without CAP_PERFMON (exit $rc: $(echo "$out" | tail -n 1))"
else
	skip "cli: without CAP_PERFMON (needs root and capsh)"
fi

# convert parses with the same option table
bad "convert: negative body limit" "--body-limit" convert --body-limit " -1" a.stap b.ndjson
bad "convert: unknown option" "--bogus" convert --bogus a.stap b.ndjson
bad "convert: extra operand" "'c'" convert a.stap b.ndjson c
"$ST_BIN" convert --help | grep -q -- '--body-limit SIZE' && pass "cli: convert --help lists its options" \
	|| fail "cli: convert --help"

# the README's option table stays true: every option --help lists has a row there
missing=""
for o in $("$ST_BIN" --help | sed -n 's/^ *\(-., \)\?\(--[a-z0-9-]*\).*/\2/p'); do
	grep -qE -- "^\| .*\`[^\`]*$o([^a-z0-9-]|\$)" "$ST_ROOT/README.md" || missing="$missing $o"
done
[ -z "$missing" ] && pass "cli: every option in --help has a row in the README's option table" \
	|| fail "cli: README option table misses$missing"
