#!/usr/bin/env bash
# deploy/bench/stages.py's split of the replay's system calls, on a fixture: 19 samples
# of `perf script -F comm,tid,period,ip,sym --no-inline` cut from real recordings on
# the 6.18 kernel (session 9: the agent at the GET and POST maximum, perf record
# --call-graph dwarf; the last two from a system-wide perf record -a -g of the same
# bench). Each sample's expected (system call, kind of kernel work) below was read off
# its call chain by hand, with the reason; then the shares and the sharing out of the
# receive the chain cannot tell apart are checked against figures worked out by hand.
# No perf, no root, no load: the fixture is the input.
set -u
. "$(dirname "$0")/lib.sh"
FIX=$ST_ROOT/tests/integration/stages/perf-script.txt
command -v python3 >/dev/null || { skip "stages (no python3)"; exit 0; }

python3 - "$ST_ROOT/deploy/bench/stages.py" "$FIX" <<'PY'
import importlib.util, sys
spec = importlib.util.spec_from_file_location("stages", sys.argv[1])
st = importlib.util.module_from_spec(spec)
spec.loader.exec_module(st)
samples = st.perf_samples(open(sys.argv[2]).read().splitlines())
ok = True


def check(what, got, want):
    global ok
    if got == want:
        print("PASS: stages: %s" % what)
    else:
        ok = False
        print("FAIL: stages: %s: got %r, want %r" % (what, got, want))


# (group, category, wake-up of the receiving task?) and why, sample by sample
WANT = [
    (("send", "copy", False), "sendmsg: leaf _copy_from_iter (the request into the skb)"),
    (("send", "peer", True), "sendmsg -> local_bh_enable -> net_rx_action -> tcp_data_queue "
                             "-> sock_def_readable: serverB's socket gets the request, wakes nginx"),
    (("send", "either", False), "sendmsg -> net_rx_action -> ip_rcv -> tcp_v4_early_demux: "
                                "socket lookup, no side named"),
    (("send", "own", False), "sendmsg: leaf __tcp_transmit_skb, no softirq"),
    (("read", "copy", False), "read: leaf _copy_to_iter (the answer to user memory)"),
    (("read", "either", False), "read -> tcp_cleanup_rbuf's ACK -> net_rx_action -> tcp_ack: "
                                "the ACK reaching serverB, no side named"),
    (("connect", "peer", False), "connect (SYN) -> net_rx_action -> tcp_conn_request: "
                                 "serverB's listener"),
    (("connect", "own", False), "connect -> release_sock -> tcp_finish_connect: the SYN-ACK "
                                "from the socket backlog, in process context"),
    (("connect", "either", False), "connect -> release_sock -> tcp_rcv_state_process (the "
                                   "agent's SYN-ACK) -> ACK -> net_rx_action -> ip_route_input: "
                                   "tcp_rcv_state_process below the softirq does not count"),
    (("connect", "peer", False), "connect -> net_rx_action -> tcp_child_process: serverB's "
                                 "new connection from the handshake's last ACK"),
    (("close", "peer", False), "close (FIN) -> net_rx_action -> tcp_fin -> tcp_time_wait: "
                               "serverB's socket"),
    (("close", "own", False), "close -> tcp_close -> inet_unhash: no softirq"),
    ((None, None, False), "user space only (diff_compare)"),
    (("send", "entry", False), "user space, leaf __libc_sendmsg: the wrapper"),
    (("send", "entry", False), "sendmsg: leaf do_syscall_64"),
    ((None, None, False), "epoll_wait: not a replay call"),
    (("send", "irq", False), "sendmsg -> timer interrupt -> handle_softirqs, no net_rx_action"),
    ((None, "bpf", False), "nginx's writev -> dev_queue_xmit_nit -> packet_rcv -> "
                           "bpf_prog_<tag>_st_capture (system-wide recording)"),
    ((None, None, False), "the agent's bpf() -> bpf_prog_load -> verifier: not a program run"),
]
check("fixture has %d samples" % len(WANT), len(samples), len(WANT))
for i, ((period, chain), (want, why)) in enumerate(zip(samples, WANT)):
    check("sample %d: %s" % (i, why), st.classify(chain), want)

# Shares over samples 0-16 (one period each, 17 in all): send has 1 peer + 1 either,
# nothing of the agent's marked, so both go to serverB: 2/17; read 1 either -> 1/17;
# connect 2 peer + 1 either -> 3/17; close 1 peer -> 1/17; (b) = 7/17; wake-up 1/17;
# copies 2/17, entry/exit 2/17, own work 3/17, interrupts 1/17.
acc, wake, outside = st.split(samples[:17])
rows = {label: fn(acc, wake, outside) for label, fn in st.SPLIT_ROWS}
pct = lambda n: round(100.0 * n / 17, 6)


def row(prefix):
    return round([v for k, v in rows.items() if k.startswith(prefix)][0], 6)


check("(b) serverB's receive", row("**(b)"), pct(7))
check("(b) in send", row("of which in send"), pct(2))
check("(b) in read", row("of which in read"), pct(1))
check("(b) in connect", row("of which in connect"), pct(3))
check("(b) in close", row("of which in close"), pct(1))
check("wake-up of nginx", row("of which the wake-up"), pct(1))
check("(b') agent's own receive", row("(b')"), 0.0)
check("not told apart", row("(b + b')"), pct(3))
check("(a) own work", row("(a)"), pct(3))
check("(c) entry/exit", row("(c)"), pct(2))
check("(d) copies", row("(d)"), pct(2))
check("replay calls, all", row("replay system calls"), pct(15))

# the sharing out: a close whose softirq reaches the agent's LAST_ACK socket (sample 10
# with tcp_fin/tcp_time_wait swapped for tcp_done, as in a LAST_ACK ACK) beside one peer
# and one unmarked receive in close: the unmarked one is shared 1:1
kern = [(k, s) for k, s in samples[10][1]]
own = [(k, "tcp_done" if s in ("tcp_fin", "tcp_time_wait", "tcp_data_queue") else s)
       for k, s in kern]
check("a LAST_ACK receive is the agent's", st.classify(own)[:2], ("close", "rx_own"))
unmarked = [(k, s) for k, s in samples[2][1]]
unmarked = [(k, "__x64_sys_close" if s == "__sys_sendmsg" else s) for k, s in unmarked]
acc, wake, outside = st.split([samples[10], (samples[10][0], own), (samples[10][0], unmarked)])
check("unmarked close receive shared out 1:1 (serverB)", round(acc[("close", "peer_est")], 6),
      round(100.0 * 1.5 / 3, 6))
check("unmarked close receive shared out 1:1 (agent)", round(acc[("close", "own_est")], 6),
      round(100.0 * 1.5 / 3, 6))
# the system-wide pass: headers "comm pid/tid time: period", roles from ps snapshots
heads = st.perf_samples(open(sys.argv[2]).read().splitlines(), head=True)
check("system-wide header of sample 17", heads[17][:3], (6362, 1019.800492, 1001001))
check("system-wide header of sample 0 (no pid/time)", heads[0][:3], (None, None, 250000))
ps = """ 6361     1 nginx: master process nginx -c /tmp/b.X/nginx-serverA/nginx.conf -p /tmp/b.X/nginx-serverA
 6362  6361 nginx: worker process
 6370     1 nginx: master process nginx -c /tmp/b.X/nginx-serverB/nginx.conf -p /tmp/b.X/nginx-serverB
 6371  6370 nginx: worker process
 6390  6308 /w/build/bench/loadgen exec -o /tmp/b.X/1-shadowtap-get-max.usage.json -- /w/build/shadowtap -i sta0 -p 80
 6400  6390 /w/build/shadowtap -i sta0 -p 80 --capture socket -r http://198.18.31.1:81 -o /dev/null
 6458  6308 /w/build/bench/loadgen load -url http://198.18.30.1:80/ -mix get -rate 0
 6470  6308 /w/build/bench/loadgen load -url http://198.18.31.1:81 -mix get
 6361     1 [nginx] <defunct>""".splitlines()
roles, runs = st.ps_roles(ps)
check("roles from ps", roles, {6362: "serverA's nginx", 6371: "serverB's nginx",
                               6400: "agent", 6458: "client (loadgen)"})
check("the agent's run id", runs, {6400: "1-shadowtap-get-max"})
# two samples in the client's window, one outside: 1 ms of nginx B receive, 1 ms of
# the agent's own work, over 1000 requests = 1 us each; the one outside is not counted
rx_chain = samples[2][1]
heads2 = [(6458, 10.0, 1000000, samples[3][1]), (6458, 12.0, 1000000, samples[3][1]),
          (6371, 11.0, 1000000, rx_chain), (6400, 11.5, 1000000, samples[3][1]),
          (6400, 9.0, 1000000, samples[3][1])]
tab = st.system_table(heads2, roles, runs, {"1-shadowtap-get-max": 1000})
check("system table: nginx B's receive", round(tab["1-shadowtap-get-max"][("serverB's nginx", "rx")], 6), 1.0)
check("system table: agent in the window", round(tab["1-shadowtap-get-max"][("agent", "all")], 6), 1.0)
sys.exit(0 if ok else 1)
PY
