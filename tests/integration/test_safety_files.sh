#!/bin/bash
# Files the agent writes and reads, as a careless operator or a hostile input would
# have them (issue 15 items 5-10, 13, 16). No root, no network: recordings come
# from --input-pcap, so this needs no integration lock.
. "$(dirname "$0")/lib.sh"
[ -x "$ST_BIN" ] || { skip "safety files (build/shadowtap not built)"; exit 0; }
GEN="python3 $ST_ROOT/tests/integration/safety_gen.py"
T=$ST_TMP
umask 022
mode() { stat -c %a "$1" 2>/dev/null; }
nrec() { grep -oE '^convert: [0-9]+' "$1" | grep -oE '[0-9]+'; }

# 5. recordings are redacted like records, every file is 0600
$GEN pcap "$T/s.pcap" secrets
"$ST_BIN" -q --input-pcap "$T/s.pcap" --output-file "$T/rec.stap" -o "$T/out.ndjson" 2>"$T/r1.log"
if [ "$(mode "$T/rec.stap")" = 600 ] && [ "$(mode "$T/out.ndjson")" = 600 ]; then
	pass "recording and -o output created 0600 under umask 022"
else
	fail "modes: recording $(mode "$T/rec.stap"), -o output $(mode "$T/out.ndjson") (want 600)"
fi
if [ -s "$T/rec.stap" ] && ! grep -qa SECRET "$T/rec.stap" &&
	"$ST_BIN" convert "$T/rec.stap" "$T/rec.ndjson" 2>/dev/null &&
	[ "$(grep -c 'Bearer' "$T/rec.ndjson")" = 0 ] && [ "$(grep -c '\[REDACTED\]' "$T/rec.ndjson")" = 3 ]; then
	pass "recording holds no Authorization/Cookie/Set-Cookie value; it converts to 3 redacted records"
else
	fail "recording keeps secrets: $(grep -ac SECRET "$T/rec.stap") lines with SECRET"
fi
"$ST_BIN" --input-pcap "$T/s.pcap" --record-secrets --output-file "$T/raw.gor" \
	--output-format gor 2>"$T/r2.log" >/dev/null
if grep -qa 'SECRET-TOKEN' "$T/raw.gor" && grep -q 'record-secrets' "$T/r2.log"; then
	pass "--record-secrets keeps them, with a warning at start"
else
	fail "--record-secrets: secrets kept $(grep -ac SECRET-TOKEN "$T/raw.gor"), warning: $(grep -c record-secrets "$T/r2.log")"
fi
if "$ST_BIN" convert "$T/raw.gor" "$T/conv.stap" 2>/dev/null && ! grep -qa SECRET "$T/conv.stap" &&
	"$ST_BIN" convert --no-redact "$T/raw.gor" "$T/conv-raw.ndjson" 2>/dev/null &&
	grep -q 'SECRET-TOKEN' "$T/conv-raw.ndjson" &&
	"$ST_BIN" convert --redact-header host "$T/raw.gor" "$T/conv-host.ndjson" 2>/dev/null &&
	grep -q '"host":"\[REDACTED\]"' "$T/conv-host.ndjson" && [ "$(mode "$T/conv.stap")" = 600 ]; then
	pass "convert redacts by default in every format; --no-redact and --redact-header work; output 0600"
else
	fail "convert redaction options"
fi

"$ST_BIN" report --html "$T/report.html" "$T/out.ndjson" >/dev/null 2>&1
if [ "$(mode "$T/report.html")" = 600 ]; then
	pass "report --html page created 0600"
else
	fail "report --html page mode $(mode "$T/report.html")"
fi

# 8. a restart within the same strftime period never truncates a recording
before=$(md5sum < "$T/rec.stap")
"$ST_BIN" -q --input-pcap "$T/s.pcap" --output-file "$T/rec.stap" 2>/dev/null
if [ "$(md5sum < "$T/rec.stap")" = "$before" ] && [ -s "$T/rec-1.stap" ]; then
	pass "second run with the same --output-file keeps the first file and writes rec-1.stap"
else
	fail "second run: first file changed or no rec-1.stap ($(ls "$T" | tr '\n' ' '))"
fi

# 7. convert never overwrites its input, whatever name it is given by
python3 "$ST_ROOT/tests/integration/gen_pcap.py" "$T/big.pcap" 3000 50
"$ST_BIN" -q --input-pcap "$T/big.pcap" --output-file "$T/big.stap" 2>/dev/null
"$ST_BIN" -q --input-pcap "$T/big.pcap" --output-file "$T/big.stap.gz" --output-file-compress gzip 2>/dev/null
before=$(md5sum < "$T/big.stap")
ln -s "$T/big.stap" "$T/alias.stap"
"$ST_BIN" convert "$T/big.stap" "$T/big.stap" 2>"$T/c1.log"; rc1=$?
"$ST_BIN" convert "$T/big.stap" "$T/alias.stap" 2>"$T/c2.log"; rc2=$?
if [ $rc1 != 0 ] && [ $rc2 != 0 ] && [ "$(md5sum < "$T/big.stap")" = "$before" ]; then
	pass "convert IN IN (and IN via a symlink) refused (exit $rc1/$rc2), input intact"
else
	fail "convert onto its input: exit $rc1/$rc2, input $( [ "$(md5sum < "$T/big.stap")" = "$before" ] && echo intact || echo CHANGED)"
fi
if "$ST_BIN" convert "$T/big.stap" "$T/big-out.gor" 2>/dev/null && ! ls "$T"/*.tmp-* >/dev/null 2>&1; then
	pass "convert leaves its output and no temporary file"
else
	fail "convert left $(ls "$T" | grep -c tmp-) temporary files"
fi

# 9. a damaged gzip keeps what decoded before the damage; convert says it failed
python3 - "$T/big.stap.gz" <<'PY'
import sys
p = sys.argv[1]
d = bytearray(open(p, "rb").read())
d[len(d) * 3 // 4] ^= 0xFF
open(p, "wb").write(bytes(d))
PY
"$ST_BIN" convert "$T/big.stap.gz" "$T/damaged.ndjson" 2>"$T/c3.log"; rc=$?
n=$(nrec "$T/c3.log")
if [ $rc != 0 ] && [ "${n:-0}" -ge 1500 ] && grep -q 'read_errors=[1-9]' "$T/c3.log"; then
	pass "gzip damaged at 3/4: $n of 3000 records kept, read_errors counted, exit $rc"
else
	fail "damaged gzip: exit $rc, ${n:-0} of 3000 records ($(tail -1 "$T/c3.log"))"
fi
mkdir -p "$T/adir"
"$ST_BIN" convert "$T/adir" "$T/adir.ndjson" 2>/dev/null; rc=$?
if [ $rc != 0 ]; then pass "convert DIR exits $rc"; else fail "convert DIR exits 0"; fi

# 13. a body holding GoReplay's separator is refused in a .gor recording
$GEN pcap "$T/f.pcap" forge
"$ST_BIN" --input-pcap "$T/f.pcap" --output-file "$T/f.gor" --output-format gor 2>"$T/f.log" >/dev/null
"$ST_BIN" convert "$T/f.gor" "$T/f.ndjson" 2>"$T/f2.log"
if grep -q 'refused_gor_separator=1' "$T/f.log" && ! grep -q forged-admin "$T/f.ndjson" &&
	[ "$(nrec "$T/f2.log")" = 1 ]; then
	pass ".gor: the record whose body holds the separator is refused and counted; no forged entry"
else
	fail ".gor separator: $(grep -o 'refused_gor_separator=[0-9]*' "$T/f.log"), forged entries $(grep -c forged-admin "$T/f.ndjson")"
fi

# 16. 200,000 unanswered .gor requests pair in linear time; a 2^62 ns gap is cut
$GEN gor "$T/many.gor" 200000
s=$(date +%s%N)
timeout 60 "$ST_BIN" convert "$T/many.gor" "$T/many.ndjson" 2>"$T/m.log"; rc=$?
ms=$(( ($(date +%s%N) - s) / 1000000 ))
if [ $rc = 0 ] && [ "$(nrec "$T/m.log")" = 200000 ] && [ $ms -lt 8000 ]; then
	pass "200000 unanswered .gor requests converted in $ms ms"
else
	fail "200000 unanswered .gor requests: exit $rc in $ms ms"
fi
$GEN gap "$T/gap.gor"
s=$(date +%s%N)
timeout 20 "$ST_BIN" --input-file "$T/gap.gor" --replay-max-wait 0.2 2>"$T/g.log" >/dev/null; rc=$?
ms=$(( ($(date +%s%N) - s) / 1000000 ))
if [ $rc = 0 ] && [ $ms -lt 5000 ] && grep -q 'pacing waits cut' "$T/g.log"; then
	pass "a 2^62 ns recorded gap waits --replay-max-wait 0.2 s (run took $ms ms, skipped time reported)"
else
	fail "2^62 ns gap: exit $rc after $ms ms"
fi

# 6. the spool directory: ours alone (0700, refused when others can write it), locked
ES_DOWN=http://127.0.0.1:1   # refused at once: everything goes to the spool
mkdir -p "$T/ww" && chmod 777 "$T/ww"
"$ST_BIN" -q --input-pcap "$T/s.pcap" --es $ES_DOWN --spool-dir "$T/ww" 2>"$T/ww.log" >/dev/null; rc=$?
if [ $rc = 1 ] && [ "$(wc -l < "$T/ww.log")" = 1 ] && grep -q 'world-writable' "$T/ww.log"; then
	pass "world-writable spool directory refused: exit 1, one line"
else
	fail "world-writable spool directory: exit $rc, $(wc -l < "$T/ww.log") lines: $(head -c 200 "$T/ww.log")"
fi
"$ST_BIN" -q --input-pcap "$T/s.pcap" --es $ES_DOWN --spool-dir "$T/sp/new" 2>"$T/sp1.log" >/dev/null
if [ "$(mode "$T/sp/new")" = 700 ] && [ -z "$(find "$T/sp/new" -type f ! -perm 600)" ]; then
	pass "spool directory created 0700, its files 0600"
else
	fail "spool modes: dir $(mode "$T/sp/new"), files $(find "$T/sp/new" -type f -printf '%f:%m ')"
fi
"$ST_BIN" -q --input-file "$T/gap.gor" --replay-max-wait 3 --es $ES_DOWN --spool-dir "$T/sp/new" \
	2>/dev/null >/dev/null &
first=$!
sleep 1
"$ST_BIN" -q --input-pcap "$T/s.pcap" --es $ES_DOWN --spool-dir "$T/sp/new" 2>"$T/lock.log" >/dev/null; rc=$?
wait $first
if [ $rc = 1 ] && grep -q 'lock held' "$T/lock.log"; then
	pass "a second agent on the same spool directory is refused (exit 1: $(head -1 "$T/lock.log"))"
else
	fail "second agent on one spool: exit $rc ($(head -1 "$T/lock.log"))"
fi

# 10. an ack file of 2^64-1 neither deletes the spooled records nor wraps the numbering
pending() { grep -oE 'spool_pending_bytes=[0-9]+' "$1" | tail -1 | cut -d= -f2; }
rm -rf "$T/sp2"
"$ST_BIN" --input-pcap "$T/big.pcap" --es $ES_DOWN --spool-dir "$T/sp2" 2>"$T/a1.log" >/dev/null
p1=$(pending "$T/a1.log")
python3 - "$T/sp2/ack" <<'PY'
import struct, sys, zlib
b = b"STCK" + struct.pack("<QQ", 2**64 - 1, 0)
open(sys.argv[1], "wb").write(b + struct.pack("<I", zlib.crc32(b)))
PY
"$ST_BIN" --input-pcap "$T/s.pcap" --es $ES_DOWN --spool-dir "$T/sp2" 2>"$T/a2.log" >/dev/null
p2=$(pending "$T/a2.log")
if [ "${p1:-0}" -gt 0 ] && [ "${p2:-0}" -gt "${p1:-0}" ] && grep -q 'spool_ack_recovered=1' "$T/a2.log"; then
	pass "ack 2^64-1: the $p1 spooled bytes are kept (now $p2), ack_recovered counted"
else
	fail "ack 2^64-1: pending $p1 -> $p2 bytes ($(grep -o 'spool_ack_recovered=[0-9]*' "$T/a2.log"))"
fi
