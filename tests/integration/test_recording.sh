#!/usr/bin/env bash
# Record now, replay later. nginx serverA (:80) in a namespace, http_client.py in
# another over veth sending ~10,000 mixed keep-alive/pipelined requests; shadowtap
# records them (--output-file, native format) while GoReplay (if built) records the
# same traffic to a .gor file. Then each recording is replayed from the file to a
# fresh nginx serverB: the native one at 100% (timing compared with serverA's log)
# and at max speed, the GoReplay one at max speed. serverB must get every request
# exactly once, byte-identical, in per-connection order. Also converts native ->
# gor -> native and checks the count.
. "$(dirname "$0")/lib.sh"
st_need_root "recording"
N=${RECORDING_REQUESTS:-10000}
NS=st-rec-srv
CNS=st-rec-cli
ADDR=198.18.22.1
PIN=/sys/fs/bpf/shadowtap-test-rec
D=$ST_ROOT/tests/integration/recording
GR=${GOREPLAY:-$(command -v goreplay || echo "$HOME/go/bin/goreplay")}
GR_PID=

for t in nginx python3; do
	command -v $t >/dev/null || { skip "recording ($t not installed)"; exit 0; }
done

rec_cleanup() {
	[ -n "$GR_PID" ] && kill "$GR_PID" 2>/dev/null
	rm -rf "$PIN"-*
}
trap 'rec_cleanup; st_cleanup' EXIT

# rec_nginx NAME PORT: access log with $msec and the request's id and length. It
# proxies to a second server block so that it reads every request body whole:
# $request_length is then the request's full size on the wire (nginx discards an
# unread body without counting it, and miscounts pipelined chunked bodies).
rec_nginx() {
	local name=$1 port=$2 dir=$ST_TMP/$1 html=$ST_TMP/html
	local extra="location / { proxy_pass http://127.0.0.1:$((port + 10)); proxy_http_version 1.1; proxy_set_header Connection \"\"; }"
	mkdir -p "$dir" "$html/static"
	[ -f "$html/static/big.bin" ] || head -c 100000 /dev/urandom > "$html/static/big.bin"
	[ -f "$html/static/text.txt" ] ||
		for i in $(seq 1 400); do echo "line $i: the quick brown fox"; done > "$html/static/text.txt"
	nginx_conf "$dir" "$(cat <<NGX
	server {
		listen $port reuseport backlog=4096;
		access_log $ST_TMP/$name.access.log rec;
		root $html;
		$extra
	}
	server {
		listen $((port + 10));
		root $html;
		access_log off;
		location /static/ { }
		location / { return 200 "hello from $name: \$request_uri\n"; }
	}
NGX
)" "user root;"
	ip netns exec $NS nginx -c "$dir/nginx.conf" -p "$dir" || return 1
	for _ in $(seq 1 50); do [ -s "$dir/nginx.pid" ] && break; sleep 0.1; done
	ST_PIDS+=("$(cat "$dir/nginx.pid")")
}

# replay_file NAME SERVERB-PORT ARGS...: run shadowtap on a recording to completion
replay_file() {
	local name=$1 port=$2 t0 t1 rc; shift 2
	t0=$(date +%s.%N)
	timeout 120 ip netns exec $NS "$ST_BIN" -r "http://127.0.0.1:$port" -o "$ST_TMP/$name.ndjson" \
		"$@" 2>"$ST_TMP/$name.log"
	rc=$?
	t1=$(date +%s.%N)
	ELAPSED=$(echo "$t1 - $t0" | bc)
	[ "$rc" = 0 ] && pass "$name: input done, drained, exit 0" ||
		fail "$name: exit code $rc ($(grep -v '^input:' "$ST_TMP/$name.log" | tail -2 | tr '\n' ' '))"
	grep -E '^(shadowtap: )?(replay: (submitted|dropped)|output:)' "$ST_TMP/$name.log" | sed "s/^/    $name /"
	grep -E '^input:' "$ST_TMP/$name.log" | tail -2 | sed "s/^/    $name /"
	if grep -q 'queue_full=0 memory_limit=0' "$ST_TMP/$name.log"; then
		pass "$name: no replay queue drops"
	else
		fail "$name: replay dropped records ($(grep 'replay: dropped' "$ST_TMP/$name.log"))"
	fi
}

st_ns $NS
st_ns $CNS
st_link $NS st-reca0 $ADDR/24 $CNS st-recc0 198.18.22.2/24
rec_nginx serverA 80 || { fail "recording: serverA nginx did not start"; exit 0; }
for p in 81 82 83; do rec_nginx serverB$p $p || { fail "recording: serverB$p did not start"; exit 0; }; done

# 1. record live; GoReplay records the same traffic if it is built
if ! st_agent $NS "$ST_TMP/rec.agent.log" -i st-reca0 -p 80 --pin-dir "$PIN-rec" \
	--output-file "$ST_TMP/rec-%Y%m%d-%H%M%S.stap" --output-file-size 64M; then
	fail "record: agent did not start ($(tail -3 "$ST_TMP/rec.agent.log" | tr '\n' ' '))"
	exit 0
fi
if [ -x "$GR" ]; then
	ip netns exec $NS "$GR" --input-raw :80 --input-raw-track-response \
		--output-file "$ST_TMP/gr.gor" --output-file-append >"$ST_TMP/gr.log" 2>&1 &
	GR_PID=$!
	sleep 2
fi
ip netns exec $CNS python3 "$ST_ROOT/tests/integration/http_client.py" --host $ADDR --port 80 \
	-n "$N" --manifest "$ST_TMP/rec.manifest" 2>"$ST_TMP/rec.client.err" ||
	fail "record: client failed ($(tail -2 "$ST_TMP/rec.client.err" | tr '\n' ' '))"
sleep 2
st_agent_stop
[ "$ST_AGENT_RC" = 0 ] && pass "record: SIGINT drains and exits 0" || fail "record: agent exit code $ST_AGENT_RC"
if [ -n "$GR_PID" ]; then
	kill -INT "$GR_PID" 2>/dev/null
	wait "$GR_PID" 2>/dev/null
	GR_PID=
fi
grep -E '^(shadowtap: )?recording:' "$ST_TMP/rec.agent.log" | sed 's/^/    record /'
written=$(grep -oE 'recording: submitted=[0-9]+ written=[0-9]+' "$ST_TMP/rec.agent.log" | grep -oE '[0-9]+$')
a_lines=$(wc -l < "$ST_TMP/serverA.access.log")
if [ "${written:-0}" = "$N" ] && [ "$a_lines" = "$N" ]; then
	pass "record: all $N exchanges written to the recording"
else
	fail "record: ${written:-0} written, serverA saw $a_lines, client sent $N"
fi
ls "$ST_TMP"/rec-*.stap >/dev/null 2>&1 || { fail "record: no recording file"; exit 0; }
echo "    record: $(du -cb "$ST_TMP"/rec-*.stap | tail -1 | cut -f1) bytes in $(ls "$ST_TMP"/rec-*.stap | wc -l) file(s)"

# 2. replay at the recorded pace
replay_file p100 81 --input-file "$ST_TMP/rec-*.stap" --replay-speed 100%
python3 "$D/check.py" --name p100 --manifest "$ST_TMP/rec.manifest" --a "$ST_TMP/serverA.access.log" \
	--b "$ST_TMP/serverB81.access.log" --timing 0.05 --records "$ST_TMP/p100.ndjson" --all-responses
echo "    p100: wall time ${ELAPSED} s"

# 3. replay as fast as possible
replay_file max 82 --input-file "$ST_TMP/rec-*.stap" --replay-speed max
# negative control: the timing check given to p100 must reject a max-speed replay
python3 "$D/check.py" --name max --manifest "$ST_TMP/rec.manifest" --a "$ST_TMP/serverA.access.log" \
	--b "$ST_TMP/serverB82.access.log" --timing-control 0.05
echo "    max: $N requests in ${ELAPSED} s = $(echo "$N / $ELAPSED" | bc) requests/s (process start to exit)"

# 4. convert native -> gor -> native: same records
f=$(ls "$ST_TMP"/rec-*.stap | head -1)
if "$ST_BIN" convert "$f" "$ST_TMP/conv.gor" 2>"$ST_TMP/conv1.log" &&
	"$ST_BIN" convert "$ST_TMP/conv.gor" "$ST_TMP/conv.stap.gz" 2>"$ST_TMP/conv2.log"; then
	n1=$(grep -oE '^convert: [0-9]+' "$ST_TMP/conv1.log" | grep -oE '[0-9]+')
	n2=$(grep -oE '^convert: [0-9]+' "$ST_TMP/conv2.log" | grep -oE '[0-9]+')
	if [ -n "$n1" ] && [ "$n1" = "$n2" ] && grep -q 'errors=0' "$ST_TMP/conv2.log" &&
		grep -q 'gor_unanswered=0' "$ST_TMP/conv2.log"; then
		pass "convert: native -> gor -> native keeps all $n1 records and their responses"
	else
		fail "convert: $n1 -> $n2 records ($(tail -1 "$ST_TMP/conv2.log"))"
	fi
else
	fail "convert: failed ($(tail -1 "$ST_TMP/conv1.log" "$ST_TMP/conv2.log" 2>/dev/null | tr '\n' ' '))"
fi

# 5. a recording made by GoReplay itself
if [ ! -x "$GR" ] && [ -z "$(st_go)" ]; then
	skip "goreplay: no Go toolchain here to build GoReplay"
elif [ ! -x "$GR" ]; then
	fail "goreplay: not built although Go is here (scripts/setup.sh builds it: $(tail -1 /tmp/shadowtap-goreplay-build.log 2>/dev/null))"
elif ! ls "$ST_TMP"/gr*.gor >/dev/null 2>&1; then
	fail "goreplay: no .gor file written ($(tail -2 "$ST_TMP/gr.log" | tr '\n' ' '))"
else
	python3 "$D/gor_ids.py" "$ST_TMP"/gr*.gor > "$ST_TMP/gr.ids"
	echo "    goreplay: recorded $(wc -l < "$ST_TMP/gr.ids") of $N requests ($(sort -u "$ST_TMP/gr.ids" | wc -l) distinct)"
	replay_file gor 83 --input-file "$ST_TMP/gr*.gor" --replay-speed max
	grep -E 'gor requests=|replay: skipped' "$ST_TMP/gor.log" | sed 's/^/    gor /'
	# GoReplay may write a request cut before its X-St-Id header (gr.ids says "?"):
	# the agent must replay it or count it unreplayable, never lose it silently
	unrep=$(grep -oE 'unreplayable=[0-9]+' "$ST_TMP/gor.log" | tail -1 | cut -d= -f2)
	python3 "$D/check.py" --name gor --manifest "$ST_TMP/rec.manifest" --a "$ST_TMP/serverA.access.log" \
		--b "$ST_TMP/serverB83.access.log" --ids "$ST_TMP/gr.ids" --records "$ST_TMP/gor.ndjson" \
		--gor "$ST_TMP"/gr*.gor --unreplayable "${unrep:--1}"
fi
exit 0
