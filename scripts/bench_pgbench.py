#!/usr/bin/env python3
"""pgbench select-only, direct and through pg-proxy (masking on, agent-safe policy): TPS ratio
and added latency per query (p50, p99), from pgbench's per-transaction logs.

    python3 scripts/bench_pgbench.py [--seconds 20] [--clients 4] [--rounds 2] [--baseline OTHER_PG_PROXY] [--record] [--relay]

With --relay, a bare TCP relay (socat, a process per connection) is measured in the same rounds:
direct, relay and proxy side by side, in TPS and in whole-machine CPU per transaction, so the
proxy's cost over any hop at all is what is left.

With --record, a second pg-proxy of the same build records every session (--record DIR
--record-key KEY, signed checkpoints every 1000 records, fsync at checkpoints) and is measured
in the same rounds: recording on against recording off.

Starts its own PostgreSQL 15 (initdb/pg_ctl, as the postgres user when run as root) and the
pg-proxy example (build it first: cargo build --release -p sluice-examples --examples).
"""
import argparse
import glob
import os
import pathlib
import shutil
import socket
import statistics
import subprocess
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
PG_BIN = pathlib.Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_pg(cmd, **kw):
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--"] + cmd
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


PERF = shutil.which("perf")


def pgbench(port, seconds, clients, logdir, tag):
    """TPS and per-transaction latencies; with perf on the machine, also the whole machine's CPU
    time and context switches (`perf stat -a`) over the run, in the log's `stat` entry."""
    prefix = os.path.join(logdir, tag)
    cmd = ["pgbench", "-h", "127.0.0.1", "-p", str(port), "-U", "bench", "-S", "-M", "extended",
           "-c", str(clients), "-j", str(min(clients, 2)), "-T", str(seconds), "-l",
           "--log-prefix", prefix, "postgres"]
    if PERF:
        cmd = [PERF, "stat", "-a", "-x", ",", "-e", "task-clock,context-switches", "--"] + cmd
    r = subprocess.run(cmd, capture_output=True, text=True, check=True)
    tps = next(float(l.split("=")[1].split()[0]) for l in r.stdout.splitlines() if l.startswith("tps"))
    stat = {}
    for line in r.stderr.splitlines():
        f = line.split(",")
        if len(f) > 2 and f[2] in ("task-clock", "context-switches") and f[0].replace(".", "").isdigit():
            stat[f[2]] = float(f[0])
    pgbench.stats[tag] = (stat, tps * seconds)
    lat = []
    for f in glob.glob(prefix + "*"):
        for line in open(f):
            parts = line.split()
            lat.append(int(parts[2]))  # microseconds
    lat.sort()
    return tps, lat


pgbench.stats = {}


def proc_cpu(proc):
    """CPU seconds (user + system) a process has used so far."""
    f = open(f"/proc/{proc.pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def measured(proc, port, seconds, clients, logdir, tag):
    """pgbench through `proc`, with the CPU time `proc` itself used per transaction (us)."""
    before = proc_cpu(proc)
    tps, lat = pgbench(port, seconds, clients, logdir, tag)
    measured.cpu[tag] = (proc_cpu(proc) - before) * 1e6 / (tps * seconds)
    return tps, lat


measured.cpu = {}


def side_by_side(a, b, seconds, clients):
    """pgbench through proxies `a` and `b` at the same time (clients split between them), so
    both see the same state of a noisy machine: each one's TPS and CPU time per transaction."""
    procs, before = {}, {}
    for name, (proc, port) in (("a", a), ("b", b)):
        before[name] = proc_cpu(proc)
        procs[name] = subprocess.Popen(
            ["pgbench", "-h", "127.0.0.1", "-p", str(port), "-U", "bench", "-S", "-M", "extended",
             "-c", str(max(1, clients // 2)), "-j", "1", "-T", str(seconds), "postgres"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = {}
    for name, (proc, _) in (("a", a), ("b", b)):
        text = procs[name].communicate()[0]
        tps = next(float(l.split("=")[1].split()[0]) for l in text.splitlines() if l.startswith("tps"))
        out[name] = (tps, (proc_cpu(proc) - before[name]) * 1e6 / (tps * seconds))
    return out["a"], out["b"]


def per_tx(tag):
    """CPU microseconds and context switches per transaction over a run (whole machine)."""
    stat, txs = pgbench.stats.get(tag, ({}, 0))
    if not txs or "task-clock" not in stat:
        return None
    return stat["task-clock"] * 1000 / txs, stat.get("context-switches", 0) / txs


def pct(v, p):
    return v[min(len(v) - 1, int(len(v) * p))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--baseline", metavar="PG_PROXY",
                    help="another pg-proxy binary (an earlier build) measured in the same run, interleaved")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--relay", action="store_true",
                    help="also measure a bare socat relay in the same rounds (the cost of any hop)")
    ap.add_argument("--record", action="store_true",
                    help="also measure pg-proxy recording every session (same build), interleaved")
    a = ap.parse_args()
    work = pathlib.Path(tempfile.mkdtemp(prefix="sluice-pgbench-"))
    os.chmod(work, 0o777)
    data = work / "data"
    port, proxy_port = free_port(), free_port()
    try:
        if os.geteuid() == 0:
            shutil.chown(work, "postgres")
        as_pg([str(PG_BIN / "initdb"), "-D", str(data), "-U", "bench", "--auth=trust"])
        as_pg([str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(work / "log"), "-w", "start", "-o",
               f"-p {port} -k {data} -c listen_addresses=127.0.0.1"])
        subprocess.run(["pgbench", "-h", "127.0.0.1", "-p", str(port), "-U", "bench", "-i", "-s", "10", "postgres"],
                       check=True, capture_output=True)
        proxy = subprocess.Popen([str(ROOT / "target/release/examples/pg-proxy"), "--listen",
                                  f"127.0.0.1:{proxy_port}", "--upstream", f"127.0.0.1:{port}", "--quiet"])
        base_port = free_port()
        base = a.baseline and subprocess.Popen([a.baseline, "--listen", f"127.0.0.1:{base_port}", "--upstream",
                                                f"127.0.0.1:{port}", "--quiet"])
        relay_port = free_port()
        relay = a.relay and subprocess.Popen(["socat", f"TCP-LISTEN:{relay_port},bind=127.0.0.1,fork,reuseaddr",
                                              f"TCP:127.0.0.1:{port},nodelay"])
        rec_port, rec = free_port(), None
        if a.record:
            key, rec_dir = work / "record.key", work / "recordings"
            rec_dir.mkdir()
            subprocess.run([str(ROOT / "target/release/sluice"), "keygen", "--out", str(key)], check=True,
                           capture_output=True)
            rec = subprocess.Popen([str(ROOT / "target/release/examples/pg-proxy"), "--listen",
                                    f"127.0.0.1:{rec_port}", "--upstream", f"127.0.0.1:{port}", "--quiet",
                                    "--record", str(rec_dir), "--record-key", str(key)])
        time.sleep(0.5)
        # Warm up every path, then measure them in turn and keep the best of each.
        pgbench(port, 3, a.clients, str(work), "warm-d")
        pgbench(proxy_port, 3, a.clients, str(work), "warm-p")
        if base:
            pgbench(base_port, 3, a.clients, str(work), "warm-b")
        if rec:
            pgbench(rec_port, 3, a.clients, str(work), "warm-r")
        if relay:
            pgbench(relay_port, 3, a.clients, str(work), "warm-s")
        runs = {"direct": [], "proxy": [], "base": [], "rec": [], "relay": []}
        for i in range(a.rounds):
            runs["direct"].append(pgbench(port, a.seconds, a.clients, str(work), f"d{i}"))
            runs["proxy"].append(measured(proxy, proxy_port, a.seconds, a.clients, str(work), f"p{i}"))
            if base:
                runs["base"].append(pgbench(base_port, a.seconds, a.clients, str(work), f"b{i}"))
            if relay:
                runs["relay"].append(pgbench(relay_port, a.seconds, a.clients, str(work), f"s{i}"))
            if rec:
                runs["rec"].append(measured(rec, rec_port, a.seconds, a.clients, str(work), f"r{i}"))
        print(f"proxy process CPU per transaction (median of rounds): {statistics.median(measured.cpu[f'p{i}'] for i in range(a.rounds)):.1f} us")
        if base:
            base.terminate()
        (d_tps, d_lat), d_i = max((r, i) for i, r in enumerate(runs["direct"]))
        (p_tps, p_lat), p_i = max((r, i) for i, r in enumerate(runs["proxy"]))
        print(f"pgbench -S -M extended, {a.clients} clients, {a.seconds} s, scale 10")
        print(f"direct:      {d_tps:10.0f} tps   p50 {pct(d_lat, .5):5d} us   p99 {pct(d_lat, .99):5d} us")
        print(f"via proxy:   {p_tps:10.0f} tps   p50 {pct(p_lat, .5):5d} us   p99 {pct(p_lat, .99):5d} us")
        print(f"ratio:       {100 * p_tps / d_tps:.1f}% of direct TPS (target >= 85%)")
        if base:
            (b_tps, b_lat), _ = max((r, i) for i, r in enumerate(runs["base"]))
            print(f"baseline:    {b_tps:10.0f} tps   p50 {pct(b_lat, .5):5d} us   p99 {pct(b_lat, .99):5d} us")
            print(f"this build:  {100 * p_tps / b_tps:.1f}% of the baseline proxy's TPS"
                  f" (every run, proxy/baseline: {[round(r[0]) for r in runs['proxy']]} / "
                  f"{[round(r[0]) for r in runs['base']]})")
        if rec:
            (r_tps, r_lat), r_i = max((r, i) for i, r in enumerate(runs["rec"]))
            print(f"recording:   {r_tps:10.0f} tps   p50 {pct(r_lat, .5):5d} us   p99 {pct(r_lat, .99):5d} us")
            # Rounds alternate off/on; this machine swings between states from one round to
            # the next, so the pairs are shown, but the side-by-side rounds below decide.
            pairs = [on[0] / off[0] for on, off in zip(runs["rec"], runs["proxy"])]
            print(f"rounds in turn: median {100 * statistics.median(pairs):.1f}% of the proxy's TPS with recording off;"
                  f" every round on/off: {[round(r[0]) for r in runs['rec']]} / {[round(r[0]) for r in runs['proxy']]}")
            # Side by side: both proxies loaded at once (start order alternating), so both runs
            # of a round see the same machine.
            ratios, cpu_on, cpu_off = [], [], []
            for i in range(2 * a.rounds):
                if i % 2:
                    off, on = side_by_side((proxy, proxy_port), (rec, rec_port), a.seconds, a.clients)
                else:
                    on, off = side_by_side((rec, rec_port), (proxy, proxy_port), a.seconds, a.clients)
                ratios.append(on[0] / off[0])
                cpu_on.append(on[1])
                cpu_off.append(off[1])
            rec.terminate()
            rec.wait()
            size = sum(f.stat().st_size for f in (work / "recordings").glob("*.jsonl"))
            records = sum(1 for f in (work / "recordings").glob("*.jsonl") for _ in open(f, "rb"))
            print(f"side by side: recording on at median {100 * statistics.median(ratios):.1f}% of recording off's TPS"
                  f" (target >= 95%); every round: {[round(100 * r, 1) for r in ratios]}")
            on, off = statistics.median(cpu_on), statistics.median(cpu_off)
            print(f"proxy process CPU per transaction, side by side (median): recording on {on:.1f} us, off {off:.1f} us:"
                  f" recording adds {on - off:.1f} us; {records} records, {size / 1e6:.1f} MB written in all")
        if relay:
            relay.terminate()
            (s_tps, s_lat), s_i = max((r, i) for i, r in enumerate(runs["relay"]))
            print(f"via socat:   {s_tps:10.0f} tps   p50 {pct(s_lat, .5):5d} us   p99 {pct(s_lat, .99):5d} us")
            print(f"proxy/relay: {100 * p_tps / s_tps:.1f}% of the bare relay's TPS (target >= 95%); relay"
                  f" {100 * s_tps / d_tps:.1f}% of direct; every round proxy/relay:"
                  f" {[round(r[0]) for r in runs['proxy']]} / {[round(r[0]) for r in runs['relay']]}")
            s_cpu, p_cpu = per_tx(f"s{s_i}"), per_tx(f"p{p_i}")
            if s_cpu and p_cpu:
                print(f"per transaction (whole machine): relay {s_cpu[0]:.1f} us CPU, proxy {p_cpu[0]:.1f} us:"
                      f" the proxy adds {p_cpu[0] - s_cpu[0]:.1f} us over the relay (target <= 10 us)")
        proxy.terminate()
        print(f"added:       p50 {pct(p_lat, .5) - pct(d_lat, .5)} us, p99 {pct(p_lat, .99) - pct(d_lat, .99)} us"
              " per query (target <= 100 us at p99)")
        d, p = per_tx(f"d{d_i}"), per_tx(f"p{p_i}")
        if d and p:
            # With the cores saturated, TPS is (CPU time available) / (CPU time per transaction),
            # so the CPU cost per transaction bounds the ratio whatever the proxy does.
            print(f"per transaction (whole machine, perf stat -a): direct {d[0]:.1f} us CPU, {d[1]:.2f} context"
                  f" switches; via proxy {p[0]:.1f} us CPU, {p[1]:.2f} context switches")
            print(f"CPU added per transaction by the hop: {p[0] - d[0]:.1f} us")
    finally:
        subprocess.run((["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []) +
                       [str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
