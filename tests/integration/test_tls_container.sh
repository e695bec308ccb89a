#!/usr/bin/env bash
# HTTPS from a server in a container, captured by the agent on the host: nginx from
# Debian's own package inside a podman container (its libssl3 is the image's file, not
# the host's) serves HTTPS on 443 in a network namespace; the agent, started on the
# host after it, finds the process listening on 443, opens the container's libssl
# through /proc/PID/root and captures curl's 50 keep-alive requests, replayed to a
# plain serverB (host nginx) in the same namespace. Oracles: curl's URLs, serverB's
# log (once, in order, one connection), the container's mount namespace.
. "$(dirname "$0")/lib.sh"
st_need_root "tls container"
NS=st-tlsc
IMG=localhost/shadowtap-tls-server:test
CTR=st-tlsc-$$

if [ ! -e /sys/bus/event_source/devices/uprobe/type ]; then skip "tls container: kernel has no uprobes"; exit 0; fi
for tool in podman openssl curl; do
	command -v $tool >/dev/null || { skip "tls container: $tool not installed"; exit 0; }
done
trap 'podman rm -f -t 0 "$CTR" >/dev/null 2>&1; st_cleanup' EXIT

# the image: Debian's nginx-light (linked to the image's libssl3); kept as a cache
if ! podman image exists "$IMG"; then
	mkdir -p "$ST_TMP/img"
	cat > "$ST_TMP/img/Containerfile" <<'EOF'
FROM debian:bookworm-slim
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends nginx-light >/dev/null && rm -rf /var/lib/apt/lists/*
EOF
	if ! timeout 300 podman build -q --network host -t "$IMG" "$ST_TMP/img" >"$ST_TMP/build.log" 2>&1; then
		skip "tls container: cannot build the server image ($(tail -1 "$ST_TMP/build.log"))"; exit 0
	fi
fi

mkdir -p "$ST_TMP/srv"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$ST_TMP/srv/key.pem" -out "$ST_TMP/srv/cert.pem" \
	-days 2 -subj /CN=shadowtap-container 2>/dev/null || { fail "tls container: cannot make a certificate"; exit 0; }
cat > "$ST_TMP/srv/nginx.conf" <<'EOF'
worker_processes 1;
pid /tmp/nginx.pid;
error_log stderr warn;
events { worker_connections 256; }
http {
	access_log off;
	keepalive_requests 10000;
	server {
		listen 443 ssl;
		ssl_certificate /srv/cert.pem;
		ssl_certificate_key /srv/key.pem;
		location / { return 200 "hello from the container: $request_uri\n"; }
	}
}
EOF
chmod -R a+rX "$ST_TMP/srv"

st_ns $NS
st_nginx $NS 81 serverB || { fail "tls container: serverB did not start"; exit 0; }
if ! podman run -d --name "$CTR" --network "ns:/run/netns/$NS" -v "$ST_TMP/srv:/srv:ro" "$IMG" \
	nginx -c /srv/nginx.conf -g 'daemon off;' >"$ST_TMP/run.log" 2>&1; then
	skip "tls container: podman cannot run the server ($(tail -1 "$ST_TMP/run.log"))"; exit 0
fi
st_poll 20 ip netns exec $NS curl -skf -o /dev/null https://127.0.0.1/ready \
	|| { fail "tls container: the containerised nginx does not answer ($(podman logs "$CTR" 2>&1 | tail -1))"; exit 0; }
CPID=$(podman inspect -f '{{.State.Pid}}' "$CTR")

rec=$ST_TMP/tls.ndjson log=$ST_TMP/agent.log
if ! st_agent $NS "$log" -i lo -p 80 --tls openssl --tls-port 443 -r http://127.0.0.1:81 \
	-o "$rec" --pin-dir /sys/fs/bpf/shadowtap-test-tlsc; then
	fail "tls container: agent did not start ($(tail -3 "$log" | tr '\n' ' '))"; exit 0
fi
st_poll 20 grep -q "tls: attached to .*libssl.* (server pid" "$log"
line=$(grep -m1 "tls: attached to .*libssl" "$log")
spid=$(sed -n 's/.*(server pid \([0-9]*\)).*/\1/p' <<<"$line")
if [ -n "$spid" ] && [ "$(readlink /proc/"$spid"/ns/mnt)" = "$(readlink /proc/"$CPID"/ns/mnt)" ] &&
	[ "$(readlink /proc/"$spid"/ns/mnt)" != "$(readlink /proc/self/ns/mnt)" ]; then
	pass "tls container: attached to the container's libssl ($line)"
else
	fail "tls container: not attached to a process of the container (${line:-no attach line}; container pid $CPID)"
	exit 0
fi

urls=()
for i in $(seq 1 50); do urls+=("https://127.0.0.1/ctr/$i"); done
ip netns exec $NS curl -sk --http1.1 "${urls[@]}" >"$ST_TMP/curl.out" 2>"$ST_TMP/curl.err" \
	&& [ "$(grep -c 'hello from the container' "$ST_TMP/curl.out")" = 50 ] \
	&& pass "tls container: curl got 50 answers on one connection" || fail "tls container: curl failed"
st_poll 30 st_lines_ge "$rec" 50
st_poll 30 st_lines_ge "$ST_TMP/serverB.access.log" 50
sleep 0.5
grep '/ctr/' "$rec" > "$ST_TMP/ctr.rec"
grep '/ctr/' "$ST_TMP/serverB.access.log" > "$ST_TMP/ctr.blog"
python3 "$ST_ROOT/tests/integration/tls_check.py" --name "tls container" --kind curl \
	--records "$ST_TMP/ctr.rec" --blog "$ST_TMP/ctr.blog" --expect 50 --prefix /ctr/

st_agent_stop
[ "$ST_AGENT_RC" = 0 ] && pass "tls container: SIGINT drains and exits 0" || fail "tls container: agent exit code $ST_AGENT_RC"
if grep -qE '^tls: .*unmapped_calls=0 .*gap_bytes=0 ' "$log"; then
	pass "tls container: every SSL call mapped to its connection, no byte lost"
else
	fail "tls container: unmapped calls or lost bytes ($(grep '^tls:' "$log" | tail -1))"
fi
