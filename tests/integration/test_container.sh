#!/bin/bash
# The agent's container image, for real: build deploy/docker/Dockerfile with podman,
# run it with only CAP_BPF, CAP_PERFMON and CAP_NET_RAW (--cap-drop all) in a network
# namespace holding serverA (nginx :80) and serverB (nginx :81), then check capture,
# replay, the HEALTHCHECK, that each capability is needed, and that `podman stop`
# (SIGTERM) drains and exits 0. Also runs the agent as a non-root user with the
# systemd unit's ambient capabilities. Slow (image build): SHADOWTAP_SKIP_CONTAINER=1
# skips the container part. The built image is kept as a build cache.
# Run as root from the repository root.

IMAGE=localhost/shadowtap:test
ID=sttc$$
NS=$ID
PIN=/sys/fs/bpf/$ID
CAPS="BPF,PERFMON,NET_RAW"
TMP=$(mktemp -d /tmp/shadowtap-container.XXXXXX)
. "$(dirname "$0")/../nginx/conf.sh"
NGINX_PIDS=""

pass() { echo "PASS: $1"; }
fail() { echo "FAIL: $1 ($2)"; }
skip() { echo "SKIP: $1 ($2)"; }

cleanup() {
	podman rm -f -t 0 "$ID" >/dev/null 2>&1
	podman rm -f -t 0 "$ID-neg" >/dev/null 2>&1
	for p in $NGINX_PIDS; do
		[ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null
	done
	ip netns pids "$NS" 2>/dev/null | xargs -r kill 2>/dev/null
	ip netns del "$NS" 2>/dev/null
	rm -f "$PIN/stats" 2>/dev/null
	rmdir "$PIN" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

AGENT=build/shadowtap
CONTAINER_CHECKS="podman base images;image build;image metadata;runtime image has no toolchain;seccomp profile;agent starts with only $CAPS;pin under /sys/fs/bpf;healthcheck;agent refuses without CAP_PERFMON;agent refuses without CAP_NET_RAW;agent runs with the ECS set SYS_ADMIN,NET_RAW and default seccomp;request captured;request replayed to serverB;podman stop exits 0 after draining;pin removed on exit"

skip_container() {
	local IFS=';'
	for c in $CONTAINER_CHECKS; do skip "$c" "$1"; done
}

# nginx serving deploy/docker/nginx/$1.conf inside the netns, logs in $TMP.
start_nginx() {
	local name=$1 dir=$TMP/$1
	mkdir -p "$dir"
	# the shared template (tests/nginx), with the deploy config as its server blocks
	NGINX_WORKER_CONNECTIONS=256 NGINX_ACCESS_LOG=$dir/access.log nginx_conf "$dir" "	include $PWD/deploy/docker/nginx/$name.conf;" "daemon on;"
	NGINX_PIDS="$NGINX_PIDS $dir/nginx.pid"
	ip netns exec "$NS" nginx -c "$dir/nginx.conf" 2> "$dir/start.log"
}

wait_for() {	# seconds, command...
	local n=$(( $1 * 10 )); shift
	while [ "$n" -gt 0 ]; do
		"$@" && return 0
		sleep 0.1
		n=$((n - 1))
	done
	return 1
}

# --- systemd unit's capability set, as a non-root user (no container needed) -----
unit=deploy/systemd/shadowtap.service
if [ ! -x "$AGENT" ]; then
	skip "non-root agent with the unit's ambient capabilities" "$AGENT not built"
elif ! command -v setpriv >/dev/null; then
	skip "non-root agent with the unit's ambient capabilities" "setpriv missing"
else
	ucaps=$(sed -n 's/^AmbientCapabilities=//p' "$unit" | tr 'A-Z' 'a-z' | sed 's/cap_/+/g; s/ /,/g')
	install -d -o nobody -m 0700 "$PIN"
	chmod 0755 "$TMP"
	install -d -o nobody -m 0700 "$TMP/uspool"
	ip netns add "$NS-u" 2>/dev/null && ip -n "$NS-u" link set lo up
	nsenter --net="/run/netns/$NS-u" setpriv --reuid nobody --regid nogroup --clear-groups \
		--inh-caps "-all,$ucaps" --ambient-caps "-all,$ucaps" --bounding-set "-all,$ucaps" \
		--no-new-privs "$PWD/$AGENT" -p 80 -o - --pin-dir "$PIN" --exit-after 2 \
		--spool-dir "$TMP/uspool" > "$TMP/unit.log" 2>&1
	rc=$?
	ip netns del "$NS-u" 2>/dev/null
	if [ "$rc" = 0 ] && ! grep -qi 'permission\|not permitted' "$TMP/unit.log"; then
		pass "non-root agent with the unit's ambient capabilities"
	else
		fail "non-root agent with the unit's ambient capabilities" \
			"caps $ucaps, exit $rc: $(grep -v '^ *$' "$TMP/unit.log" | tail -n 1)"
	fi
	rm -f "$PIN/stats"; rmdir "$PIN" 2>/dev/null
fi

if [ "${SHADOWTAP_SKIP_CONTAINER:-0}" = 1 ]; then
	skip_container "SHADOWTAP_SKIP_CONTAINER=1"
	exit 0
fi

# --- base images and build -----------------------------------------------------------
if scripts/podman-base.sh > "$TMP/base.log" 2>&1; then
	pass "podman base images"
else
	fail "podman base images" "$(tail -n 1 "$TMP/base.log")"
	skip_container "no podman base images" | tail -n +2
	exit 0
fi

# The build stage is tagged too, so that a rebuild can drop the stage it replaces
# instead of leaving an untagged ~900 MB image behind each time the sources change.
old=$(podman image inspect --format '{{.Id}}' "$IMAGE" "$IMAGE-build" 2>/dev/null)
t0=$(date +%s)
if timeout 900 podman build -q --format docker --network host --target build \
	-f deploy/docker/Dockerfile -t "$IMAGE-build" . > "$TMP/build.log" 2>&1 &&
	timeout 900 podman build -q --format docker --network host \
	-f deploy/docker/Dockerfile -t "$IMAGE" . >> "$TMP/build.log" 2>&1; then
	pass "image build"
	new=$(podman image inspect --format '{{.Id}}' "$IMAGE" "$IMAGE-build" 2>/dev/null)
	for i in $old; do
		echo "$new" | grep -q "$i" || podman rmi "$i" > /dev/null 2>&1
	done
	echo "# image built in $(( $(date +%s) - t0 )) s" >&2
else
	fail "image build" "$(grep -E 'error|Error' "$TMP/build.log" | head -n 1 | cut -c1-160)"
	skip_container "image did not build" | tail -n +3
	exit 0
fi

meta=$(podman image inspect "$IMAGE" --format '{{json .Config.Entrypoint}}|{{.Config.StopSignal}}|{{json .Config.Healthcheck}}|{{.Config.User}}' 2>&1)
case $meta in
	'["/usr/local/bin/shadowtap"]|SIGTERM|'*'"Test"'*)
		pass "image metadata" ;;
	*)	fail "image metadata" "entrypoint|stopsignal|healthcheck: $meta" ;;
esac

tools=$(podman run --rm --no-healthcheck --entrypoint /bin/sh "$IMAGE" -c \
	'for t in cc gcc clang make; do command -v $t; done; ldd /usr/local/bin/shadowtap | grep "not found"' 2>/dev/null)
if [ -z "$tools" ]; then
	pass "runtime image has no toolchain"
else
	fail "runtime image has no toolchain" "$(echo "$tools" | tr '\n' ' ')"
fi

# podman 4's default seccomp profile lets bpf() through only with CAP_SYS_ADMIN;
# Docker >= 23 also allows it with CAP_BPF. Give podman the same rule, keeping the
# rest of its profile (see deploy/README.md).
SECCOMP=()
prof=/usr/share/containers/seccomp.json
if [ -f "$prof" ] && python3 - "$prof" "$TMP/seccomp.json" <<'EOF'
import json, sys
p = json.load(open(sys.argv[1]))
gated = {"bpf": "CAP_BPF", "perf_event_open": "CAP_PERFMON"}
have = {n for s in p["syscalls"] if s["action"] == "SCMP_ACT_ALLOW"
        and set(gated.values()) & set((s.get("includes") or {}).get("caps") or [])
        for n in s["names"]}
for s in p["syscalls"]:
    excl = (s.get("excludes") or {}).get("caps") or []
    if s["action"] == "SCMP_ACT_ERRNO" and "CAP_SYS_ADMIN" in excl:
        s["names"] = [n for n in s["names"] if n not in gated]
for n, cap in gated.items():
    if n not in have:
        p["syscalls"].append({"names": [n], "action": "SCMP_ACT_ALLOW",
                              "includes": {"caps": [cap]}})
json.dump(p, open(sys.argv[2], "w"))
EOF
then
	SECCOMP=(--security-opt "seccomp=$TMP/seccomp.json")
	pass "seccomp profile"
else
	skip "seccomp profile" "no $prof: running with the engine's default"
fi

# --- serverA and serverB in a network namespace ---------------------------------------
ip netns add "$NS" && ip -n "$NS" link set lo up
start_nginx serverA && start_nginx serverB
if ! wait_for 5 ip netns exec "$NS" curl -fs -o /dev/null http://127.0.0.1:81/; then
	fail "agent starts with only $CAPS" "serverA/serverB did not start: $(cat "$TMP"/server*/start.log | head -n 1)"
	exit 0
fi

mkdir -p "$TMP/out"
run_agent() {	# name caps extra-args...
	local name=$1 caps=$2; shift 2
	podman run -d --name "$name" --network "ns:/run/netns/$NS" \
		--cap-drop all --cap-add "$caps" "${SECCOMP[@]}" \
		-v /sys/fs/bpf:/sys/fs/bpf -v /sys/kernel/btf:/sys/kernel/btf:ro \
		-v "$TMP/out:/out" -e SHADOWTAP_PIN_DIR="$PIN" \
		"$IMAGE" -p 80 --pin-dir "$PIN" "$@"
}

# Each capability is needed: without it the agent must exit non-zero, quickly.
for missing in PERFMON NET_RAW; do
	caps=$(echo "$CAPS" | sed "s/$missing//; s/,,/,/; s/^,//; s/,$//")
	podman rm -f -t 0 "$ID-neg" >/dev/null 2>&1
	run_agent "$ID-neg" "$caps" -o /out/neg.ndjson --spool-dir /out/negspool > /dev/null 2>&1
	podman wait "$ID-neg" > "$TMP/neg.rc" 2>/dev/null &
	wpid=$!
	if wait_for 10 sh -c "! kill -0 $wpid 2>/dev/null"; then
		rc=$(cat "$TMP/neg.rc")
		why=$(podman logs "$ID-neg" 2>&1 | grep -i -m 1 -e 'not permitted' -e 'permission denied' -e "CAP_$missing")
		if [ "$rc" != 0 ] && [ -n "$why" ]; then
			pass "agent refuses without CAP_$missing"
		else
			fail "agent refuses without CAP_$missing" \
				"exit $rc with only $caps: $(podman logs "$ID-neg" 2>&1 | tail -n 1)"
		fi
	else
		kill "$wpid" 2>/dev/null
		fail "agent refuses without CAP_$missing" "still running with only $caps: CAP_$missing is not needed"
	fi
	podman rm -f -t 0 "$ID-neg" >/dev/null 2>&1
	rm -f "$PIN/stats"
done

# The ECS set (ECS cannot grant BPF/PERFMON): SYS_ADMIN + NET_RAW under the engine's
# own default seccomp profile.
podman rm -f -t 0 "$ID-neg" >/dev/null 2>&1
if podman run -d --name "$ID-neg" --network "ns:/run/netns/$NS" --cap-drop all \
	--cap-add SYS_ADMIN,NET_RAW -v /sys/fs/bpf:/sys/fs/bpf -v /sys/kernel/btf:/sys/kernel/btf:ro \
	-v "$TMP/out:/out" "$IMAGE" -p 80 --pin-dir "$PIN" -o /out/ecs.ndjson \
	--spool-dir /out/ecsspool > /dev/null 2>&1 && wait_for 15 test -e "$PIN/stats" &&
	podman stop -t 30 "$ID-neg" > /dev/null 2>&1 &&
	[ "$(podman inspect "$ID-neg" --format '{{.State.ExitCode}}')" = 0 ]; then
	pass "agent runs with the ECS set SYS_ADMIN,NET_RAW and default seccomp"
else
	fail "agent runs with the ECS set SYS_ADMIN,NET_RAW and default seccomp" \
		"$(podman logs "$ID-neg" 2>&1 | grep -v '^time=' | head -n 1)"
fi
podman rm -f -t 0 "$ID-neg" >/dev/null 2>&1
rm -f "$PIN/stats"

if ! run_agent "$ID" "$CAPS" -r http://127.0.0.1:81 -o /out/records.ndjson \
	--spool-dir /out/spool > "$TMP/run.log" 2>&1; then
	fail "agent starts with only $CAPS" "$(tail -n 1 "$TMP/run.log")"
	exit 0
fi
if wait_for 15 test -e "$PIN/stats"; then
	pass "agent starts with only $CAPS"
	pass "pin under /sys/fs/bpf"
else
	running=$(podman inspect "$ID" --format '{{.State.Running}}' 2>/dev/null)
	fail "agent starts with only $CAPS" "running=$running: $(podman logs "$ID" 2>&1 | tail -n 1)"
	fail "pin under /sys/fs/bpf" "$PIN/stats missing"
	exit 0
fi

if podman healthcheck run "$ID" > "$TMP/health.log" 2>&1; then
	pass "healthcheck"
else
	fail "healthcheck" "$(head -n 1 "$TMP/health.log")"
fi

paths="/ /api/items /api/status /new /missing"
for p in $paths; do
	ip netns exec "$NS" curl -s -o /dev/null "http://127.0.0.1$p"
done

replay_supported=1
podman run --rm --entrypoint /usr/local/bin/shadowtap "$IMAGE" --help 2>&1 | grep -q -- '--replay' ||
	replay_supported=0
wait_for 10 sh -c "[ \$(grep -c 'HTTP/1' '$TMP/serverB/access.log' 2>/dev/null || echo 0) -ge 6 ]"

t0=$(date +%s)
podman stop -t 30 "$ID" > /dev/null 2>&1
rc=$(podman inspect "$ID" --format '{{.State.ExitCode}}' 2>/dev/null)
dt=$(( $(date +%s) - t0 ))
if [ "$rc" = 0 ] && [ "$dt" -lt 30 ]; then
	pass "podman stop exits 0 after draining"
else
	fail "podman stop exits 0 after draining" "exit code ${rc:-?} after ${dt}s: $(podman logs "$ID" 2>&1 | tail -n 1)"
fi
if [ ! -e "$PIN/stats" ]; then
	pass "pin removed on exit"
else
	fail "pin removed on exit" "$PIN/stats still there"
fi

# Records are drained to the NDJSON file by the time the agent has exited.
got=$(python3 - "$TMP/out/records.ndjson" $paths <<'EOF'
import json, sys
def get(d, key):
    if key in d:
        return d[key]
    for part in key.split("."):
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d
want = set(sys.argv[2:])
seen, bad = set(), 0
try:
    lines = open(sys.argv[1]).read().splitlines()
except OSError:
    lines = []
replayed = 0
for line in lines:
    try:
        r = json.loads(line)
    except ValueError:
        bad += 1
        continue
    p = get(r, "url.path")
    if p in want:
        seen.add(p)
        if get(r, "replay.status_code"):
            replayed += 1
print(len(seen), len(want), len(lines), bad, replayed)
EOF
)
read -r nseen nwant nlines nbad nreplayed <<< "$got"
if [ "${nseen:-0}" = "$nwant" ] && [ "${nbad:-1}" = 0 ]; then
	pass "request captured"
else
	fail "request captured" "${nseen:-0}/$nwant paths in $nlines records, $nbad unparsable"
fi

nb=$(grep -c 'HTTP/1' "$TMP/serverB/access.log" 2>/dev/null)
# serverB's own log: the health probe above made one request before the agent ran.
if [ "${nb:-0}" -ge 6 ] && [ "${nreplayed:-0}" -ge 5 ]; then
	pass "request replayed to serverB"
elif [ "$replay_supported" = 0 ]; then
	skip "request replayed to serverB" "the agent has no --replay yet"
else
	fail "request replayed to serverB" "serverB saw $(( ${nb:-1} - 1 )) of 5, $nreplayed records carry replay.status_code"
fi
exit 0
