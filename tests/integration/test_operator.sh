#!/usr/bin/env bash
# Issue 16 (an operator's first hour): no self-inflicted damage, no silent failure.
# Offline parts (pcap input) run without root; live parts skip without it.
. "$(dirname "$0")/lib.sh"
[ -x "$ST_BIN" ] || { skip "operator (build/shadowtap not built)"; exit 0; }
PCAP=$ST_ROOT/../shared/corpus/zeek-http/get.pcap

# item 3: -o FILE appends, never truncates an existing file
out=$ST_TMP/out.ndjson
printf 'line %s\n' $(seq 1 101) >"$out"
"$ST_BIN" --input-pcap "$PCAP" -o "$out" >/dev/null 2>&1
n=$(wc -l <"$out")
if [ "$(head -1 "$out")" = "line 1" ] && [ "$n" -gt 101 ]; then
	pass "operator: -o appends to an existing file (101 -> $n lines)"
else
	fail "operator: -o truncated or did not append (101 -> $n lines)"
fi
"$ST_BIN" --help 2>&1 | grep -A1 -- '--output' | grep -qi append \
	&& pass "operator: --help says -o appends" || fail "operator: --help does not say -o appends"



# item 8: 64-bit ids are strings; no JSON number in a record is above 2^53
"$ST_BIN" --input-pcap "$PCAP" -o - 2>/dev/null | python3 -c '
import json, sys
bad, ids, n = [], 0, 0
def walk(v, path):
    global ids
    if isinstance(v, dict):
        for k, x in v.items(): walk(x, path + "." + k if path else k)
    elif isinstance(v, list):
        for x in v: walk(x, path)
    elif isinstance(v, int) and not isinstance(v, bool) and abs(v) > 2**53:
        bad.append(path)
for line in sys.stdin:
    r = json.loads(line); n += 1; walk(r, "")
    c = r.get("network", {}).get("connection_id")
    if isinstance(c, str) and c.isdigit(): ids += 1
    else: bad.append("network.connection_id=%r" % (c,))
print(("PASS: operator: %d records, network.connection_id a decimal string in all, no number above 2^53" % n)
      if n and not bad else "FAIL: operator: 64-bit numbers in records: %s" % sorted(set(bad))[:5])
'

# item 7: bpf() refused by seccomp (EPERM despite CAP_BPF) is named as such, in one line
if [ "$(id -u)" != 0 ]; then
	skip "operator: seccomp EPERM message (needs root)"
else
	out=$(python3 "$ST_ROOT/tests/integration/seccomp_no_bpf.py" "$ST_BIN" -i lo -p 18083 \
		--pin-dir /sys/fs/bpf/shadowtap-test-op7 --exit-after 1 2>&1 >/dev/null); rc=$?
	if [ $rc = 77 ]; then
		skip "operator: seccomp EPERM message ($out)"
	elif [ $rc != 0 ] && printf '%s' "$out" | grep -q 'seccomp' && ! printf '%s' "$out" | grep -q 'ring buffer'; then
		pass "operator: bpf() EPERM under seccomp -> exit $rc, '$(printf '%s' "$out" | grep -m1 seccomp | cut -c1-90)...'"
	else
		fail "operator: bpf() EPERM under seccomp (exit $rc: $(printf '%s' "$out" | head -2 | tr '\n' ' '))"
	fi
fi

# item 12: --version prints a release version and the commit
v=$("$ST_BIN" --version 2>&1)
printf '%s' "$v" | grep -qE '^shadowtap [0-9]+\.[0-9]+\.[0-9]+ \(commit [^)]+\)$' \
	&& pass "operator: --version: $v" || fail "operator: --version prints no release version ($v)"

# item 12: no block of zero counters after a start-up failure
out=$("$ST_BIN" --input-pcap "$ST_TMP/no-such.pcap" 2>&1 >/dev/null); rc=$?
if [ $rc != 0 ] && ! printf '%s' "$out" | grep -q -- '--- shadowtap exit' && [ "$(printf '%s\n' "$out" | wc -l)" -le 2 ]; then
	pass "operator: start-up failure (exit $rc) prints no counter block"
else
	fail "operator: start-up failure (exit $rc) printed: $(printf '%s' "$out" | head -3 | tr '\n' ' ')"
fi

# item 12: libbpf's relocation log only at -vv (-v: the agent's own debug lines)
if [ "$(id -u)" != 0 ]; then
	skip "operator: libbpf log at -vv (needs root)"
else
	"$ST_BIN" -i lo -p 18084 -v --pin-dir /sys/fs/bpf/shadowtap-test-op12 --exit-after 0.5 \
		>/dev/null 2>"$ST_TMP/v1.log"
	"$ST_BIN" -i lo -p 18084 -vv --pin-dir /sys/fs/bpf/shadowtap-test-op12 --exit-after 0.5 \
		>/dev/null 2>"$ST_TMP/v2.log"
	a=$(grep -c 'libbpf:' "$ST_TMP/v1.log"); b=$(grep -c 'libbpf:' "$ST_TMP/v2.log")
	[ "$a" = 0 ] && [ "$b" -gt 0 ] && pass "operator: libbpf lines: -v $a, -vv $b" \
		|| fail "operator: libbpf lines: -v $a (want 0), -vv $b (want > 0)"
fi
# item 2: a replay target that is a captured local port is refused at start
for u in http://127.0.0.1:18082 http://localhost:18082/x "http://[::1]:18082"; do
	out=$("$ST_BIN" -i lo -p 80,18082 -r "$u" --exit-after 1 2>&1 >/dev/null); rc=$?
	if [ $rc = 2 ] && [ "$(printf '%s\n' "$out" | wc -l)" = 1 ] && printf '%s' "$out" | grep -q 'own replays'; then
		pass "operator: -r $u with -p 18082 -> exit 2, one line"
	else
		fail "operator: -r $u with -p 18082 (exit $rc: $out)"
	fi
done
# item 1: socket mode refuses a live owner of the pin directory, takes over a dead one
if [ "$(id -u)" != 0 ]; then
	skip "operator: pin-dir owner in socket mode (needs root)"
else
	PIN=/sys/fs/bpf/shadowtap-test-op
	rm -rf "$PIN"
	if st_agent - "$ST_TMP/own1.log" -i lo -p 18081 --capture socket --pin-dir "$PIN" -o /dev/null; then
		first=$ST_AGENT_PID
		"$ST_BIN" -i lo -p 18081 --capture socket --pin-dir "$PIN" -o /dev/null --exit-after 2 \
			2>"$ST_TMP/own2.log"; rc=$?
		if [ "$rc" != 0 ] && grep -q 'owns' "$ST_TMP/own2.log" && ! grep -q 'stale' "$ST_TMP/own2.log"; then
			pass "operator: socket mode refuses a live owner of $PIN (exit $rc)"
		else
			fail "operator: second socket agent rc=$rc ($(head -2 "$ST_TMP/own2.log" | tr '\n' ' '))"
		fi
		[ -e "$PIN/stats" ] && pass "operator: the first agent's stats pin survives the refused second" \
			|| fail "operator: the first agent's stats pin is gone"
		kill -9 "$first"; wait "$first" 2>/dev/null
		if st_agent - "$ST_TMP/own3.log" -i lo -p 18081 --capture socket --pin-dir "$PIN" -o /dev/null &&
			grep -q 'gone' "$ST_TMP/own3.log"; then
			pass "operator: a dead owner's pin dir is taken over"
		else
			fail "operator: restart after SIGKILL ($(head -2 "$ST_TMP/own3.log" | tr '\n' ' '))"
		fi
		kill -INT "$ST_AGENT_PID"; wait "$ST_AGENT_PID" 2>/dev/null
	else
		fail "operator: first socket agent did not start ($(tail -2 "$ST_TMP/own1.log" | tr '\n' ' '))"
	fi
	rm -rf "$PIN"
fi

# item 12: --stats prints one line of per-second rates each interval; the full block
# stays on SIGUSR1 and at exit. Oracle: 150 curl requests to a python http.server;
# the rates times their intervals add up to the exit summary's records.
if [ "$(id -u)" != 0 ]; then
	skip "operator: one-line --stats (needs root)"
else
	NSS=st-op-stats
	st_ns $NSS
	ip netns exec $NSS python3 -m http.server 18095 --bind 127.0.0.1 >/dev/null 2>&1 &
	ST_PIDS+=($!)
	up() { ip netns exec $NSS curl -s -o /dev/null http://127.0.0.1:18095/; }
	st_poll 10 up
	if st_agent $NSS "$ST_TMP/stats.log" -i lo -p 18095 -o "$ST_TMP/stats.ndjson" --stats 1 \
		--pin-dir /sys/fs/bpf/shadowtap-test-opstats; then
		ip netns exec $NSS sh -c 'for i in $(seq 1 150); do curl -s -o /dev/null http://127.0.0.1:18095/?n=$i; sleep 0.01; done'
		st_poll 10 st_lines_ge "$ST_TMP/stats.ndjson" 150
		# two more periodic lines after the traffic, then SIGUSR1 and exit
		n0=$(grep -c '^--- shadowtap stats: .* --- packets' "$ST_TMP/stats.log")
		more() { [ "$(grep -c '^--- shadowtap stats: .* --- packets' "$ST_TMP/stats.log")" -ge $((n0 + 2)) ]; }
		st_poll 10 more
		kill -USR1 "$ST_AGENT_PID"
		usr1() { grep -q '^--- shadowtap stats: [0-9.]* s ---$' "$ST_TMP/stats.log"; }
		st_poll 10 usr1
		st_agent_stop
		python3 - "$ST_TMP/stats.log" <<'PY'
import re, sys
lines = open(sys.argv[1]).read().splitlines()
per = [(float(m.group(1)), m.group(2)) for l in lines
       for m in [re.match(r"--- shadowtap stats: ([0-9.]+) s --- (packets .*)$", l)] if m]
ex = [i for i, l in enumerate(lines) if l.startswith("--- shadowtap exit:")]
usr1 = [i for i, l in enumerate(lines) if re.match(r"--- shadowtap stats: [0-9.]+ s ---$", l)]
recs = None
if ex:
    m = re.search(r"\brecords=(\d+)", "\n".join(lines[ex[0]:]))
    recs = int(m.group(1)) if m else None
total, prev = 0.0, 0.0
for t, rest in per:
    m = re.search(r"records (\d+)/s", rest)
    total += int(m.group(1)) * (t - prev) if m else 0
    prev = t
# fixed before the run: each printed rate is rounded to 1/s over an interval of ~1 s
tol = 1.0 * len(per) + 2
ok = len(per) >= 3 and recs == 150 and abs(total - recs) <= tol and usr1 and ex
block = usr1 and usr1[0] + 1 < len(lines) and lines[usr1[0] + 1].startswith("bpf:")
print(("PASS" if ok and block else "FAIL") +
      ": operator: --stats 1 printed %d one-line rate reports (rates x intervals = %.0f records, exit summary %s, "
      "tolerance %.0f); SIGUSR1 printed the full block: %s" % (len(per), total, recs, tol, bool(block)))
PY
	else
		fail "operator: one-line --stats: agent did not start ($(tail -2 "$ST_TMP/stats.log" | tr '\n' ' '))"
	fi
fi

# item 11: --output-file-compress gzip appends .gz to a name without it (and not twice)
rm -rf "$ST_TMP/gz" && mkdir -p "$ST_TMP/gz"
"$ST_BIN" --input-pcap "$PCAP" --output-file "$ST_TMP/gz/rec-%Y.stap" --output-file-compress gzip 2>/dev/null
"$ST_BIN" --input-pcap "$PCAP" --output-file "$ST_TMP/gz/two.stap.gz" --output-file-compress gzip 2>/dev/null
"$ST_BIN" --input-pcap "$PCAP" --output-file "$ST_TMP/gz/plain.stap" 2>/dev/null
got=$(cd "$ST_TMP/gz" && ls | sort | tr '\n' ' ')
want="plain.stap rec-$(date +%Y).stap.gz two.stap.gz "
if [ "$got" = "$want" ] && gzip -t "$ST_TMP/gz/rec-$(date +%Y).stap.gz" && gzip -t "$ST_TMP/gz/two.stap.gz" \
	&& ! gzip -t "$ST_TMP/gz/plain.stap" 2>/dev/null; then
	pass "operator: --output-file-compress gzip names its files .gz ($got)"
else
	fail "operator: gzip recording names: got '$got', want '$want'"
fi

# item 11: without root the default spool is ./spool in the current directory (README)
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	d=$ST_TMP/nobody && mkdir -p "$d" && chmod 777 "$d" && chmod o+rx "$ST_TMP"
	(cd "$d" && setpriv --reuid 65534 --regid 65534 --clear-groups "$ST_BIN" --input-pcap "$PCAP" \
		-e http://127.0.0.1:9 --shutdown-timeout 1 -o /dev/null >/dev/null 2>"$d/err")
	if ls "$d/spool/"*.seg >/dev/null 2>&1; then
		pass "operator: not root, the default spool is ./spool ($(ls "$d/spool" | tr '\n' ' '))"
	else
		fail "operator: not root, no ./spool ($(ls "$d" | tr '\n' ' '); $(head -2 "$d/err" | tr '\n' ' '))"
	fi
else
	skip "operator: ./spool default for a non-root user (needs root and setpriv to become nobody)"
fi
