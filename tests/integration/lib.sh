# Shared helpers for integration tests (sourced). Hosts are network namespaces
# joined by veth, addressed from 198.18.0.0/15 (the benchmarking range).
ST_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$ST_ROOT/tests/nginx/conf.sh"
ST_BIN=${ST_BIN:-$ST_ROOT/build/shadowtap}
ST_TMP=$(mktemp -d /tmp/shadowtap-test.XXXXXX)
ST_NS=()
ST_PIDS=()

pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; }
skip() { echo "SKIP: $*"; }

st_cleanup() {
	local p n
	for p in "${ST_PIDS[@]}"; do kill "$p" 2>/dev/null; done
	sleep 0.2
	for p in "${ST_PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
	for n in "${ST_NS[@]}"; do
		ip netns pids "$n" 2>/dev/null | xargs -r kill -9 2>/dev/null
		ip netns del "$n" 2>/dev/null
	done
	[ -n "${ST_KEEP_TMP:-}" ] || rm -rf "$ST_TMP"
}
trap st_cleanup EXIT

st_need_root() {
	if [ "$(id -u)" != 0 ]; then skip "$1 (needs root)"; exit 0; fi
	if [ ! -x "$ST_BIN" ]; then skip "$1 (build/shadowtap not built)"; exit 0; fi
}

# st_go: the Go toolchain scripts/setup.sh uses (/usr/local/go, else PATH), or nothing
st_go() {
	if [ -x /usr/local/go/bin/go ]; then echo /usr/local/go/bin/go; else command -v go; fi
}

# st_poll SECS CMD...: run CMD every 0.1 s until it succeeds (0) or SECS pass (1).
# Used instead of fixed sleeps before assertions: a busy 2-core machine is slow.
st_poll() {
	local end=$(( $(date +%s%N) + ${1%.*} * 1000000000 )); shift
	until "$@"; do
		[ "$(date +%s%N)" -lt "$end" ] || return 1
		sleep 0.1
	done
}

# st_lines_ge FILE N: FILE has at least N lines
st_lines_ge() { [ "$(wc -l < "$1" 2>/dev/null || echo 0)" -ge "$2" ]; }

# st_ns NAME: a fresh namespace with lo up
st_ns() {
	ip netns del "$1" 2>/dev/null
	ip netns add "$1" && ST_NS+=("$1")
	ip -n "$1" link set lo up
}

# st_link NS1 IF1 ADDR1 NS2 IF2 ADDR2 (addresses with prefix, e.g. 198.18.0.1/24)
st_link() {
	ip link add "$2" netns "$1" type veth peer name "$5" netns "$4"
	ip -n "$1" addr add "$3" dev "$2"
	ip -n "$4" addr add "$6" dev "$5"
	ip -n "$1" link set "$2" up
	ip -n "$4" link set "$5" up
}

# st_nginx NS PORT NAME [extra server-block config]: starts nginx in NS; access log
# at $ST_TMP/NAME.access.log with the request line and the request length.
st_nginx() {
	local ns=$1 port=$2 name=$3 extra=${4:-} dir=$ST_TMP/nginx-$3
	mkdir -p "$dir/html/static"
	head -c 100000 /dev/urandom > "$dir/html/static/big.bin"
	for i in $(seq 1 400); do echo "line $i: the quick brown fox jumps over the lazy dog"; done > "$dir/html/static/text.txt"
	nginx_conf "$dir" "	server {
		listen $port reuseport backlog=4096;
		root $dir/html;
		access_log $ST_TMP/$name.access.log st;
		$extra
		location /static/ { }
		location / { return 200 \"hello from $name: \$request_uri\\n\"; }
	}"
	ip netns exec "$ns" nginx -c "$dir/nginx.conf" -p "$dir" || return 1
	for _ in $(seq 1 50); do [ -s "$dir/nginx.pid" ] && break; sleep 0.1; done
	ST_PIDS+=("$(cat "$dir/nginx.pid")")
}

# st_agent NS LOG ARGS...: start shadowtap in NS, wait until it captures. Sets ST_AGENT_PID.
st_agent() {
	local ns=$1 log=$2; shift 2
	if [ "$ns" = - ]; then
		"$ST_BIN" "$@" 2>"$log" &
	else
		ip netns exec "$ns" "$ST_BIN" "$@" 2>"$log" &
	fi
	ST_AGENT_PID=$!
	ST_PIDS+=("$ST_AGENT_PID")
	for _ in $(seq 1 100); do
		grep -q "capturing TCP" "$log" 2>/dev/null && return 0
		kill -0 "$ST_AGENT_PID" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# st_agent_stop: SIGINT, wait; sets ST_AGENT_RC (not in a subshell: wait needs the parent)
st_agent_stop() {
	kill -INT "$ST_AGENT_PID" 2>/dev/null
	wait "$ST_AGENT_PID"; ST_AGENT_RC=$?
}
