#!/usr/bin/env bash
# The agent's own ceiling with --workers 1 and 2 (issue 19, "scale with cores"): no
# serverA and no closed loop. A generated capture (tests/integration/gen_pcap.py: GET
# exchanges on keep-alive connections) is sent with tcpreplay --topspeed from a client
# namespace onto a veth; the agent captures that veth (socket mode, port 80; the
# server address is not assigned there, so the kernel drops the packets after the tap)
# with a ring large enough to hold the whole file. The agent is stopped (SIGSTOP) while
# tcpreplay fills the ring, then continued: it drains at its own speed, not
# tcpreplay's. Per run: records written over the time from SIGCONT to the agent going
# idle (its CPU stops moving), the agent's CPU per record (user+sys, every thread), its
# BPF program's time per record (spent earlier, in tcpreplay's softirq), ring drops,
# and with replay (WC_REPLAY=1, the default) the replays to a local nginx serverB that
# succeeded and the replay drops.
# 1 and 2 workers alternate (1,2 then 2,1 ...), medians of WC_REPEATS.
#
#   flock /tmp/shadowtap-integ.lock deploy/bench/workers_ceiling.sh    (root)
#
# Knobs: WC_EXCHANGES (60000), WC_CONNS (1000), WC_REPEATS (3), WC_WORKERS ("1 2"),
# WC_REPLAY (1; 0 = capture-only), WC_OUT (deploy/bench/results), WC_RING (256M),
# WC_ST_ARGS (more agent flags). The replay queue (--replay-queue, 65,536 split among
# the workers) must hold the whole burst, or the replay refuses records (counted):
# 60,000 exchanges fit. ST_BIN (lib.sh) runs another binary; WC_PERF=DIR records
# perf record -g of each drain into DIR/rREPEAT-wWORKERS.data.
. "$(dirname "$0")/../../tests/integration/lib.sh"
st_need_root "workers ceiling"
for t in nginx tcpreplay python3; do
	command -v $t >/dev/null || { skip "workers ceiling ($t not installed)"; exit 0; }
done
EXCH=${WC_EXCHANGES:-60000}
CONNS=${WC_CONNS:-1000}
REPEATS=${WC_REPEATS:-3}
read -ra WORKERS <<<"${WC_WORKERS:-1 2}"
REPLAY=${WC_REPLAY:-1}
OUTDIR=${WC_OUT:-$ST_ROOT/deploy/bench/results}
RING=${WC_RING:-256M}
HZ=$(getconf CLK_TCK)
OLD_BPF_STATS=$(sysctl -n kernel.bpf_stats_enabled 2>/dev/null || echo 0)
sysctl -qw kernel.bpf_stats_enabled=1 2>/dev/null
trap 'sysctl -qw kernel.bpf_stats_enabled="$OLD_BPF_STATS" 2>/dev/null; st_cleanup' EXIT

st_ns st-wc-srv; st_ns st-wc-cli
st_link st-wc-srv st-wcs0 198.18.46.1/24 st-wc-cli st-wcc0 198.18.46.2/24
# gen_pcap.py's frames carry these addresses in both directions: the server side
# takes them as its own, so the frames are not PACKET_OTHERHOST there
ip -n st-wc-srv link set st-wcs0 address 02:00:00:00:00:02
ip -n st-wc-cli link set st-wcc0 address 02:00:00:00:00:01
st_nginx st-wc-srv 81 serverB || { fail "workers ceiling: nginx serverB did not start"; exit 0; }
PCAP=$ST_TMP/ceiling.pcap
python3 "$ST_ROOT/tests/integration/gen_pcap.py" "$PCAP" "$EXCH" "$CONNS" ||
	{ fail "workers ceiling: gen_pcap.py failed"; exit 0; }

# bpf_stats PID: run count and run time (ns) of the BPF programs PID holds (their
# time is spent in tcpreplay's softirq, before the drain: reported per record apart)
bpf_stats() {
	local fd cnt=0 ns=0 c t
	for fd in /proc/"$1"/fdinfo/*; do
		grep -q '^prog_id:' "$fd" 2>/dev/null || continue
		c=$(awk '$1 == "run_cnt:" {print $2}' "$fd"); t=$(awk '$1 == "run_time_ns:" {print $2}' "$fd")
		cnt=$((cnt + ${c:-0})); ns=$((ns + ${t:-0}))
	done
	echo "$cnt $ns"
}
# field NAME LINE-PREFIX LOG: the last value of NAME= on lines starting with PREFIX
field() { grep "^$2" "$3" | tail -1 | grep -oE "(^| )$1=[0-9]+" | tail -1 | cut -d= -f2; }

CSV=$ST_TMP/ceiling.csv
echo "repeat,workers,records,secs,records_per_s,cpu_s,cpu_us_rec,bpf_us_rec,ringbuf_full,replay_ok,replay_dropped,status" >"$CSV"
for rep in $(seq 1 "$REPEATS"); do
	order=("${WORKERS[@]}")
	if [ $((rep % 2)) = 0 ]; then
		order=(); for ((k = ${#WORKERS[@]} - 1; k >= 0; k--)); do order+=("${WORKERS[k]}"); done
	fi
	for w in "${order[@]}"; do
		log=$ST_TMP/r$rep-w$w.log status=ok
		args=(-i st-wcs0 -p 80 --workers "$w" --ring-size "$RING" -o /dev/null
		      --pin-dir /sys/fs/bpf/shadowtap-wceil)
		[ "$REPLAY" = 1 ] && args+=(-r http://127.0.0.1:81)
		# shellcheck disable=SC2206
		args+=(${WC_ST_ARGS:-})
		if ! st_agent st-wc-srv "$log" "${args[@]}"; then
			echo "$rep,$w,,,,,,,,,start failed" >>"$CSV"; continue
		fi
		# the agent is stopped while tcpreplay fills its ring, then drains it at its own
		# speed: tcpreplay's sending rate is not what is measured
		kill -STOP "$ST_AGENT_PID"
		ip netns exec st-wc-cli tcpreplay -q -t -i st-wcc0 "$PCAP" >"$ST_TMP/tcpreplay.log" 2>&1 ||
			status="tcpreplay failed"
		perf_pid=
		if [ -n "${WC_PERF:-}" ]; then
			mkdir -p "$WC_PERF"
			perf record -q -g -F 1999 -p "$ST_AGENT_PID" -o "$WC_PERF/r$rep-w$w.data" 2>/dev/null &
			perf_pid=$!
			sleep 0.5
		fi
		# SIGCONT, then the agent's CPU (/proc/PID/stat, every 10 ms) until it has not
		# moved for 0.3 s (deadline 60 s): the window ends at the last sample where it moved
		read -r t0 k0 t1 k1 idle < <(python3 - "$ST_AGENT_PID" <<'PYEOF'
import os, signal, sys, time
pid = int(sys.argv[1])
def ticks():
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])
k0, t0 = ticks(), time.monotonic_ns()
os.kill(pid, signal.SIGCONT)
k1, t1, end = k0, t0, time.monotonic() + 60
while time.monotonic() < end:
    time.sleep(0.01)
    k = ticks()
    if k != k1:
        k1, t1 = k, time.monotonic_ns()
    elif time.monotonic_ns() - t1 > 300e6:
        break
print(t0, k0, t1, k1, int(time.monotonic() < end))
PYEOF
)
		[ "${idle:-0}" = 1 ] || status="agent never went idle"
		[ -z "$perf_pid" ] || { kill -INT "$perf_pid"; wait "$perf_pid"; }
		read -r bcnt bns < <(bpf_stats "$ST_AGENT_PID")
		st_agent_stop
		rec=$(field written output: "$log")
		full=$(field ringbuf_full bpf: "$log")
		rok=$(field succeeded "replay: submitted" "$log")
		rdrop=$(grep '^replay: dropped' "$log" | tail -1 | grep -oE '=[0-9]+' | tr -d = | awk '{s += $1} END {print s + 0}')
		[ -n "$rec" ] || status="no exit summary"
		python3 - "$rep" "$w" "${rec:-0}" "$t0" "$t1" "$k0" "$k1" "$HZ" "${full:-}" "${rok:-}" "${rdrop:-}" \
			"${bns:-0}" "$status" >>"$CSV" <<'PYEOF'
import sys
rep, w, rec, t0, t1, k0, k1, hz, full, rok, rdrop, bns, status = sys.argv[1:]
secs = (int(t1) - int(t0)) / 1e9
cpu = (int(k1) - int(k0)) / int(hz)
rec = int(rec)
print("%s,%s,%d,%.2f,%.0f,%.2f,%.2f,%.2f,%s,%s,%s,%s" % (rep, w, rec, secs, rec / secs if secs else 0, cpu,
      1e6 * cpu / rec if rec else 0, int(bns) / 1e3 / rec if rec else 0, full, rok, rdrop, status))
PYEOF
		tail -1 "$CSV" >&2
	done
done
mkdir -p "$OUTDIR"
name=workers_ceiling$([ "$REPLAY" = 1 ] || echo _capture)
cp "$CSV" "$OUTDIR/$name.csv"
python3 - "$CSV" "$OUTDIR/$name.md" "$EXCH" "$CONNS" "$REPEATS" "$REPLAY" "$RING" "$(nproc)" \
	"$(cut -d' ' -f1-3 /proc/loadavg)" "$(git -C "$ST_ROOT" rev-parse --short HEAD 2>/dev/null)" <<'PYEOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
out, exch, conns, reps, replay, ring, ncpu, load, rev = sys.argv[2:11]
by = {}
for r in rows:
    if r["status"] == "ok":
        by.setdefault(r["workers"], []).append(r)
med = lambda rs, k: statistics.median(float(r[k] or 0) for r in rs)
what = "replaying to a local nginx" if replay == "1" else "capture-only (records written, no replay)"
L = ["# The agent's ceiling, --workers 1 vs 2, %s" % what, "",
     "`deploy/bench/workers_ceiling.sh` (commit %s): %s GET exchanges on %s keep-alive connections "
     "(gen_pcap.py) sent with `tcpreplay --topspeed` onto a veth the agent captures (socket mode, "
     "--ring-size %s) while the agent is stopped, no serverA; records/s = records written over "
     "the time from SIGCONT until the agent's CPU stopped moving; CPU = the agent's user+sys "
     "over that time; BPF = its program's run time (spent before, while tcpreplay sent), per record. %s repeats alternated, medians; %s CPUs; load average at the end %s."
     % (rev, exch, conns, ring, reps, ncpu, load), "",
     "| workers | records | records/s | agent CPU s | CPU µs/record | BPF µs/record | ring drops | replay succeeded | replay dropped | runs |",
     "|---|---|---|---|---|---|---|---|---|---|"]
for w in sorted(by, key=int):
    rs = by[w]
    L.append("| %s | %.0f | %.0f | %.2f | %.2f | %.2f | %.0f | %s | %s | %d |" % (
        w, med(rs, "records"), med(rs, "records_per_s"), med(rs, "cpu_s"), med(rs, "cpu_us_rec"), med(rs, "bpf_us_rec"),
        med(rs, "ringbuf_full"), "%.0f" % med(rs, "replay_ok") if replay == "1" else "",
        "%.0f" % med(rs, "replay_dropped") if replay == "1" else "", len(rs)))
L += ["", "Every run:", "", "| repeat | workers | records | s | records/s | CPU s | µs/record | BPF µs/record | ring drops | replay ok | replay dropped | status |",
      "|---|---|---|---|---|---|---|---|---|---|---|---|"]
for r in rows:
    L.append("| " + " | ".join(r[k] for k in ("repeat", "workers", "records", "secs", "records_per_s", "cpu_s",
                                              "cpu_us_rec", "bpf_us_rec", "ringbuf_full", "replay_ok", "replay_dropped", "status")) + " |")
open(out, "w").write("\n".join(L) + "\n")
print("\n".join(L))
PYEOF
