# Sourced by the test scripts, deploy/bench/run.sh and scripts/demo.sh.
# nginx_conf DIR SERVERS [MAIN]: write DIR/nginx.conf from nginx.conf.in beside this
# file; SERVERS are the server blocks (http context), MAIN main-context extras.
# NGINX_WORKER_CONNECTIONS (default 4096) sizes the events block; NGINX_ACCESS_LOG
# (default off) is the http-level access log (a server's own access_log overrides it).
ST_NGINX_TEMPLATE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/nginx.conf.in

nginx_conf() {
	local dir=$1 servers=$2 main=${3:-} t
	t=$(<"$ST_NGINX_TEMPLATE") || return 1
	# quoted replacements: literal, even with '&' (bash 5.2 patsub_replacement)
	t=${t//@SERVERS@/"$servers"}
	t=${t//@MAIN@/"$main"}
	t=${t//@WORKER_CONNECTIONS@/"${NGINX_WORKER_CONNECTIONS:-4096}"}
	t=${t//@ACCESS_LOG@/"${NGINX_ACCESS_LOG:-off}"}
	t=${t//@DIR@/"$dir"}
	mkdir -p "$dir" && printf '%s\n' "$t" > "$dir/nginx.conf"
}
