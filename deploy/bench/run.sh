#!/usr/bin/env bash
# Overhead and loss benchmark: shadowtap vs GoReplay vs tcpdump vs nothing, each under
# the same rate-controlled load, on three network namespaces joined by veth:
#
#   none          nothing captures; serverB idle (no replay load at all)
#   none-loaded   nothing captures; a second loadgen in serverA's namespace follows
#                 serverA's request count (stub_status, every 20 ms) and sends serverB
#                 the same mix at the rate serverA is serving, over serverA-serverB's
#                 veth, as a replaying tool would, but outside serverA's request path:
#                 the baseline the replaying tools are reported against. Its check:
#                 serverB's count within B_TOL_PCT (10%) of serverA's, else the row is
#                 flagged. Its cpu_s is that load generator's CPU (no tool runs).
#   replay-bare  (full mode, or named in BENCH_TOOLS) nothing captures; the C client
#                 deploy/bench/replay_bare.c follows serverA's count as none-loaded does
#                 and only writes each request to serverB on 32 kept-alive connections
#                 (pipelined, one write per connection per pass, as the agent's
#                 replay; POSTs: one new connection each, as the agent) and reads the
#                 answers: its cpu_s per request is the kernel's work for a replay at
#                 its requests per write (its JSON, kept in build/bench/logs, says
#                 how many); a reference for the replaying tools, not a lower bound
#   none-mirror   (only when named in BENCH_TOOLS) serverA's nginx `mirror`s every
#                 request to serverB. Not a baseline: nginx ends a request only when
#                 its mirror subrequest is answered, so serverA plateaus (~5,300/s here)
#   goreplay      GoReplay with --input-raw-override-snaplen (its documented setting
#                 where, as on veth, packets are GSO segments larger than the MTU)
#   goreplay-nosnap  the same without it (full mode only; labelled in the table)
#   shadowtap-capture  shadowtap capturing and writing records (-o /dev/null) without
#                 replay: the capture-only cost; its baseline is none
#   shadowtap-w2, shadowtap-capture-w2  (any -wN suffix) the same rows with --workers N
#                 (the default here is 1: online CPUs / 4); in the full run's tool list
#
# One drain rule for every tool: after the load ends, serverB's count is read once it
# has stopped moving (at most 8 s); that is "replayed". The tool is then stopped; what
# it sends after the signal is reported apart (after_stop), never added to replayed.
#
#   client 198.18.30.2 ── 198.18.30.1 serverA (nginx :80, the tool) 198.18.31.1 ── 198.18.31.2 serverB (nginx :81)
#
# The load comes from deploy/bench/loadgen (open loop: a fixed schedule of send times,
# latency measured from the intended time). Counters come from nginx stub_status on a
# port nobody captures, the tools' own exit summaries, and the tool's rusage.
#
#   run.sh --full    3 repeats, 10 s per run, 4 rates per mix, then micro-benchmarks
#   run.sh --quick   1 repeat, 3 s per run, 2 rates per mix (CI; under 3 minutes)
#
# Knobs (environment): BENCH_REPEATS, BENCH_DURATION (s), BENCH_RATES_GET,
# BENCH_RATES_POST (space-separated, "max" = closed loop), BENCH_TOOLS,
# BENCH_MIXES, BENCH_NO_SETUP=1 (skip setup.sh and make), BENCH_MICRO=0|1,
# BENCH_LOADGEN_ARGS (extra loadgen flags, e.g. "-max-body 4096"), BENCH_ST_ARGS and
# BENCH_GOR_ARGS (extra shadowtap / GoReplay flags),
# BENCH_RESULTS (output directory, default deploy/bench/results),
# BENCH_PERF=DIR (perf record -g of each shadowtap (and replay-bare) run's load window into DIR/ID.data,
# perf stat into DIR/ID.stat; BENCH_PERF_EVENTS=LIST adds events to the perf stat, e.g.
# syscalls:sys_enter_sendmsg,syscalls:sys_enter_read for system calls per request),
# BENCH_ST_OLD=PATH (another shadowtap binary: tool names ending in -old, e.g.
# shadowtap-old or shadowtap-capture-old, run it, for before/after in one run),
# BENCH_ST_OLD_ARGS (extra flags for the -old tools only, after BENCH_ST_ARGS: with
# BENCH_ST_OLD set to the same binary, one option against another in one run, e.g.
# "--ring-size 32M"),
# BENCH_ST_OLD_COMMIT=REV (instead of BENCH_ST_OLD: build shadowtap at that commit of
# this repository with git archive + make, cached in build/bench/shadowtap-REV),
# BENCH_BARE_ARGS (replay_bare flags, e.g. "-every 20" to read serverA's count every 20 ms,
# which makes its write batches larger and its figure lower; the default is 1 ms), BENCH_GOREPLAY_BUILD=0 (use ~/go/bin/goreplay only if already built).
# BENCH_PAIRS=N: ratio mode instead of the matrix (see "ratio mode" below and
# deploy/bench/ratio.sh): N none/tool pairs per tool in ABBA order, results/ratio.md;
# BENCH_RATIO_RATE (default max) the offered rate of its windows.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
BENCH=$ROOT/deploy/bench
. "$ROOT/tests/nginx/conf.sh"
OUT=${OUT:-build}
MODE=${1:---quick}
case "$MODE" in
--full)
	REPEATS=${BENCH_REPEATS:-3}; DURATION=${BENCH_DURATION:-10}
	RATES_GET=${BENCH_RATES_GET:-"5000 20000 50000 max"}
	RATES_POST=${BENCH_RATES_POST:-"200 1000 3000 max"}
	MICRO=${BENCH_MICRO:-1}; SETTLE=1; GOREPLAY_BUILD_TIMEOUT=600
	TOOLS=${BENCH_TOOLS:-"none none-loaded replay-bare shadowtap shadowtap-capture shadowtap-w2 shadowtap-capture-w2 shadowtap-tc shadowtap-xdp goreplay goreplay-nosnap goreplay-raw tcpdump"} ;;
--quick)
	REPEATS=${BENCH_REPEATS:-1}; DURATION=${BENCH_DURATION:-3}
	RATES_GET=${BENCH_RATES_GET:-"5000 max"}
	RATES_POST=${BENCH_RATES_POST:-"500 max"}
	MICRO=${BENCH_MICRO:-0}; SETTLE=0.5; GOREPLAY_BUILD_TIMEOUT=150
	TOOLS=${BENCH_TOOLS:-"none none-loaded shadowtap shadowtap-capture goreplay tcpdump"} ;;
*)
	echo "usage: $0 --full|--quick" >&2; exit 2 ;;
esac
# HTTPS rows (full mode, or name them in BENCH_MIXES): serverA's nginx also serves
# https on 443 with a certificate made for the run, loadgen speaks TLS, shadowtap adds
# --tls openssl; GoReplay cannot capture HTTPS (it sees TLS records), its row says so.
HTTPS_MIXES=""; [ "$MODE" = --full ] && HTTPS_MIXES=" https-get https-post"
RATES_HTTPS_GET=${BENCH_RATES_HTTPS_GET:-"5000 max"}
RATES_HTTPS_POST=${BENCH_RATES_HTTPS_POST:-"200 max"}
HTTPS_TOOLS=${BENCH_HTTPS_TOOLS:-"none-loaded shadowtap goreplay"}
MIXES=${BENCH_MIXES:-"get post$HTTPS_MIXES"}
RESULTS=${BENCH_RESULTS:-$BENCH/results}
PY=/usr/bin/python3
GO=${GO:-/usr/local/go/bin/go}
[ -x "$GO" ] || GO=$(command -v go || echo /usr/local/go/bin/go)
GOREPLAY_VERSION=${GOREPLAY_VERSION:-v1.3.2}
GOREPLAY=${GOREPLAY:-$HOME/go/bin/goreplay}

log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (network namespaces, BPF)"

if [ "${BENCH_NO_SETUP:-0}" != 1 ]; then
	scripts/setup.sh || die "scripts/setup.sh failed"
	make --no-print-directory all || log "make failed: shadowtap rows will say so"
fi

TMP=$(mktemp -d /tmp/shadowtap-bench.XXXXXX)
SFX=$$
NS_C=stb-cli-$SFX NS_A=stb-a-$SFX NS_B=stb-b-$SFX
A_IP=198.18.30.1 C_IP=198.18.30.2 A2_IP=198.18.31.1 B_IP=198.18.31.2
PIN=/sys/fs/bpf/shadowtap-bench-$SFX
PIDS=()
OLD_BPF_STATS=$(sysctl -n kernel.bpf_stats_enabled 2>/dev/null || echo 0)

cleanup() {
	local p n
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	sleep 0.3
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
	for n in "$NS_C" "$NS_A" "$NS_B"; do
		ip netns pids "$n" 2>/dev/null | xargs -r kill -9 2>/dev/null
		ip netns del "$n" 2>/dev/null
	done
	rm -rf "$PIN"
	sysctl -qw kernel.bpf_stats_enabled="$OLD_BPF_STATS" 2>/dev/null
	[ -n "${BENCH_KEEP_TMP:-}" ] || rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- tools
mkdir -p "$OUT/bench" "$RESULTS"
LOADGEN=$OUT/bench/loadgen
if [ ! -x "$LOADGEN" ] || [ -n "$(find "$BENCH/loadgen" -newer "$LOADGEN" -name '*.go' 2>/dev/null)" ]; then
	(cd "$BENCH/loadgen" && CGO_ENABLED=0 "$GO" build -o "$ROOT/$LOADGEN" .) || die "loadgen build failed"
fi
LOADGEN=$ROOT/$LOADGEN
BARE=$ROOT/$OUT/bench/replay_bare
if [[ " ${TOOLS:-} " == *" replay-bare "* ]] && { [ ! -x "$BARE" ] || [ "$BENCH/replay_bare.c" -nt "$BARE" ]; }; then
	cc -O2 -Wall -Wextra -Werror -o "$BARE" "$BENCH/replay_bare.c" -lm || die "replay_bare build failed"
fi

NOTES=()
if [[ " $TOOLS " == *" goreplay"* ]] && [ ! -x "$GOREPLAY" ] && [ "${BENCH_GOREPLAY_BUILD:-1}" = 1 ]; then
	log "building GoReplay $GOREPLAY_VERSION (cached in ~/go/bin)"
	if ! CGO_ENABLED=1 timeout "$GOREPLAY_BUILD_TIMEOUT" "$GO" install "github.com/buger/goreplay@$GOREPLAY_VERSION" >"$TMP/gor-build.log" 2>&1; then
		NOTES+=("goreplay: $GOREPLAY_VERSION build failed: $(tail -1 "$TMP/gor-build.log")")
	fi
fi
if [ -n "${BENCH_ST_OLD_COMMIT:-}" ] && [ -z "${BENCH_ST_OLD:-}" ]; then
	old_rev=$(git -C "$ROOT" rev-parse --short=7 "${BENCH_ST_OLD_COMMIT}^{commit}" 2>/dev/null) ||
		die "BENCH_ST_OLD_COMMIT=$BENCH_ST_OLD_COMMIT: no such commit"
	BENCH_ST_OLD=$ROOT/$OUT/bench/shadowtap-$old_rev
	if [ ! -x "$BENCH_ST_OLD" ]; then
		log "building shadowtap at $old_rev for the -old rows"
		mkdir -p "$TMP/old-src"
		if git -C "$ROOT" archive "$old_rev" | tar -x -C "$TMP/old-src" &&
			make -C "$TMP/old-src" -j2 all >"$TMP/old-build.log" 2>&1; then
			cp "$TMP/old-src/build/shadowtap" "$BENCH_ST_OLD"
		else
			NOTES+=("shadowtap-old: build of $old_rev failed: $(tail -1 "$TMP/old-build.log")")
		fi
	fi
fi
[ -n "${BENCH_ST_OLD:-}" ] && NOTES+=("-old rows: $BENCH_ST_OLD${old_rev:+ (commit $old_rev)}")
ST_BIN=$ROOT/$OUT/shadowtap
[ -x "$ST_BIN" ] || NOTES+=("shadowtap: build/shadowtap not built; rows skipped")
if [ -x "$GOREPLAY" ]; then
	NOTES+=("goreplay: $GOREPLAY_VERSION ($GOREPLAY), built with $("$GO" version | awk '{print $3}'); flags: --input-raw sta0:80 --input-raw-engine libpcap (goreplay, goreplay-nosnap) or raw_socket (goreplay-raw) --input-raw-override-snaplen (all but goreplay-nosnap) --input-raw-buffer-size 32mb --input-raw-buffer-timeout 50ms --output-http http://$B_IP:81 --output-http-workers 64 --output-http-queue-len 10000 --output-http-timeout 5s --stats --output-http-stats")
else
	NOTES+=("goreplay: not built; rows skipped")
fi
if ! "$PY" -c 'import matplotlib' 2>/dev/null; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-matplotlib \
		>/dev/null 2>&1 || NOTES+=("plots: python3-matplotlib not installed")
fi

# ---------------------------------------------------------------- topology
ns_up() { ip netns add "$1" && ip -n "$1" link set lo up; }
link() { # ns1 if1 addr1 ns2 if2 addr2
	ip link add "$2" netns "$1" type veth peer name "$5" netns "$4" || return 1
	ip -n "$1" addr add "$3/24" dev "$2" && ip -n "$4" addr add "$6/24" dev "$5"
	ip -n "$1" link set "$2" up && ip -n "$4" link set "$5" up
}
ns_up "$NS_C" && ns_up "$NS_A" && ns_up "$NS_B" || die "cannot create namespaces"
link "$NS_C" stc0 "$C_IP" "$NS_A" sta0 "$A_IP" || die "veth client-serverA failed"
link "$NS_A" sta1 "$A2_IP" "$NS_B" stb0 "$B_IP" || die "veth serverA-serverB failed"
for n in "$NS_C" "$NS_A" "$NS_B"; do
	ip netns exec "$n" sysctl -qw net.ipv4.ip_local_port_range="10000 65000" net.ipv4.tcp_tw_reuse=1 \
		net.core.somaxconn=8192 net.ipv4.tcp_max_syn_backlog=8192
done

# nginx_conf_bench DIR NAME PORT MIRROR: MIRROR=1 adds nginx `mirror` of every
# request (with its body) to serverB. The answer is a static file, served in the
# content phase: `return` would answer before the mirror runs. POSTs to a static
# file get 405, turned into the same 200 answer by error_page.
nginx_conf_bench() {
	local dir=$1 name=$2 port=$3 mirror=${4:-0} m=""
	local tls=""   # serverA: https on 443 too (the HTTPS rows)
	[ "$port" = 80 ] && [ -s "$TMP/cert.pem" ] && tls="listen 443 ssl reuseport backlog=8192;
		ssl_certificate $TMP/cert.pem; ssl_certificate_key $TMP/key.pem;"
	mkdir -p "$dir/html"
	printf '{"server":"%s","items":[1,2,3,4,5,6,7,8],"note":"benchmark response body of a typical small JSON API"}\n' \
		"$name" >"$dir/html/index.json"
	[ "$mirror" = 1 ] && m="mirror /_mirror; mirror_request_body on;"
	# user root: the worker reads the answer file from the run's 0700 temp directory
	NGINX_WORKER_CONNECTIONS=16384 nginx_conf "$dir" "$(cat <<NGX
	keepalive_timeout 120s;
	client_body_buffer_size 512k;
	upstream serverb { server $B_IP:81; keepalive 64; }
	server {
		listen 127.0.0.1:8080;
		location /status { stub_status; }
	}
	server {
		listen $port reuseport backlog=8192;
		$tls
		root $dir/html;
		default_type application/json;
		error_page 405 =200 /index.json;
		location / { $m try_files /index.json =404; }
		location = /index.json { }
		location = /_mirror {
			internal;
			proxy_pass http://serverb\$request_uri;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
		}
	}
NGX
)" "user root;"
}

nginx_start() { # ns name port
	local ns=$1 name=$2 port=$3 dir=$TMP/nginx-$2
	nginx_conf_bench "$dir" "$name" "$port" 0
	ip netns exec "$ns" nginx -c "$dir/nginx.conf" -p "$dir" || return 1
	for _ in $(seq 1 50); do [ -s "$dir/nginx.pid" ] && break; sleep 0.1; done
	PIDS+=("$(cat "$dir/nginx.pid")")
}

# serverA_mirror 0|1: reload serverA with or without the mirror to serverB; returns
# once the old worker has gone (its replacement serves the new configuration)
SERVERA_MIRROR=0
serverA_mirror() {
	local dir=$TMP/nginx-serverA old i
	[ "$1" = "$SERVERA_MIRROR" ] && return 0
	old=$(pgrep -P "$(cat "$dir/nginx.pid")" | sort | tr '\n' ' ')
	nginx_conf_bench "$dir" serverA 80 "$1"
	ip netns exec "$NS_A" nginx -c "$dir/nginx.conf" -p "$dir" -s reload || return 1
	for i in $(seq 1 100); do
		[ "$(pgrep -P "$(cat "$dir/nginx.pid")" | sort | tr '\n' ' ')" != "$old" ] && {
			SERVERA_MIRROR=$1; sleep 0.2; return 0; }
		sleep 0.1
	done
	return 1
}
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$TMP/key.pem" -out "$TMP/cert.pem" -days 2 \
	-subj /CN=serverA 2>/dev/null || NOTES+=("https: cannot make a certificate: the https rows fail")
nginx_start "$NS_A" serverA 80 || die "serverA nginx did not start"
nginx_start "$NS_B" serverB 81 || die "serverB nginx did not start"

# stub_status "requests" counts the status request itself: every read of serverB's
# counter is counted in B_POLLS and taken off the replayed count.
B_POLLS=0
stub_requests() { # ns
	ip netns exec "$1" curl -s --max-time 3 http://127.0.0.1:8080/status | awk 'NR==3 {print $3}'
}
stub_b() { # var
	local v
	v=$(stub_requests "$NS_B")
	B_POLLS=$((B_POLLS + 1))
	printf -v "$1" '%s' "$v"
}

sysctl -qw kernel.bpf_stats_enabled=1 2>/dev/null || NOTES+=("bpf stats: kernel.bpf_stats_enabled not settable")

# ---------------------------------------------------------------- one run
TOOL_PID=
tool_start() { # tool log usage-json
	local tool=$1 tlog=$2 use=$3 i
	TOOL_PID=
	serverA_mirror "$([ "$tool" = none-mirror ] && echo 1 || echo 0)" || return 1
	case $tool in
	none | none-b | none-loaded | none-mirror | replay-bare) return 0 ;;
	shadowtap*)
		local bin=$ST_BIN
		local mode=socket replay=(-r "http://$B_IP:81") wk=() oldargs=""
		if [[ $tool == *-old ]]; then bin=${BENCH_ST_OLD:-}; tool=${tool%-old}; oldargs=${BENCH_ST_OLD_ARGS:-}; fi
		[ -x "$bin" ] || return 2
		rm -rf "$PIN"
		# -wN: the same row with --workers N (shadowtap-w2, shadowtap-capture-w2)
		if [[ $tool =~ ^(.*)-w([0-9]+)$ ]]; then tool=${BASH_REMATCH[1]}; wk=(--workers "${BASH_REMATCH[2]}"); fi
		case $tool in
		shadowtap-tc) mode=tc ;;
		shadowtap-xdp) mode=xdp ;;
		shadowtap-capture) replay=() ;;
		esac
		ip netns exec "$NS_A" "$LOADGEN" exec -o "$use" -- "$bin" -i sta0 -p 80 --capture "$mode" \
			"${replay[@]}" -o /dev/null --pin-dir "$PIN" "${wk[@]}" ${BENCH_ST_ARGS:-} $oldargs 2>"$tlog" &
		TOOL_PID=$!
		for i in $(seq 1 100); do
			grep -q "capturing TCP" "$tlog" 2>/dev/null && return 0
			kill -0 "$TOOL_PID" 2>/dev/null || return 1
			sleep 0.1
		done
		return 1 ;;
	goreplay | goreplay-nosnap | goreplay-raw)
		[ -x "$GOREPLAY" ] || return 2
		local engine=libpcap snap=--input-raw-override-snaplen
		[ "$tool" = goreplay-raw ] && engine=raw_socket
		# without it libpcap cuts every packet at MTU+200 bytes while veth hands over
		# 64 KiB GSO segments; goreplay-nosnap is the labelled row without it
		[ "$tool" = goreplay-nosnap ] && snap=
		# Tuned: a 32 MiB capture buffer (the default ~2 MiB drops under load), a
		# 50 ms pcap buffer timeout (the default 2 s holds the tail of a run past
		# its drain), up to 64 replay workers and a deeper output queue so replay
		# latency does not back up into capture.
		ip netns exec "$NS_A" "$LOADGEN" exec -o "$use" -- "$GOREPLAY" \
			--input-raw sta0:80 --input-raw-engine "$engine" $snap --input-raw-buffer-size 32mb --input-raw-buffer-timeout 50ms \
			--output-http "http://$B_IP:81" --output-http-workers 64 \
			--output-http-queue-len 10000 --output-http-timeout 5s ${BENCH_GOR_ARGS:-} \
			--stats --output-http-stats --output-http-stats-ms 1000 2>"$tlog" >/dev/null &
		TOOL_PID=$!
		sleep 1.5
		kill -0 "$TOOL_PID" 2>/dev/null || return 1
		return 0 ;;
	tcpdump)
		ip netns exec "$NS_A" "$LOADGEN" exec -o "$use" -- tcpdump -i sta0 -n -s 0 -B 32768 \
			-w /dev/null tcp port 80 2>"$tlog" &
		TOOL_PID=$!
		for i in $(seq 1 50); do
			grep -q "listening on" "$tlog" 2>/dev/null && return 0
			kill -0 "$TOOL_PID" 2>/dev/null || return 1
			sleep 0.1
		done
		return 1 ;;
	esac
}

# BPF program stats of the running shadowtap, "run_cnt run_time_ns" summed over the
# programs it holds (bpftool 7.1 here cannot map programs to pids; fdinfo can).
bpf_prog_stats() {
	local child fd cnt=0 ns=0 c t
	child=$(pgrep -P "$TOOL_PID" | head -1)
	[ -n "$child" ] || return 0
	for fd in /proc/"$child"/fdinfo/*; do
		grep -q '^prog_id:' "$fd" 2>/dev/null || continue
		c=$(awk '$1 == "run_cnt:" {print $2}' "$fd"); t=$(awk '$1 == "run_time_ns:" {print $2}' "$fd")
		cnt=$((cnt + ${c:-0})); ns=$((ns + ${t:-0}))
	done
	echo "$cnt $ns"
}

# CPU the tool's process has used so far, in clock ticks (user+sys, every thread): read
# before the load and after the drain, so start-up (BPF load, GoReplay's init) and the
# exit summary are not charged to the requests.
CLK_TCK=$(getconf CLK_TCK)
tool_ticks() {
	local child
	[ -n "$TOOL_PID" ] || return 0
	child=$(pgrep -P "$TOOL_PID" | head -1)
	[ -n "$child" ] || return 0
	sed 's/^.*) //' "/proc/$child/stat" 2>/dev/null | awk '{print $12 + $13}'
}

tool_stop() {
	local i
	[ -n "$TOOL_PID" ] || return 0
	kill -INT "$TOOL_PID" 2>/dev/null
	for i in $(seq 1 300); do
		kill -0 "$TOOL_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$TOOL_PID" 2>/dev/null && { log "tool did not exit: killing"; kill -9 "$TOOL_PID"; }
	wait "$TOOL_PID" 2>/dev/null
	TOOL_PID=
}

# none-loaded's serverB load: loadgen in serverA's namespace (its packets leave by
# sta1 to serverB:81; every tool captures sta0 port 80 and none runs in this row
# anyway), following serverA's stub_status so serverB gets what serverA serves, when it
# serves it. Started after the run's first read of serverA (which it would count).
B_TOL_PCT=10
FOLLOW_PID=
# the rows whose serverB load is a follower (none-loaded's loadgen, replay-bare's C
# client): their cpu_s is the follower's, from its JSON (report.py: FOLLOWERS)
is_follower() { [[ $1 == none-loaded || $1 == replay-bare ]]; }
follow_start() { # mix rep json err
	local i
	if [ "${5:-}" = replay-bare ]; then
		ip netns exec "$NS_A" "$BARE" -b "$B_IP:81" -follow 127.0.0.1:8080 -mix "${1#https-}" \
			${BENCH_BARE_ARGS:-} >"$3" 2>"$4" &
	else
		ip netns exec "$NS_A" "$LOADGEN" load -url "http://$B_IP:81" -mix "${1#https-}" \
			-follow http://127.0.0.1:8080/status -duration 600s -seed "$((1000 + $2))" \
			${BENCH_LOADGEN_ARGS:-} >"$3" 2>"$4" &
	fi
	FOLLOW_PID=$!
	for i in $(seq 1 100); do
		grep -qE "^(loadgen|replay_bare): following" "$4" 2>/dev/null && return 0
		kill -0 "$FOLLOW_PID" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}
# stop it once the client load has ended: it reads serverA's final count, sends what
# it still owes (at most 30 s) and prints its JSON
follow_stop() {
	local i
	[ -n "$FOLLOW_PID" ] || return 0
	kill -INT "$FOLLOW_PID" 2>/dev/null
	for i in $(seq 1 300); do
		kill -0 "$FOLLOW_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$FOLLOW_PID" 2>/dev/null && { log "serverB load did not finish: killing"; kill -9 "$FOLLOW_PID"; }
	wait "$FOLLOW_PID" 2>/dev/null
	FOLLOW_PID=
}
# jfield FILE KEY: one number from a loadgen JSON, empty when absent
jfield() { "$PY" -c 'import json,sys
try: print(json.load(open(sys.argv[1])).get(sys.argv[2], ""))
except Exception: print("")' "$1" "$2"; }

settle() {
	local prev cur i
	sleep "$SETTLE"
	stub_b prev
	for i in $(seq 1 16); do
		sleep 0.5
		stub_b cur
		[ "$cur" = $((prev + 1)) ] && return 0
		prev=$cur
	done
}

RAW=$RESULTS/runs.csv
LOGS=$ROOT/$OUT/bench/logs
rm -rf "$LOGS"
mkdir -p "$LOGS"
echo "repeat,tool,mix,offered_rps,served_rps,p50_ms,p99_ms,sent,ok,errors,served_a,captured,replayed,after_stop,drops,cpu_s,bpf_cpu_s,rss_mb,bpf_runs,bpf_ns_per_pkt,win_cpu_s,win_served_a,mb_out,status" >"$RAW"

run_one() { # repeat tool mix rate
	local rep=$1 tool=$2 mix=$3 rate=$4 id tlog use lj a0 b0 a1 b1 bs r status=ok
	local captured= replayed= after= drops= cpu= rss= bruns= bns= lrate
	local k0= k1= bruns0=0 bns0=0 wa0= wa1= win=
	id=$rep-$tool-$mix-$rate
	local t_run=$SECONDS
	tlog=$TMP/$id.tool.log use=$TMP/$id.usage.json lj=$TMP/$id.load.json
	lrate=$rate; [ "$rate" = max ] && lrate=0
	tool_start "$tool" "$tlog" "$use"; r=$?
	if [ $r = 2 ]; then
		echo "$rep,$tool,$mix,$rate,,,,,,,,,,,,,,,,,,,,not built" >>"$RAW"; return
	elif [ $r != 0 ]; then
		log "$id: tool did not start: $(tail -2 "$tlog" | tr '\n' ' ')"
		tool_stop
		echo "$rep,$tool,$mix,$rate,,,,,,,,,,,,,,,,,,,,start failed" >>"$RAW"; return
	fi
	a0=$(stub_requests "$NS_A"); stub_b b0; B_POLLS=0
	local fj=$TMP/$id.follow.json fpolls=0
	if is_follower "$tool" && ! follow_start "$mix" "$rep" "$fj" "$TMP/$id.follow.err" "$tool"; then
		status="serverB load did not start"
		log "$id: $status: $(tail -2 "$TMP/$id.follow.err" | tr '\n' ' ')"
	fi
	k0=$(tool_ticks)
	[[ $tool == shadowtap* ]] && read -r bruns0 bns0 < <(bpf_prog_stats)
	wa0=$a0
	local perfpid=
	if [ -n "${BENCH_PERF:-}" ] && [[ $tool == shadowtap* || ($tool == replay-bare && -n $FOLLOW_PID) ]]; then
		mkdir -p "$BENCH_PERF"
		# replay-bare: ip netns exec execs the client, so FOLLOW_PID is its pid
		( if [ "$tool" = replay-bare ]; then c=$FOLLOW_PID; else c=$(pgrep -P "$TOOL_PID" | head -1); fi
		  perf stat -e task-clock,cycles,instructions,context-switches,page-faults${BENCH_PERF_EVENTS:+,$BENCH_PERF_EVENTS} -p "$c" \
			-o "$BENCH_PERF/$id.stat" -- sleep "$DURATION" &
		  perf record -q ${BENCH_PERF_CG:+--call-graph $BENCH_PERF_CG} -g -p "$c" -o "$BENCH_PERF/$id.data" -- sleep "$DURATION" >/dev/null 2>&1
		  wait ) &
		perfpid=$!
	fi
	ip netns exec "$NS_C" "$LOADGEN" load -url "$(mix_url "$mix")" -mix "${mix#https-}" -rate "$lrate" \
		-duration "${DURATION}s" -seed "$rep" ${BENCH_LOADGEN_ARGS:-} >"$lj" 2>"$TMP/$id.load.err" || status="loadgen failed"
	# The one drain rule: every tool gets the same time to catch up after the load
	# (until serverB's count stops moving, at most 8 s), and replayed is read then,
	# before any signal. GoReplay does not drain on SIGINT and shadowtap does, so
	# counting after the stop would favour shadowtap: that part is after_stop.
	[ -n "$perfpid" ] && wait "$perfpid"
	if [ -n "$FOLLOW_PID" ]; then
		follow_stop
		fpolls=$(jfield "$fj" follow_polls)
		cpu=$(jfield "$fj" cpu_s)
		[ -n "$fpolls" ] || { status="serverB load failed"; fpolls=0; log "$id: $status: $(tail -2 "$TMP/$id.follow.err" | tr '\n' ' ')"; }
	fi
	# rows without a serverB count (nothing replays) skip the drain wait: the tool's
	# CPU window still runs SETTLE past the load, for a capture-only tool's backlog
	case $tool in none | none-b | tcpdump | shadowtap-capture*) sleep "$SETTLE" ;; *) settle ;; esac
	stub_b bs
	replayed=$((bs - b0 - B_POLLS))
	if [[ $tool == shadowtap* ]]; then
		read -r bruns bns < <(bpf_prog_stats)
	fi
	k1=$(tool_ticks)
	wa1=$(stub_requests "$NS_A")
	# the load window (load + drain): the tool's CPU ticks, plus for shadowtap its BPF
	# programs' run time over the same window, and the requests serverA served in it
	if [ -n "$k0" ] && [ -n "$k1" ]; then
		win=$(awk -v a="$k0" -v b="$k1" -v t="$CLK_TCK" -v n0="${bns0:-0}" -v n1="${bns:-0}" \
			'BEGIN {printf "%.3f", (b - a) / t + (n1 - n0) / 1e9}')
	fi
	if [ -n "$TOOL_PID" ] && ! kill -0 "$TOOL_PID" 2>/dev/null; then
		status="tool exited during the run"
		log "$id: $status: $(grep -v -e DEBUG -e output_http "$tlog" | tail -2 | tr '\n' ' ')"
	fi
	tool_stop
	sleep 0.3
	a1=$(stub_requests "$NS_A"); stub_b b1
	case $tool in
	shadowtap*)
		captured=$(grep -oE '^http: requests=[0-9]+' "$tlog" | tail -1 | cut -d= -f2)
		drops=$(grep -oE 'ringbuf_full=[0-9]+' "$tlog" | tail -1 | cut -d= -f2)
		[ -n "$captured" ] || status="no exit summary" ;;
	goreplay*)
		# output_http:latest,mean,max,count,... per 1 s window (count resets; the
		# period must be a multiple of 1000 ms or GoReplay divides by zero)
		captured=$(grep -oE 'output_http:[0-9]+,[0-9]+,[0-9]+,[0-9]+' "$tlog" |
			awk -F, '{s += $4} END {print s + 0}') ;;
	tcpdump)
		captured=$(grep -oE '^[0-9]+ packets captured' "$tlog" | awk '{print $1}')
		drops=$(grep -oE '^[0-9]+ packets dropped by kernel' "$tlog" | awk '{print $1}') ;;
	esac
	after=$((b1 - bs - 1))
	case $tool in shadowtap-capture*) replayed= after= ;; shadowtap* | goreplay* | none-mirror | none-loaded | replay-bare) ;; *) replayed= after= ;; esac
	# serverA's count between the reads a0 and a1 holds the client's requests, the
	# window read wa1 and a1 itself (stub_status counts the request reading it), and
	# for none-loaded the follower's status reads: none of them the client's
	local served_a=$((a1 - a0 - 2 - fpolls))
	if is_follower "$tool" && [ "$status" = ok ]; then
		# the baseline's own check (tolerance fixed before any run): serverB got what
		# serverA served, within B_TOL_PCT; report.py flags the row otherwise
		if [ "$served_a" -le 0 ] || [ $((100 * (replayed > served_a ? replayed - served_a : served_a - replayed))) -gt $((B_TOL_PCT * served_a)) ]; then
			log "$id: WARNING serverB count $replayed vs serverA $served_a: outside ${B_TOL_PCT}%"
		fi
	fi
	if [ -s "$use" ] && ! is_follower "$tool"; then
		cpu=$("$PY" -c 'import json,sys; print("%.3f" % json.load(open(sys.argv[1]))["cpu_s"])' "$use")
		rss=$("$PY" -c 'import json,sys; print("%.1f" % (json.load(open(sys.argv[1]))["maxrss_kb"] / 1024))' "$use")
	fi
	local bnp= mbo=
	# replay-bare's bytes are its own (the mix's sizes, drawn by its own generator)
	[ "$tool" = replay-bare ] && mbo=$(jfield "$fj" mb_out)
	[ -n "$bruns" ] && [ "$bruns" -gt 0 ] 2>/dev/null && bnp=$((bns / bruns))
	MB_OUT=$mbo "$PY" - "$lj" "$rep" "$tool" "$mix" "$rate" "$served_a" "$captured" "$replayed" "$after" \
		"$drops" "$cpu" "$rss" "$bruns" "$bns" "$bnp" "$win" "$((wa1 - wa0 - 1))" "$status" >>"$RAW" <<'PYEOF'
import json, os, sys
(lj, rep, tool, mix, rate, served_a, cap, rep_b, after, drops, cpu, rss, bruns, bns, bnp,
 win, win_a, status) = sys.argv[1:]
# cpu_s is the tool's whole process tree (rusage of the child loadgen waited for:
# every thread, and children it reaped) plus, for shadowtap, its BPF programs' kernel
# time (run_time_ns with kernel.bpf_stats_enabled), which no rusage sees.
bpf_cpu = ""
if bns not in ("", "0") and tool.startswith("shadowtap"):
    bpf_cpu = "%.3f" % (int(bns) / 1e9)
    if cpu:
        cpu = "%.3f" % (float(cpu) + int(bns) / 1e9)
try:
    d = json.load(open(lj))
except Exception:
    d = {}
if os.environ.get("MB_OUT"):
    d["mb_out"] = float(os.environ["MB_OUT"])
def f(k, fmt="%.1f"):
    return fmt % d[k] if k in d else ""
print(",".join([rep, tool, mix, rate, f("served_rps"), f("p50_ms", "%.3f"), f("p99_ms", "%.3f"),
                f("sent", "%d"), f("ok", "%d"), f("errors", "%d"), served_a, cap, rep_b, after, drops,
                cpu, bpf_cpu, rss, bruns, bnp, win, win_a if win else "", f("mb_out", "%.3f"), status]))
PYEOF
	# keep the tool's own summary for reading later (GoReplay's stats lines aside)
	[ -s "$tlog" ] && grep -v -e DEBUG -e output_http "$tlog" | tail -2000 >"$LOGS/$id.log"
	# and the serverB follower's JSON (none-loaded, replay-bare: writes, reads, user/sys)
	[ -s "$fj" ] && cp "$fj" "$LOGS/$id.follow.json"
	log "$id ($((SECONDS - t_run)) s): $(tail -1 "$RAW")"
}

# ---------------------------------------------------------------- HTTPS rows
mix_url() { [[ $1 == https-* ]] && echo "https://$A_IP:443" || echo "http://$A_IP:80"; }

# na_row repeat tool mix rate STATUS: a row with nothing but its status, as wide as the header
na_row() {
	local n row="$1,$2,$3,$4" i
	n=$(head -1 "$RAW" | tr ',' '\n' | wc -l)
	for ((i = 5; i < n; i++)); do row+=","; done
	echo "$row,$5" >>"$RAW"
}

https_run_one() { # repeat tool mix rate
	local saved=${BENCH_ST_ARGS:-}
	case $2 in
	goreplay*)
		na_row "$@" "cannot capture HTTPS (it sees only encrypted TLS records; needs a TLS-terminating proxy)"
		return ;;
	tcpdump) na_row "$@" "not run: captures only encrypted bytes"; return ;;
	esac
	BENCH_ST_ARGS="$saved --tls openssl --tls-port 443"
	run_one "$@"
	BENCH_ST_ARGS=$saved
}

# ---------------------------------------------------------------- ratio mode
# BENCH_PAIRS=N (deploy/bench/ratio.sh sets it): instead of the matrix, serverA's
# requests/s with each tool over without it, in short back-to-back windows of
# BENCH_DURATION s at BENCH_RATIO_RATE (default max: closed loop), ABBA order:
#   none  T1 T1  none  T2 T2  none ...   (tool order rotated every round)
# each tool window paired with its adjacent none window (the one before for the
# first, the one after for the second), so a linear drift adds to one pair of a block
# and subtracts from the other; N pairs per tool (N/2 blocks, rounded up). The tool is
# started before its two windows and stopped (drained) after them; none-b starts
# nothing: its ratio is the noise floor. One discarded warm-up window per mix.
# Writes ratio_runs.csv (every window); ratio.py turns it into ratio.csv and ratio.md.
ratio_window() { # mix seed json: one load window, prints served_rps (empty on failure)
	local lrate=${BENCH_RATIO_RATE:-max}
	[ "$lrate" = max ] && lrate=0
	ip netns exec "$NS_C" "$LOADGEN" load -url "$(mix_url "$1")" -mix "${1#https-}" -rate "$lrate" \
		-duration "${DURATION}s" -seed "$2" ${BENCH_LOADGEN_ARGS:-} >"$3" 2>"$3.err" || return 1
	jfield "$3" served_rps
}
ratio_mode() {
	local PRAW=$RESULTS/ratio_runs.csv mix blocks r k t slot seed rps ok st captured tlog use j b0 b1
	local -a list
	read -ra list <<<"$TOOLS"
	blocks=$(((BENCH_PAIRS + 1) / 2))
	echo "mix,round,slot,tool,block,pos,served_rps,ok,captured,replayed_b,load1,time,status" >"$PRAW"
	# row mix round slot tool block pos rps ok captured replayed status
	row() { echo "$1,$2,$3,$4,$5,$6,$7,$8,$9,${10},$(cut -d' ' -f1 /proc/loadavg),$(date +%s.%N | cut -c1-14),${11}" >>"$PRAW"; }
	for mix in $MIXES; do
		slot=0 seed=100
		ratio_window "$mix" "$seed" "$TMP/ratio-warm.json" >/dev/null   # warm-up, not used
		sleep "$SETTLE"
		none_w() { # round
			seed=$((seed + 1)) slot=$((slot + 1))
			rps=$(ratio_window "$mix" "$seed" "$TMP/ratio-$mix-$slot.json") && st=ok || st="loadgen failed"
			row "$mix" "$1" "$slot" none "" "" "$rps" "$(jfield "$TMP/ratio-$mix-$slot.json" ok)" "" "" "$st"
			sleep "$SETTLE"
		}
		for r in $(seq 1 "$blocks"); do
			[ "$r" = 1 ] && none_w "$r"
			for k in $(seq 0 $((${#list[@]} - 1))); do
				t=${list[$(((k + r - 1) % ${#list[@]}))]}
				tlog=$TMP/ratio-$mix-$r-$t.tool.log use=$TMP/ratio-$mix-$r-$t.usage.json
				stub_b b0
				tool_start "$t" "$tlog" "$use"; st=$?
				case $st in 0) st=ok ;; 2) st="not built" ;; *) st="start failed" ;; esac
				local -a got=() oks=()
				for pos in a b; do
					seed=$((seed + 1)) slot=$((slot + 1))
					j=$TMP/ratio-$mix-$slot.json rps=
					if [ "$st" = ok ]; then
						rps=$(ratio_window "$mix" "$seed" "$j") || st="loadgen failed"
					fi
					got+=("$rps") oks+=("$(jfield "$j" ok 2>/dev/null)")
				done
				if [ -n "$TOOL_PID" ] && ! kill -0 "$TOOL_PID" 2>/dev/null; then st="tool exited during the run"; fi
				tool_stop
				stub_b b1
				captured=
				case $t in
				shadowtap*) captured=$(grep -oE '^http: requests=[0-9]+' "$tlog" 2>/dev/null | tail -1 | cut -d= -f2) ;;
				tcpdump) captured=$(grep -oE '^[0-9]+ packets captured' "$tlog" 2>/dev/null | awk '{print $1}') ;;
				esac
				[ "$st" = ok ] || log "ratio $mix $r $t: $st: $(tail -2 "$tlog" 2>/dev/null | tr '\n' ' ')"
				row "$mix" "$r" "$((slot - 1))" "$t" "$r" a "${got[0]}" "${oks[0]}" "" "" "$st"
				# the block's capture count and serverB's count (less the two reads) on its second row
				row "$mix" "$r" "$slot" "$t" "$r" b "${got[1]}" "${oks[1]}" "$captured" "$((b1 - b0 - 1))" "$st"
				sleep "$SETTLE"
				none_w "$r"
			done
			log "ratio $mix: round $r of $blocks done ($(cut -d' ' -f1-3 /proc/loadavg))"
		done
	done
}
if [ -n "${BENCH_PAIRS:-}" ]; then
	[[ $BENCH_PAIRS =~ ^[1-9][0-9]*$ ]] || die "BENCH_PAIRS=$BENCH_PAIRS: want a positive number"
	NOTES+=("run: $(env | grep '^BENCH_' | grep -v -e '^BENCH_RESULTS=' -e '^BENCH_NO_SETUP=' -e '^BENCH_GOREPLAY_BUILD=' | sort | tr '\n' ' ')deploy/bench/run.sh $MODE (ratio mode); tools: $TOOLS; mixes: $MIXES")
	LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
	t0=$(date +%s)
	ratio_mode
	NOTES+=("windows took $(($(date +%s) - t0)) s; load average (1, 5, 15 min) at the start $LOAD0, at the end $(cut -d' ' -f1-3 /proc/loadavg)")
	printf '%s\n' "${NOTES[@]}" >"$TMP/notes.txt"
	"$PY" "$BENCH/ratio.py" --runs "$RESULTS/ratio_runs.csv" --out "$RESULTS" --duration "$DURATION" \
		--rate "${BENCH_RATIO_RATE:-max}" --notes "$TMP/notes.txt" || die "ratio report failed"
	log "results in $RESULTS/ratio.md"
	exit 0
fi

# ---------------------------------------------------------------- the matrix
# what was run and how busy the machine was, for latest.md (and readme_table.py)
NOTES+=("run: $(env | grep '^BENCH_' | grep -v -e '^BENCH_RESULTS=' -e '^BENCH_NO_SETUP=' -e '^BENCH_GOREPLAY_BUILD=' | sort | tr '\n' ' ')deploy/bench/run.sh $MODE; tools: $TOOLS; https tools: $HTTPS_TOOLS")
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
read -ra TOOL_LIST <<<"$TOOLS"
nt=${#TOOL_LIST[@]}
t0=$(date +%s)
for rep in $(seq 1 "$REPEATS"); do
	for mix in $MIXES; do
		rates=$RATES_GET; [ "$mix" = post ] && rates=$RATES_POST
		list=("${TOOL_LIST[@]}") run=run_one
		if [[ $mix == https-* ]]; then
			rates=$RATES_HTTPS_GET; [ "$mix" = https-post ] && rates=$RATES_HTTPS_POST
			read -ra list <<<"$HTTPS_TOOLS"
			run=https_run_one
		fi
		nt=${#list[@]}
		for rate in $rates; do
			# Interleave: every tool runs at this rate before the next rate, and the
			# order rotates with the repeat so no tool always runs first.
			for k in $(seq 0 $((nt - 1))); do
				$run "$rep" "${list[$(((k + rep - 1) % nt))]}" "$mix" "$rate"
			done
		done
	done
done
log "load runs took $(($(date +%s) - t0)) s"
NOTES+=("load runs took $(($(date +%s) - t0)) s; load average (1, 5, 15 min) at the start $LOAD0, at the end $(cut -d' ' -f1-3 /proc/loadavg)")

printf '%s\n' "${NOTES[@]}" >"$TMP/notes.txt"
"$PY" "$BENCH/report.py" --runs "$RAW" --out "$RESULTS" --mode "${MODE#--}" --duration "$DURATION" \
	--repeats "$REPEATS" --notes "$TMP/notes.txt" || die "report failed"
[[ " $MIXES " == *" https-"* ]] && { "$PY" "$BENCH/https_report.py" --runs "$RAW" --logs "$LOGS" \
	--out "$RESULTS/https.md" || log "https report failed"; }

if [ "$MICRO" = 1 ]; then
	"$BENCH/micro.sh" --out "$RESULTS/micro.md" || log "micro-benchmarks failed"
	"$BENCH/micro_diff.sh" --out "$RESULTS/micro_diff.md" || log "difference micro-benchmark failed"
fi
log "results in $RESULTS/latest.md"
