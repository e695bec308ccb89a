#!/usr/bin/python3
"""Per-stage cost of shadowtap under load, from the bench's own runs: for every
shadowtap run recorded with BENCH_PERF (perf record --call-graph dwarf of the agent
over the load window), the share of the agent's samples spent inside each stage's
entry function (inclusive), times the run's user+sys CPU per request, gives
microseconds per request per stage. The BPF program's time comes from its own
counters (run_time_ns), which perf's process samples do not see.

A second table splits the kernel part of the replay's system calls (send, read,
connect, close, and a new connection's socket/setsockopt/epoll_ctl) by what the kernel
does there, from each sample's call chain (perf script): the sender's own socket and
TCP/IP work, the receive path that veth runs in the sender's softirq (net_rx_action
under __dev_queue_xmit's local_bh_enable: serverB's ip_rcv, tcp_v4_rcv and the wake-up
of its nginx; the agent's own sockets' receive, the ACK of its FIN, is told apart where
the chain says so), system call entry/exit and copies. The replay-bare
row (deploy/bench/replay_bare.c, named in BENCH_TOOLS) gets the same split.

    stages.py --runs runs.csv --perf DIR --out stages.md
    stages.py --split FILE      (one `perf script -F comm,tid,period,ip,sym --no-inline` output:
                                 the split in % of its samples)
"""
import argparse
import csv
import os
import re
import subprocess
import sys

# stage -> (entry functions, functions inside them that belong to another stage)
STAGES = [
    ("ring drain, reassembly, HTTP parsing, record building", ["capture_poll", "pcapin_step"], []),
    # the system call itself (a tuple: one function under any of its names): a new
    # connection's first write is sent outside replay_send (replay_send_early)
    ("replay: request sent (sendmsg, kernel TCP, veth delivery to serverB)",
     [("__libc_sendmsg", "sendmsg", "__sendmsg")], []),
    ("replay: connect (new serverB connections)", ["__libc_connect"], []),
    ("replay: response read and parsed", ["replay_readable"], ["diff_compare"]),
    ("diff of serverA and serverB answers", ["diff_compare"], []),
    ("JSON encoding of the record", ["record_to_json"], []),
    ("NDJSON write", ["fwrite", "_IO_fwrite", "fflush", "_IO_fflush"], []),
    ("hand-offs between threads (queues, wake-ups)", ["bq_pop", "bq_push", "bq_push_many",
                                                     "epoll_wait"], []),
]


def children_pct(data):
    """{symbol: inclusive %} from perf report --children."""
    out = subprocess.run(["perf", "report", "-i", data, "--children", "--sort", "sym", "--stdio",
                          "-g", "none", "--percent-limit", "0.05"],
                         capture_output=True, text=True, check=False).stdout
    pct = {}
    for line in out.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+([\d.]+)%\s+\[[.k]\]\s+(\S+)", line)
        if m:
            sym = m.group(3)
            pct[sym] = max(pct.get(sym, 0.0), float(m.group(1)))
    return pct


def share(pct, e):
    """Inclusive % of an entry function; a tuple names one function by its aliases."""
    if isinstance(e, tuple):
        return max(pct.get(a, 0.0) for a in e)
    return pct.get(e, 0.0)


# --- the kernel part of the replay's system calls, from each sample's call chain ---
# (perf script -F comm,tid,period,ip,sym --no-inline; symbols of a 6.18 kernel)
KERNEL_MIN, UNKNOWN_IP = 0xffff800000000000, 0xffffffffffffffff
# the function do_syscall_64 calls (x64_sys_call, the dispatch, skipped) -> group;
# write/writev count as a send only with a socket function in the chain
SYSCALL_GROUP = {
    "__sys_sendmsg": "send", "__x64_sys_sendmsg": "send", "__sys_sendto": "send",
    "__x64_sys_sendto": "send", "ksys_write": "write", "__x64_sys_write": "write",
    "do_writev": "write", "__x64_sys_writev": "write",
    "ksys_read": "read", "__x64_sys_read": "read", "__sys_recvfrom": "read",
    "__x64_sys_recvfrom": "read", "do_readv": "read", "__x64_sys_readv": "read",
    "__sys_recvmsg": "read", "__x64_sys_recvmsg": "read",
    "__sys_connect": "connect", "__x64_sys_connect": "connect",
    "__x64_sys_close": "close", "__do_sys_close": "close",
    "__x64_sys_socket": "setup", "__sys_socket": "setup", "__x64_sys_setsockopt": "setup",
    "__sys_setsockopt": "setup", "do_sock_setsockopt": "setup", "__x64_sys_epoll_ctl": "setup",
    "do_epoll_ctl": "setup",
}
# a sample taken in user space in the system call's libc wrapper
WRAPPER_GROUP = {
    "__libc_sendmsg": "send", "sendmsg": "send", "__sendmsg": "send", "__libc_write": "write",
    "__GI___libc_write": "write", "write": "write", "writev": "write", "__writev": "write",
    "read": "read", "__libc_read": "read", "__GI___libc_read": "read",
    "recvmsg": "read", "__libc_recvmsg": "read", "__recvmsg": "read",
    "__libc_connect": "connect", "connect": "connect", "__connect": "connect",
    "__close": "close", "close": "close", "__libc_close": "close", "__GI___close": "close",
    "socket": "setup", "__socket": "setup", "setsockopt": "setup", "epoll_ctl": "setup",
}
SOCKET_FNS = {"sock_write_iter", "sock_sendmsg", "tcp_sendmsg", "tcp_sendmsg_locked",
              "____sys_sendmsg", "inet_sendmsg"}
# a receive run in this context's softirq (veth_xmit -> __netif_rx queues the packet on
# this CPU's backlog; __dev_queue_xmit's local_bh_enable runs it at once)
RX_FNS = {"net_rx_action", "__napi_poll", "process_backlog", "veth_poll", "gro_cell_poll"}
# whose socket a received packet reached: serverB's (a listener's SYN, the handshake's
# last ACK, data, a FIN, the ACK of its own FIN waking nginx's lingering close: the
# agent's sockets are orphans once closed and wake nobody) or the agent's own (the ACK
# of its FIN in LAST_ACK, which destroys the socket; a SYN-ACK would be too, but
# connect() holds the socket then, so the SYN-ACK waits in its backlog for release_sock,
# outside the softirq). Peer markers win (tcp_fin ends in tcp_done too); anything else
# (IP layer, tcp_v4_rcv, tcp_ack, tcp_rcv_state_process alone) is either side's
PEER_FNS = {"tcp_conn_request", "tcp_check_req", "tcp_child_process", "tcp_fin",
            "tcp_time_wait", "tcp_data_queue", "tcp_queue_rcv", "tcp_event_data_recv",
            "sock_def_readable", "tcp_send_delayed_ack", "tcp_v4_syn_recv_sock", "sock_def_wakeup"}
OWN_FNS = {"tcp_finish_connect", "tcp_rcv_synsent_state_process", "tcp_done",
           "inet_csk_destroy_sock", "tcp_v4_destroy_sock"}
# the wake-up of the receiving task: with cpu-clock samples (no PMU here) the time under
# the wait-queue lock, irqs off (ep_poll_callback, try_to_wake_up), lands on the
# _raw_spin_unlock_irqrestore in sock_def_readable, so the chain's callers name it
WAKE_FNS = {"sock_def_readable", "sock_def_wakeup", "sock_def_write_space", "sk_stream_write_space",
            "try_to_wake_up", "ep_poll_callback", "__wake_up_common", "__wake_up_sync_key",
            "__wake_up"}
# data reaching a socket: serverB's, except under a read, where it is serverB's data
# sent on the window update of the agent's read and received by the agent's socket
DATA_FNS = {"tcp_data_queue", "tcp_queue_rcv", "tcp_event_data_recv", "sock_def_readable"}
IRQ_FNS = {"handle_softirqs", "__irq_exit_rcu", "irq_exit_rcu", "asm_sysvec_apic_timer_interrupt",
           "asm_sysvec_reschedule_ipi", "asm_sysvec_call_function_single", "asm_common_interrupt"}
COPY_FNS = {"_copy_from_iter", "_copy_to_iter", "copy_page_from_iter", "copy_page_to_iter",
            "skb_copy_datagram_iter", "__skb_datagram_iter", "simple_copy_to_iter",
            "rep_movs_alternative", "copy_user_generic", "_copy_to_user", "_copy_from_user",
            "skb_do_copy_data_nocache", "csum_and_copy_from_iter", "skb_copy_to_page_nocache",
            "__put_user_nocheck_4", "__put_user_nocheck_8", "__get_user_8", "__get_user_4",
            "__check_object_size", "__virt_addr_valid", "check_heap_object"}
ENTRY_FNS = {"entry_SYSCALL_64", "entry_SYSCALL_64_after_hwframe", "entry_SYSCALL_64_safe_stack",
             "do_syscall_64", "x64_sys_call", "syscall_exit_to_user_mode",
             "syscall_exit_to_user_mode_prepare", "exit_to_user_mode_prepare",
             "entry_SYSRETQ_unsafe_stack", "syscall_return_via_sysret", "clear_bhb_loop",
             "fpregs_restore_userregs", "switch_fpu_return"}
BPF_JIT = re.compile(r"bpf_prog_[0-9a-f]{16}")
GROUPS = ["send", "read", "connect", "close", "setup"]


def perf_samples(lines, head=False):
    """[(period, [(kernel?, symbol), ...] leaf first)] from perf script output; with
    head, [(pid, time, period, chain)] from a header "comm pid/tid time: period"."""
    out, cur, hd = [], None, (None, None, 1)
    for line in lines:
        if line.startswith("\t"):
            if cur is None:
                continue
            f = line.split(None, 2)
            try:
                ip = int(f[0], 16)
            except (ValueError, IndexError):
                continue
            cur.append((KERNEL_MIN <= ip < UNKNOWN_IP, f[1] if len(f) > 1 else "[unknown]"))
        elif line.strip():
            if cur is not None:
                out.append(hd + (cur,) if head else (hd[2], cur))
            f = line.split()
            period = int(f[-1]) if f and f[-1].isdigit() else 1
            pid, t = None, None
            if head and len(f) >= 3 and "/" in f[-3]:
                try:
                    pid, t = int(f[-3].split("/")[0]), float(f[-2].rstrip(":"))
                except ValueError:
                    pass
            hd, cur = (pid, t, period), []
    if cur is not None:
        out.append(hd + (cur,) if head else (hd[2], cur))
    return out


def classify(chain):
    """(group, category, wake-up?) of one sample; group None outside the replay's calls,
    then category is "rx" (a receive in this context's softirq), "bpf" or None."""
    k = [sym for kern, sym in chain if kern]
    user = [sym for kern, sym in chain if not kern]
    ks = set(k)
    # a JIT-ed program: bpf_prog_<16 hex tag>_<name> (not bpf_prog_load, the verifier)
    bpf = any(BPF_JIT.match(sym) for sym in k)
    group = None
    if "do_syscall_64" in ks:
        i = k.index("do_syscall_64")
        for sym in reversed(k[:i]):
            if sym != "x64_sys_call":
                group = SYSCALL_GROUP.get(sym)
                break
        else:
            group = WRAPPER_GROUP.get(user[0]) if user else None
        if group == "write":
            group = "send" if ks & SOCKET_FNS else None
    elif not k and user and user[0] in WRAPPER_GROUP:
        group = WRAPPER_GROUP[user[0]]
        # a write's wrapper: the file is not known (the agent writes NDJSON and eventfds)
        return (None, None, False) if group == "write" else (group, "entry", False)
    rx = bool(ks & RX_FNS)
    if bpf:
        return None, "bpf", False
    if group is None:
        return None, "rx" if rx else None, False
    if rx:
        # only the frames the softirq called count: below it the caller's own work
        # (e.g. connect's release_sock processing the SYN-ACK from the socket backlog,
        # whose ACK then runs serverB's receive in this softirq)
        j = max(i for i, sym in enumerate(k) if sym in RX_FNS)
        inner = set(k[:j])
        wake = bool(inner & WAKE_FNS)
        if group == "read" and inner & DATA_FNS:
            return group, "rx_own", wake
        if inner & PEER_FNS:
            return group, "peer", wake
        if inner & OWN_FNS:
            return group, "rx_own", wake
        return group, "either", wake
    if ks & IRQ_FNS:
        return group, "irq", False
    if ks & COPY_FNS:
        return group, "copy", False
    if k and k[0] in ENTRY_FNS:
        return group, "entry", False
    return group, "own", False


def split(samples):
    """% of all samples: {(group, category): %}, wake-ups {group: %} in serverB's
    receive, and outside the replay's calls {"rx": %, "bpf": %}; the receive the chain
    does not tell apart ("either") is given to serverB and to the agent in proportion to
    what it does tell apart in the same group (all of it to serverB if it tells nothing)."""
    total = sum(p for p, _ in samples) or 1
    acc, wake, outside = {}, {}, {"rx": 0.0, "bpf": 0.0}
    for period, chain in samples:
        g, c, w = classify(chain)
        if g is None:
            if c:
                outside[c] += 100.0 * period / total
            continue
        acc[(g, c)] = acc.get((g, c), 0.0) + 100.0 * period / total
        if w and c in ("peer", "either"):
            wake[g] = wake.get(g, 0.0) + 100.0 * period / total
    for g in GROUPS:
        peer, own, either = (acc.get((g, c), 0.0) for c in ("peer", "rx_own", "either"))
        f = peer / (peer + own) if peer + own else 1.0
        acc[(g, "peer_est")] = peer + either * f
        acc[(g, "own_est")] = own + either * (1 - f)
    return acc, wake, outside


def perf_split(data):
    out = subprocess.run(["perf", "script", "-i", data, "--no-inline", "-F", "comm,tid,period,ip,sym"],
                         capture_output=True, text=True, check=False).stdout
    return split(perf_samples(out.splitlines()))


def gsum(acc, cats, groups=GROUPS):
    return sum(acc.get((g, c), 0.0) for g in groups for c in cats)


# rows of the second table: (label, function of (acc, wake, outside) -> %)
ALL_CATS = ["own", "peer", "rx_own", "either", "entry", "copy", "irq"]
SPLIT_ROWS = [
    ("replay system calls, all below (kernel and libc wrapper)", lambda a, w, o: gsum(a, ALL_CATS)),
    ("send (sendmsg, or write/writev to a socket)", lambda a, w, o: gsum(a, ALL_CATS, ["send"])),
    ("read", lambda a, w, o: gsum(a, ALL_CATS, ["read"])),
    ("connect", lambda a, w, o: gsum(a, ALL_CATS, ["connect"])),
    ("close", lambda a, w, o: gsum(a, ALL_CATS, ["close"])),
    ("a new connection's socket, setsockopt, epoll_ctl", lambda a, w, o: gsum(a, ALL_CATS, ["setup"])),
    ("(a) the caller's own kernel work (socket, TCP/IP transmit down to veth_xmit, "
     "receive queue, locks, scheduling)", lambda a, w, o: gsum(a, ["own"])),
    ("**(b) serverB's receive run in the agent's softirq (veth: net_rx_action, ip_rcv, "
     "tcp_v4_rcv, nginx's wake-up)**", lambda a, w, o: gsum(a, ["peer_est"])),
    ("of which in send", lambda a, w, o: gsum(a, ["peer_est"], ["send"])),
    ("of which in read (window-update ACKs)", lambda a, w, o: gsum(a, ["peer_est"], ["read"])),
    ("of which in connect (SYN, handshake ACK)", lambda a, w, o: gsum(a, ["peer_est"], ["connect"])),
    ("of which in close (FIN)", lambda a, w, o: gsum(a, ["peer_est"], ["close", "setup"])),
    ("of which the wake-up of serverB's nginx (sock_def_readable, ep_poll_callback, "
     "try_to_wake_up)", lambda a, w, o: sum(w.values())),
    ("(b') the agent's own sockets' receive in the same softirq (the ACK of its FIN)",
     lambda a, w, o: gsum(a, ["own_est"])),
    ("(b + b') not told apart by the chain (IP layer, shared TCP code), shared out above",
     lambda a, w, o: gsum(a, ["either"])),
    ("(c) system call entry/exit (entry_SYSCALL_64, do_syscall_64, libc wrapper)",
     lambda a, w, o: gsum(a, ["entry"])),
    ("(d) copies between user and kernel memory", lambda a, w, o: gsum(a, ["copy"])),
    ("interrupts and other softirqs inside the calls (timers, RCU, the profiler's tick)",
     lambda a, w, o: gsum(a, ["irq"])),
    ("outside the replay calls: network receive in the agent's softirq (interrupt exit, "
     "other calls)", lambda a, w, o: o["rx"]),
    ("BPF program samples in the agent's context (a JIT-ed bpf_prog_<tag> in the chain)",
     lambda a, w, o: o["bpf"]),
]


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


# --- system-wide: whose context runs which receive (perf record -a -g over a run) ---
def ps_roles(ps_lines):
    """From `ps -eo pid=,ppid=,args=` snapshots: {pid: role}, {agent pid: run id}."""
    args, ppid = {}, {}
    for line in ps_lines:
        f = line.split(None, 2)
        # the first sight of a pid (a later one may be "[nginx] <defunct>")
        if len(f) == 3 and f[0].isdigit() and f[1].isdigit() and int(f[0]) not in args:
            args[int(f[0])], ppid[int(f[0])] = f[2], int(f[1])
    roles, runs = {}, {}
    for pid, a in args.items():
        parent = args.get(ppid[pid], "")
        if a.startswith("nginx: worker") and "nginx-serverA" in parent:
            roles[pid] = "serverA's nginx"
        elif a.startswith("nginx: worker") and "nginx-serverB" in parent:
            roles[pid] = "serverB's nginx"
        elif "loadgen load" in a and ":81" not in a:
            roles[pid] = "client (loadgen)"
        elif re.search(r"/shadowtap\s", a) and "-i sta0" in a:
            m = re.search(r"(\d+-[\w-]+?)\.usage\.json", parent)
            if m:
                roles[pid], runs[pid] = "agent", m.group(1)
    return roles, runs


def system_table(samples, roles, runs, served):
    """{run id: {(role, kind): us per request}}: kind all, rx (under net_rx_action),
    bpf (a JIT-ed program), over the client's window of that run."""
    times = {}
    for pid, t, period, chain in samples:
        if pid in roles and t is not None:
            lo, hi = times.get(pid, (t, t))
            times[pid] = (min(lo, t), max(hi, t))
    out = {}
    for apid, rid in runs.items():
        if apid not in times or not served.get(rid):
            continue
        a0, a1 = times[apid]
        win = [times[p] for p, r in roles.items() if r.startswith("client") and p in times
               and a0 <= times[p][0] <= a1]
        w0, w1 = (min(w[0] for w in win), max(w[1] for w in win)) if win else (a0, a1)
        acc = {}
        for pid, t, period, chain in samples:
            role = "agent" if pid == apid else roles.get(pid)
            if role is None or role == "agent" and pid != apid or t is None or not w0 <= t <= w1:
                continue
            k = {sym for kern, sym in chain if kern}
            for kind, hit in (("all", True), ("rx", bool(k & RX_FNS)),
                              ("bpf", any(BPF_JIT.match(sym) for sym in k))):
                if hit:
                    acc[(role, kind)] = acc.get((role, kind), 0.0) + period
        out[rid] = {key: v / 1e3 / served[rid] for key, v in acc.items()}
    return out


SYSTEM_ROWS = [
    ("agent", "all", "agent: all its samples"),
    ("agent", "rx", "agent: network receive in its softirq (serverB's receive)"),
    ("agent", "bpf", "agent: BPF program"),
    ("serverB's nginx", "all", "serverB's nginx: all its samples"),
    ("serverB's nginx", "rx", "serverB's nginx: network receive in its softirq (the agent's "
     "receive of the answers)"),
    ("client (loadgen)", "all", "client: all its samples"),
    ("client (loadgen)", "rx", "client: network receive in its softirq (serverA's receive of "
     "the requests)"),
    ("client (loadgen)", "bpf", "client: BPF program (requests, packet_rcv on receive)"),
    ("serverA's nginx", "all", "serverA's nginx: all its samples"),
    ("serverA's nginx", "rx", "serverA's nginx: network receive in its softirq (the client's "
     "receive of the answers)"),
    ("serverA's nginx", "bpf", "serverA's nginx: BPF program (answers, dev_queue_xmit_nit)"),
]


def md_head(f, first, names):
    f.write("| %s | " % first + " | ".join(names) + " |\n")
    f.write("|---|" + "---|" * len(names) + "\n")


def md_row(f, label, vals, fmt="%.2f"):
    f.write("| %s | " % label + " | ".join(fmt % v for v in vals) + " |\n")


def write_system(f, table):
    ids = sorted(table)
    f.write("\n## System-wide: whose context runs which receive\n\n"
            "us per request served (win_served_a), from perf record -a -g -F 999 (no dwarf) "
            "over the client's window of each run, samples by process (roles from ps "
            "snapshots): on veth a packet's receive runs in the sender's softirq.\n\n")
    md_head(f, "context", ids)
    for role, kind, label in SYSTEM_ROWS:
        md_row(f, label, (table[i].get((role, kind), 0.0) for i in ids))


RX_ROW = ("of which, inside the replay rows above: serverB's receive run in the agent's "
          "context (veth softirq; second table)")


def write_split(f, scols):
    f.write("\n## The replay's system calls: what the kernel does there\n\n"
            "us of CPU per request, from each sample's call chain (perf script), times the "
            "same CPU per request (replay-bare: its own CPU over its life / requests replayed). "
            "(a) to (d) and the interrupts add up to the first row; (b) and (b') share out the "
            "receive the chain does not tell apart in proportion to what it does, per system "
            "call (all of it to serverB where no agent-side receive is marked).\n\n")
    md_head(f, "kernel work", [c[0] for c in scols])
    for label, fn in SPLIT_ROWS:
        md_row(f, label, (fn(*c[2]) * c[1] / 100.0 for c in scols))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs")
    ap.add_argument("--perf")
    ap.add_argument("--out")
    ap.add_argument("--split", help="perf script output: print its split in %% of samples")
    ap.add_argument("--system", help="perf record -a -g data of a system-wide pass")
    ap.add_argument("--system-ps", help="ps -eo pid=,ppid=,args= snapshots over that pass")
    ap.add_argument("--system-runs", help="that pass's runs.csv")
    a = ap.parse_args()
    if a.split:
        acc, wake, outside = split(perf_samples(open(a.split).read().splitlines()))
        for label, fn in SPLIT_ROWS:
            print("%6.2f%%  %s" % (fn(acc, wake, outside), label))
        return 0
    if not (a.runs and a.perf and a.out):
        ap.error("--runs, --perf and --out (or --split FILE)")
    rows = [r for r in csv.DictReader(open(a.runs)) if r["status"] == "ok" and
            (r["tool"].startswith("shadowtap") or r["tool"] == "replay-bare")]
    cols, scols = [], []
    for r in rows:
        rid = "%s-%s-%s-%s" % (r["repeat"], r["tool"], r["mix"], r["offered_rps"])
        data = os.path.join(a.perf, rid + ".data")
        name = "%s %s %s" % (r["tool"], r["mix"], r["offered_rps"])
        if not os.path.exists(data):
            continue
        if r["tool"] == "replay-bare":
            # no load-window CPU: the client's own CPU over its life per request replayed
            c, n = num(r.get("cpu_s")), num(r.get("replayed"))
            if c and n:
                scols.append((name, 1e6 * c / n, perf_split(data)))
            continue
        w, n, bpf = num(r.get("win_cpu_s")), num(r.get("win_served_a")), num(r.get("bpf_cpu_s"))
        if not w or not n:
            continue
        bpf_us = 1e6 * (bpf or 0) / n
        user_us = 1e6 * w / n - bpf_us
        pct = children_pct(data)
        stages = []
        for sname, entries, minus in STAGES:
            p = sum(share(pct, e) for e in entries) - sum(pct.get(m, 0.0) for m in minus
                                                         if any(share(pct, e) for e in entries))
            stages.append((sname, max(0.0, p) * user_us / 100.0))
        other = user_us - sum(v for _, v in stages)
        sp = perf_split(data)
        scols.append((name, user_us, sp))
        rx = gsum(sp[0], ["peer_est"]) * user_us / 100.0
        cols.append((name, bpf_us, stages, max(0.0, other), user_us + bpf_us, rx))
    if not cols and not scols:
        print("stages: no perf data", file=sys.stderr)
        return 1
    with open(a.out, "w") as f:
        f.write("# shadowtap cost per request by stage\n\n")
        if cols:
            f.write("us of CPU per request served. BPF: the capture program's run time "
                    "(run_time_ns / requests). The other rows: the agent's user+sys CPU over the load "
                    "window per request, split by the share of perf samples (--call-graph dwarf) inside "
                    "each stage's entry function; the perf recording itself slows the agent, so compare "
                    "rows within a column. The \"of which\" row is part of the replay rows above it, "
                    "not added to the total. Columns: tool, mix, offered rate.\n\n")
            md_head(f, "stage", [c[0] for c in cols])
            md_row(f, "BPF program (kernel)", (c[1] for c in cols))
            for i, (sname, _, _) in enumerate(STAGES):
                md_row(f, sname, (c[2][i][1] for c in cols))
                if sname.startswith("replay: response read"):
                    md_row(f, RX_ROW, (c[5] for c in cols))
            md_row(f, "other (kernel scheduling, allocation, timers, ...)", (c[3] for c in cols))
            md_row(f, "**total**", (c[4] for c in cols), "**%.2f**")
        write_split(f, scols)
        if a.system and a.system_ps and a.system_runs:
            out = subprocess.run(["perf", "script", "-i", a.system, "--no-inline", "-F",
                                  "comm,pid,tid,time,period,ip,sym"],
                                 capture_output=True, text=True, check=False).stdout
            roles, runs = ps_roles(open(a.system_ps).read().splitlines())
            served = {"%s-%s-%s-%s" % (r["repeat"], r["tool"], r["mix"], r["offered_rps"]):
                      num(r.get("win_served_a")) for r in csv.DictReader(open(a.system_runs))}
            write_system(f, system_table(perf_samples(out.splitlines(), head=True), roles, runs,
                                         served))
    print(open(a.out).read())
    return 0


if __name__ == "__main__":
    sys.exit(main())
