#!/usr/bin/env python3
"""Helper for scripts/bench.sh (Python 3 standard library only). A benchmark, not a test.

  bench_tool.py server --port N [--bind 127.0.0.1] [--lifetime S]
      The target: a TCP server. Each connection starts with a 13-byte header
      (1 byte mode, u64 big-endian length, u32 big-endian seed):
        D/d  download: send LENGTH bytes of the seed's pattern, then close
        U/u  upload: read until LENGTH bytes (or EOF), reply u64 count + u32 crc32 (crc only for 'u')
        E    echo everything until EOF
        H    HTTP-sized round trips until EOF: read a LENGTH-byte request, answer SEED bytes
  bench_tool.py user --config FILE
      The user-level part (run as the test user in the laptop namespace): a new ssh, an sftp tree
      upload and download, 1 GiB through `ssh HOST cat`, and forwarded-port round trips, for
      dbgbox's Host block and OpenSSH's ssh -J (FILE, JSON, from bench.sh, names the commands).
  bench_tool.py run --tunnel NAME=PORT=PID[,PID...] ... [--quick] [--json FILE]
      Runs every measurement against each local port, alternating tunnels per metric, and prints
      the figures, ratios and targets. PIDs are the tunnel processes (VmHWM, CPU).
  bench_tool.py facts     machine facts

Every loop has a count; every socket operation has a timeout; every metric has a deadline.
"""
import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import struct
import sys
import threading
import time
import zlib

HDR = struct.Struct(">cQI")
BLOCK = 256 * 1024
IO_TIMEOUT = 30.0
MiB = 1024 * 1024

_blocks = {}
_blocks_lock = threading.Lock()


def block(seed):
    """The 256 KiB pattern block of a seed; a stream is this block repeated."""
    with _blocks_lock:
        b = _blocks.get(seed)
        if b is None:
            b = random.Random(seed).randbytes(BLOCK)
            if len(_blocks) < 256:
                _blocks[seed] = b
        return b


def pattern_crc(seed, length):
    crc, left, blk = 0, length, block(seed)
    while left > 0:
        n = min(left, BLOCK)
        crc = zlib.crc32(memoryview(blk)[:n], crc)
        left -= n
    return crc


def recv_exact(sock, n):
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        r = sock.recv_into(view[got:], n - got)
        if r == 0:
            raise ConnectionError("EOF after %d of %d bytes" % (got, n))
        got += r
    return bytes(buf)


def send_pattern(sock, seed, length):
    blk = memoryview(block(seed))
    left = length
    while left > 0:
        n = min(left, BLOCK)
        sock.sendall(blk[:n])
        left -= n


# --------------------------------------------------------------------------------------------- server

def serve_conn(conn):
    try:
        conn.settimeout(120.0)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        mode, length, seed = HDR.unpack(recv_exact(conn, HDR.size))
        if mode in (b"D", b"d"):
            send_pattern(conn, seed, length)
        elif mode in (b"U", b"u"):
            buf = bytearray(1024 * 1024)
            view = memoryview(buf)
            got, crc, check = 0, 0, mode == b"u"
            while got < length:
                r = conn.recv_into(view, min(len(buf), length - got))
                if r == 0:
                    break
                if check:
                    crc = zlib.crc32(view[:r], crc)
                got += r
            conn.sendall(struct.pack(">QI", got, crc))
        elif mode == b"E":
            for _ in range(100_000_000):
                data = conn.recv(65536)
                if not data:
                    break
                conn.sendall(data)
        elif mode == b"H":
            answer = block(7)[:seed]
            for _ in range(100_000_000):
                try:
                    recv_exact(conn, length)
                except ConnectionError:
                    break
                conn.sendall(answer)
        try:
            conn.shutdown(socket.SHUT_WR)
            conn.settimeout(5.0)
            conn.recv(1)  # wait for the peer to close: the last bytes are not cut off by a reset
        except OSError:
            pass
    except (OSError, ConnectionError, struct.error):
        pass
    finally:
        conn.close()


def cmd_server(a):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((a.bind, a.port))
    ls.listen(1024)
    ls.settimeout(1.0)
    print("listening %s:%d" % (a.bind, a.port), flush=True)
    deadline = time.monotonic() + a.lifetime
    while time.monotonic() < deadline:
        try:
            conn, _ = ls.accept()
        except socket.timeout:
            continue
        threading.Thread(target=serve_conn, args=(conn,), daemon=True).start()
    return 0


# --------------------------------------------------------------------------------------------- client

def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def m_download(port, nbytes):
    s = connect(port)
    try:
        buf = bytearray(1024 * 1024)
        view = memoryview(buf)
        t0 = time.perf_counter()
        s.sendall(HDR.pack(b"D", nbytes, 1))
        got = 0
        while got < nbytes:
            r = s.recv_into(view, min(len(buf), nbytes - got))
            if r == 0:
                raise ConnectionError("download: EOF after %d of %d bytes" % (got, nbytes))
            got += r
        t1 = time.perf_counter()
    finally:
        s.close()
    return {"mibs": nbytes / MiB / (t1 - t0), "seconds": t1 - t0}


def m_upload(port, nbytes):
    s = connect(port)
    try:
        t0 = time.perf_counter()
        s.sendall(HDR.pack(b"U", nbytes, 1))
        send_pattern(s, 1, nbytes)
        count, _ = struct.unpack(">QI", recv_exact(s, 12))
        t1 = time.perf_counter()
    finally:
        s.close()
    if count != nbytes:
        raise ConnectionError("upload: server got %d of %d bytes" % (count, nbytes))
    return {"mibs": nbytes / MiB / (t1 - t0), "seconds": t1 - t0}


def pct(values, p):
    v = sorted(values)
    if not v:
        return float("nan")
    k = min(len(v) - 1, max(0, int(round(p / 100.0 * (len(v) - 1)))))
    return v[k]


def m_rtt(port, count, size=64, warmup=50):
    s = connect(port)
    samples = []
    try:
        s.sendall(HDR.pack(b"E", 0, 0))
        msg = os.urandom(size)
        for i in range(warmup + count):
            t0 = time.perf_counter()
            s.sendall(msg)
            back = recv_exact(s, size)
            t1 = time.perf_counter()
            if back != msg:
                raise ConnectionError("echo: wrong bytes back")
            if i >= warmup:
                samples.append((t1 - t0) * 1e6)
    finally:
        s.close()
    return {"p50_us": pct(samples, 50), "p99_us": pct(samples, 99), "mean_us": sum(samples) / len(samples),
            "count": len(samples)}


def m_connect(port, count, warmup=5):
    samples = []
    hdr = HDR.pack(b"E", 0, 0) + b"x"
    for i in range(warmup + count):
        t0 = time.perf_counter()
        s = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
        try:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(hdr)
            if recv_exact(s, 1) != b"x":
                raise ConnectionError("connect: wrong first byte")
            t1 = time.perf_counter()
        finally:
            s.close()
        if i >= warmup:
            samples.append((t1 - t0) * 1e6)
    return {"p50_us": pct(samples, 50), "p90_us": pct(samples, 90), "count": len(samples)}


def read_status(pid):
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmHWM", "VmRSS", "Threads"):
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


def reset_hwm(pid):
    try:
        with open("/proc/%d/clear_refs" % pid, "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def m_streams(port, pids, nstreams, each):
    """nstreams concurrent connections: even ones download, odd ones upload, `each` bytes, crc32-checked."""
    expected = {i: pattern_crc(1000 + i, each) for i in range(0, nstreams, 2)}
    hwm_before = sum(read_status(p).get("VmHWM", 0) for p in pids)
    for pid in pids:
        reset_hwm(pid)
    results = [None] * nstreams
    barrier = threading.Barrier(nstreams + 1, timeout=60)
    stop_sampling = threading.Event()
    peak_rss = [0]

    def sampler():
        for _ in range(100000):
            total = sum(read_status(p).get("VmRSS", 0) for p in pids)
            peak_rss[0] = max(peak_rss[0], total)
            if stop_sampling.wait(0.05):
                break

    def worker(i):
        seed = 1000 + i
        try:
            s = connect(port)
        except OSError as e:
            results[i] = "connect: %s" % e
            try:
                barrier.wait()
            except threading.BrokenBarrierError:
                pass
            return
        try:
            barrier.wait()
            if i % 2 == 0:
                s.sendall(HDR.pack(b"d", each, seed))
                buf = bytearray(256 * 1024)
                view = memoryview(buf)
                got, crc = 0, 0
                while got < each:
                    r = s.recv_into(view, min(len(buf), each - got))
                    if r == 0:
                        break
                    crc = zlib.crc32(view[:r], crc)
                    got += r
                results[i] = True if (got == each and crc == expected[i]) else "download %d/%d crc %08x" % (got, each, crc)
            else:
                s.sendall(HDR.pack(b"u", each, seed))
                send_pattern(s, seed, each)
                count, crc = struct.unpack(">QI", recv_exact(s, 12))
                results[i] = True if (count == each and crc == pattern_crc(seed, each)) else "upload %d/%d" % (count, each)
        except (OSError, ConnectionError, threading.BrokenBarrierError) as e:
            results[i] = "%s: %s" % (type(e).__name__, e)
        finally:
            s.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(nstreams)]
    samp = threading.Thread(target=sampler, daemon=True)
    for t in threads:
        t.start()
    samp.start()
    barrier.wait()
    t0 = time.perf_counter()
    deadline = time.monotonic() + 180
    for t in threads:
        t.join(max(0.1, deadline - time.monotonic()))
    t1 = time.perf_counter()
    stop_sampling.set()
    samp.join(5)
    ok = sum(1 for r in results if r is True)
    errors = [r for r in results if r is not True][:3]
    hwm = sum(read_status(p).get("VmHWM", 0) for p in pids)
    return {"mibs": nstreams * each / MiB / (t1 - t0), "seconds": t1 - t0, "ok": ok, "n": nstreams,
            "errors": [str(e) for e in errors], "hwm_kib": hwm, "hwm_before_kib": hwm_before, "peak_rss_sampled_kib": peak_rss[0]}


# --------------------------------------------------------------------------------------------- CPU accounting

HZ = os.sysconf("SC_CLK_TCK")


def machine_ticks():
    """The first line of /proc/stat: (busy, idle) ticks summed over all CPUs (idle includes iowait)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return sum(v) - v[3] - v[4], v[3] + v[4]


def cpu_snapshot():
    """(pid, tid) -> (process comm, thread comm, CPU ticks, ns waited on a run queue) for every
    thread on the machine; key None -> the machine's (busy, idle) ticks."""
    snap = {None: machine_ticks()}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/comm" % pid) as f:
                pcomm = f.read().strip()
            tids = os.listdir("/proc/%s/task" % pid)
        except OSError:
            continue
        for tid in tids:
            try:
                with open("/proc/%s/task/%s/stat" % (pid, tid)) as f:
                    st = f.read()
            except OSError:
                continue
            rp = st.rfind(")")
            tcomm = st[st.find("(") + 1:rp]
            fields = st[rp + 2:].split()
            try:
                # schedstat: ns on a CPU, ns runnable but waiting for one, timeslices.
                with open("/proc/%s/task/%s/schedstat" % (pid, tid)) as f:
                    waited = int(f.read().split()[1])
            except (OSError, IndexError, ValueError):
                waited = 0
            snap[(int(pid), int(tid))] = (pcomm, tcomm, int(fields[11]) + int(fields[12]), waited)
    return snap


def cpu_diff(before, after, wall, top=8):
    rows = []
    for key, value in after.items():
        if key is None:
            continue
        pcomm, tcomm, ticks, waited = value
        prev = before.get(key, (None, None, 0, 0))
        d = (ticks - prev[2]) / HZ
        if d > 0:
            rows.append((d, key[0], key[1], pcomm, tcomm, (waited - prev[3]) / 1e9))
    rows.sort(reverse=True)
    total = sum(r[0] for r in rows)
    busy, idle = (a - b for a, b in zip(after[None], before[None]))
    ncpu = os.cpu_count() or 1
    return {"wall": wall, "total_cpu": total,
            "machine_busy_pct": round(100 * ncpu * busy / max(1, busy + idle)),
            "machine_idle_pct": round(100 * ncpu * idle / max(1, busy + idle)), "ncpu": ncpu,
            "top": [{"cpu_s": round(r[0], 2), "pct": round(100 * r[0] / wall, 1), "pid": r[1], "tid": r[2],
                     "proc": r[3], "thread": r[4], "wait_pct": round(100 * r[5] / wall)} for r in rows[:top]]}


# --------------------------------------------------------------------------------------------- run + report

def netns_ino(path):
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


LOGIN_NS_INO = netns_ino("/run/netns/dbgbox-login")
LAPTOP_NS_INO = netns_ino("/run/netns/dbgbox-laptop")


def auto_label(pid, pcomm):
    if pid == os.getpid():
        return "client"
    if pcomm == "sshd":
        ino = netns_ino("/proc/%d/ns/net" % pid)
        return "sshd@login" if ino == LOGIN_NS_INO else "sshd@laptop?" if ino == LAPTOP_NS_INO else "sshd@node"
    return pcomm


def fmt_cpu(cpu, labels):
    out = []
    for r in cpu["top"]:
        if r["pct"] < 3:
            continue
        who = labels.get(r["pid"]) or auto_label(r["pid"], r["proc"])
        name = who if r["thread"] == r["proc"] else "%s/%s" % (who, r["thread"])
        out.append("%s[%d] %.0f%% (waited %d%%)" % (name, r["tid"], r["pct"], r["wait_pct"]))
    return ", ".join(out) + "; machine: %d%% busy, %d%% idle of %d%%" % (
        cpu["machine_busy_pct"], cpu["machine_idle_pct"], 100 * cpu["ncpu"])


def cmd_run(a):
    tunnels = []
    for spec in a.tunnel:
        name, port, pids = spec.split("=", 2)
        tunnels.append((name, int(port), [int(p) for p in pids.split(",") if p]))
    size = (128 if a.quick else 1024) * MiB
    rtt_n = 500 if a.quick else 2000
    conn_n = 50 if a.quick else 200
    streams_n, each = 64, (4 if a.quick else 16) * MiB
    labels = {}
    for name, _, pids in tunnels:
        for p in pids:
            labels[p] = "%s:%s" % (name, open("/proc/%d/comm" % p).read().strip() if os.path.exists("/proc/%d" % p) else "?")
    labels.update({int(k): v for k, v in (x.split("=", 1) for x in a.label)})

    metrics = [
        ("download", "%d MiB download" % (size // MiB), lambda port, pids: m_download(port, size)),
        ("upload", "%d MiB upload" % (size // MiB), lambda port, pids: m_upload(port, size)),
        ("rtt", "64 B echo RTT x%d" % rtt_n, lambda port, pids: m_rtt(port, rtt_n)),
        ("connect", "connect→first byte x%d" % conn_n, lambda port, pids: m_connect(port, conn_n)),
        ("streams", "%d streams x %d MiB" % (streams_n, each // MiB), lambda port, pids: m_streams(port, pids, streams_n, each)),
    ]
    only = set(a.only.split(",")) if a.only else None
    rounds = max(1, a.rounds)
    res = {name: {} for name, _, _ in tunnels}
    for key, title, fn in metrics:
        if only and key not in only:
            continue
        runs = {name: [] for name, _, _ in tunnels}
        for rnd in range(rounds):
            # Alternate who goes first (ABBA...): neither tunnel always follows the other.
            order = tunnels if rnd % 2 == 0 else list(reversed(tunnels))
            for name, port, pids in order:
                before, t0 = cpu_snapshot(), time.perf_counter()
                try:
                    r = fn(port, pids)
                except (OSError, ConnectionError) as e:
                    r = {"error": "%s: %s" % (type(e).__name__, e)}
                wall = time.perf_counter() - t0
                r["cpu"] = cpu_diff(before, cpu_snapshot(), wall)
                r["hwm_total_kib"] = sum(read_status(p).get("VmHWM", 0) for p in pids)
                runs[name].append(r)
                print("  %-26s %-8s round %d/%d: %s" % (title, name, rnd + 1, rounds, short(key, r)), flush=True)
                print("      CPU: %s" % fmt_cpu(r["cpu"], labels), flush=True)
            time.sleep(0.5)
        for name, _, _ in tunnels:
            res[name][key] = combine(key, runs[name])
            print("  %-26s %-8s median of %d: %s" % (title, name, rounds, short(key, res[name][key])), flush=True)
    for name, _, pids in tunnels:
        res[name]["threads"] = sum(read_status(p).get("Threads", 0) for p in pids)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    report(res, [t[0] for t in tunnels], size, rtt_n, conn_n, streams_n, each)
    return 0


# Per metric: the fields combined over rounds (median), and those taken at their worst.
MEDIAN_FIELDS = {"download": ("mibs", "seconds"), "upload": ("mibs", "seconds"),
                 "rtt": ("p50_us", "p99_us", "mean_us"), "connect": ("p50_us", "p90_us"),
                 "streams": ("mibs", "seconds")}
PRIMARY = {"download": "mibs", "upload": "mibs", "rtt": "p50_us", "connect": "p50_us", "streams": "mibs"}


def median(values):
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2.0


def combine(key, runs):
    """One figure from a metric's rounds: the median of each measured field; for the streams, the
    fewest checksums ok and the highest memory (the limit must hold in every round). Any round's
    error is the metric's error. `rounds` keeps each round's primary figure."""
    errors = [r["error"] for r in runs if "error" in r]
    if errors:
        return {"error": errors[0], "rounds": [r.get(PRIMARY[key]) for r in runs]}
    out = {f: median([r[f] for r in runs]) for f in MEDIAN_FIELDS[key]}
    out["rounds"] = [r[PRIMARY[key]] for r in runs]
    if key in ("rtt", "connect"):
        out["count"] = sum(r["count"] for r in runs)
    if key == "streams":
        out["ok"] = min(r["ok"] for r in runs)
        out["n"] = runs[0]["n"]
        out["errors"] = [e for r in runs for e in r["errors"]][:3]
        for f in ("hwm_kib", "hwm_before_kib", "peak_rss_sampled_kib"):
            out[f] = max(r[f] for r in runs)
    out["hwm_total_kib"] = max(r.get("hwm_total_kib", 0) for r in runs)
    return out


def short(key, r):
    if "error" in r:
        return "ERROR " + r["error"]
    if key in ("download", "upload"):
        return "%.1f MiB/s (%.2f s)" % (r["mibs"], r["seconds"])
    if key == "rtt":
        return "p50 %.0f µs  p99 %.0f µs  mean %.0f µs" % (r["p50_us"], r["p99_us"], r["mean_us"])
    if key == "connect":
        return "p50 %.0f µs  p90 %.0f µs" % (r["p50_us"], r["p90_us"])
    if key == "streams":
        return "%.1f MiB/s aggregate, %d/%d checksums ok, VmHWM %.1f MiB%s" % (
            r["mibs"], r["ok"], r["n"], r["hwm_kib"] / 1024, (" errors: %s" % r["errors"]) if r["errors"] else "")
    return str(r)


def report(res, names, size, rtt_n, conn_n, streams_n, each):
    d, o = names[0], names[1]
    D, O = res[d], res[o]

    def get(side, key, field):
        v = side.get(key, {})
        return v.get(field) if "error" not in v else None

    rows = [
        ("%d MiB download (MiB/s)" % (size // MiB), "download", "mibs", "higher", "%.1f", (">=", 1.1)),
        ("%d MiB upload (MiB/s)" % (size // MiB), "upload", "mibs", "higher", "%.1f", (">=", 1.1)),
        ("%d streams x %d MiB (MiB/s)" % (streams_n, each // MiB), "streams", "mibs", "higher", "%.1f", (">=", 1.1)),
        ("64 B RTT p50 (µs)", "rtt", "p50_us", "lower", "%.0f", ("<=", 0.9)),
        ("64 B RTT p99 (µs)", "rtt", "p99_us", "lower", "%.0f", None),
        ("connect→1st byte p50 (µs)", "connect", "p50_us", "lower", "%.0f", ("<=", 1.0)),
        ("connect→1st byte p90 (µs)", "connect", "p90_us", "lower", "%.0f", None),
        ("peak RSS, 64 streams (MiB)", "streams", "hwm_kib", "lower", "%.1f", None),
        ("peak RSS before streams (MiB)", "streams", "hwm_before_kib", "lower", "%.1f", None),
    ]
    print()
    rounds = max([len(D.get(k, {}).get("rounds") or []) for k in PRIMARY] + [1])
    print("== figures (%s = dbgbox tunnel; %s = ssh -L with ProxyCommand ssh -W; medians of %d round%s, "
          "ratio of the medians, then each round's ratio) ==" % (d, o, rounds, "" if rounds == 1 else "s"))
    print("%-30s %12s %12s %10s  %s" % ("metric", d, o, "ratio", "ratio is %s/%s" % (d, o)))
    verdicts = []
    for label, key, field, better, fmt, target in rows:
        a, b = get(D, key, field), get(O, key, field)
        scale = 1024.0 if field.endswith("kib") else 1.0
        sa = (fmt % (a / scale)) if a is not None else "n/a"
        sb = (fmt % (b / scale)) if b is not None else "n/a"
        ratio = (a / b) if (a is not None and b) else None
        sr = "%.2fx" % ratio if ratio is not None else "n/a"
        print("%-30s %12s %12s %10s  (%s is better)" % (label, sa, sb, sr, better))
        ra, rb = D.get(key, {}).get("rounds"), O.get(key, {}).get("rounds")
        if field == PRIMARY.get(key) and ra and rb and len(ra) > 1 and None not in ra + rb and 0 not in rb:
            print("%-30s %38s" % ("", "rounds: " + " ".join("%.2fx" % (x / y) for x, y in zip(ra, rb))))
        if target:
            op, t = target
            met = ratio is not None and (ratio >= t if op == ">=" else ratio <= t)
            verdicts.append(("%s: %s/%s %s %.1f" % (label.split(" (")[0], d, o, op, t), sr, met))
    hwm = get(D, "streams", "hwm_kib")
    ok_d, ok_o = get(D, "streams", "ok"), get(O, "streams", "ok")
    limit_kib = 30e6 / 1024  # 30 MB = 30,000,000 bytes
    verdicts.append(("%s VmHWM with %d streams <= 30 MB" % (d, streams_n),
                     "%.1f MB" % (hwm * 1024 / 1e6) if hwm is not None else "n/a",
                     hwm is not None and hwm <= limit_kib))
    print()
    print("== targets (issue 3) ==")
    for what, value, met in verdicts:
        print("  %-52s %-10s %s" % (what, value, "MET" if met else "NOT MET"))
    print("  checksums: %s %s/%d ok, %s %s/%d ok" % (d, ok_d, streams_n, o, ok_o, streams_n))
    print("  threads in the tunnel process(es) at the end: %s %s, %s %s" % (d, D.get("threads"), o, O.get("threads")))


# --------------------------------------------------------------------------------------------- the user-level part

def run_checked(argv, what, timeout=600, **kw):
    r = subprocess.run(argv, stdin=kw.pop("stdin", subprocess.DEVNULL), stdout=kw.pop("stdout", subprocess.PIPE),
                       stderr=subprocess.PIPE, timeout=timeout, **kw)
    if r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (what, r.returncode, (r.stderr or b"").decode(errors="replace").strip()[-300:]))
    return r


def u_new_ssh(argv, runs):
    """`ssh HOST true` `runs` times (after two not counted): p50 and p90 in ms."""
    samples = []
    for i in range(runs + 2):
        t0 = time.perf_counter()
        run_checked(argv + ["true"], "ssh true", timeout=60)
        if i >= 2:
            samples.append((time.perf_counter() - t0) * 1e3)
    return {"p50_ms": pct(samples, 50), "p90_ms": pct(samples, 90), "count": len(samples), "samples": samples}


def make_tree(root, files, total, seed=15):
    """`files` files in directories of 50, `total` bytes in all (sizes vary, seeded), random bytes."""
    rnd = random.Random(seed)
    weights = [rnd.expovariate(1.0) + 0.05 for _ in range(files)]
    scale = total / sum(weights)
    sizes = [int(w * scale) for w in weights]
    sizes[-1] += total - sum(sizes)
    data = os.urandom(max(sizes))
    for i, size in enumerate(sizes):
        d = os.path.join(root, "pkg%02d" % (i // 50))
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "mod%04d.py" % i), "wb") as f:
            f.write(data[:size])
    return len(sizes), sum(sizes)


def tree_stats(root):
    count = size = 0
    for d, _, names in os.walk(root):
        for n in names:
            count += 1
            size += os.lstat(os.path.join(d, n)).st_size
    return count, size


def u_sftp(side, tree, work, label, files, total):
    """Upload the tree with `put -r` into the container's /tmp, check it there, download it back
    with `get -r`, check it here. MiB/s of each."""
    remote = "/tmp/dbgbox-bench-tree-%s" % label
    local = os.path.join(work, "down-%s" % label)
    run_checked(side["ssh"] + ["rm", "-rf", remote], "remote cleanup")
    shutil.rmtree(local, ignore_errors=True)
    batch = os.path.join(work, "sftp-%s.batch" % label)
    with open(batch, "w") as f:
        f.write("put -r %s %s\n" % (tree, remote))
    t0 = time.perf_counter()
    run_checked(side["sftp"] + ["-q", "-b", batch, side["sftp_host"]], "sftp put -r", timeout=1800)
    up = time.perf_counter() - t0
    # ssh joins its arguments into one command line for the remote shell: one string, quoted.
    listing = run_checked(side["ssh"] + ["find %s -type f -printf '%%s\\n'" % remote], "remote find").stdout.split()
    if (len(listing), sum(int(x) for x in listing)) != (files, total):
        raise RuntimeError("upload: %d files, %d bytes arrived of %d, %d" % (len(listing), sum(int(x) for x in listing), files, total))
    with open(batch, "w") as f:
        f.write("get -r %s %s\n" % (remote, local))
    t0 = time.perf_counter()
    run_checked(side["sftp"] + ["-q", "-b", batch, side["sftp_host"]], "sftp get -r", timeout=1800)
    down = time.perf_counter() - t0
    got = tree_stats(local)
    if got != (files, total):
        raise RuntimeError("download: %d files, %d bytes arrived of %d, %d" % (got[0], got[1], files, total))
    run_checked(side["ssh"] + ["rm", "-rf", remote], "remote cleanup")
    shutil.rmtree(local, ignore_errors=True)
    return {"up_mibs": total / MiB / up, "down_mibs": total / MiB / down, "up_s": up, "down_s": down}


def u_cat(argv, nbytes):
    """nbytes of pattern into `ssh HOST cat` and back out, crc32-checked: MiB/s."""
    expected = pattern_crc(3, nbytes)
    p = subprocess.Popen(argv + ["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    err = []

    def feed():
        try:
            blk = memoryview(block(3))
            left = nbytes
            while left > 0:
                n = min(left, BLOCK)
                p.stdin.write(blk[:n])
                left -= n
            p.stdin.close()
        except OSError as e:
            err.append(e)

    t0 = time.perf_counter()
    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    got, crc = 0, 0
    for _ in range(10_000_000):
        chunk = p.stdout.read1(1024 * 1024) if hasattr(p.stdout, "read1") else p.stdout.read(1024 * 1024)
        if not chunk:
            break
        crc = zlib.crc32(chunk, crc)
        got += len(chunk)
    t1 = time.perf_counter()
    feeder.join(30)
    rc = p.wait(30)
    if rc != 0 or got != nbytes or crc != expected or err:
        raise RuntimeError("cat: exit %s, %d of %d bytes back, crc %s %s" % (rc, got, nbytes, "ok" if crc == expected else "WRONG",
                                                                       p.stderr.read().decode(errors="replace")[-200:]))
    return {"mibs": nbytes / MiB / (t1 - t0), "seconds": t1 - t0}


def u_http(port, count, request=1024, answer=64 * 1024):
    """`count` round trips on one connection: a `request`-byte request, an `answer`-byte answer."""
    s = connect(port)
    samples = []
    try:
        s.sendall(HDR.pack(b"H", request, answer))
        req = os.urandom(request)
        t_all = time.perf_counter()
        for _ in range(count):
            t0 = time.perf_counter()
            s.sendall(req)
            recv_exact(s, answer)
            samples.append((time.perf_counter() - t0) * 1e6)
        total = time.perf_counter() - t_all
    finally:
        s.close()
    return {"p50_us": pct(samples, 50), "p90_us": pct(samples, 90), "total_s": total, "count": len(samples)}


def cmd_user(a):
    with open(a.config) as f:
        cfg = json.load(f)
    sides = cfg["sides"]
    quick, rounds, work = cfg.get("quick", False), max(1, cfg.get("rounds", 3)), cfg["work"]
    runs = 20 if quick else 50
    files, total = (500, 10 * MiB) if quick else (2000, 50 * MiB)
    cat_bytes = (128 if quick else 1024) * MiB
    http_n = 500 if quick else 2000
    res = {}
    only = set(cfg.get("only") or ["new_ssh", "sftp", "cat", "forward"])

    def each_round(names, title, fn, show):
        out = {n: [] for n in names}
        for rnd in range(rounds):
            order = names if rnd % 2 == 0 else list(reversed(names))
            for n in order:
                try:
                    r = fn(n)
                except (OSError, RuntimeError, ConnectionError, ValueError, subprocess.TimeoutExpired) as e:
                    r = {"error": "%s: %s" % (type(e).__name__, e)}
                out[n].append(r)
                print("  %-34s %-22s round %d/%d: %s" % (title, n, rnd + 1, rounds, ("ERROR " + r["error"]) if "error" in r else show(r)),
                      flush=True)
        return out

    def med(runs_, field):
        if any("error" in r for r in runs_):
            return None
        return median([r[field] for r in runs_])

    # (a) a new ssh: every side, the runs split over the rounds (who goes first alternating);
    # p50 and p90 over all of a side's runs.
    names = list(cfg["order"])
    split = [runs // rounds + (1 if i < runs % rounds else 0) for i in range(rounds)]
    counter = {n: 0 for n in names}

    def one_round(n):
        k = split[min(counter[n], rounds - 1)]
        counter[n] += 1
        return u_new_ssh(sides[n]["ssh"], k)

    newssh = each_round(names, "new `ssh HOST true`", one_round,
                        lambda r: "x%d p50 %.1f ms  p90 %.1f ms" % (r["count"], r["p50_ms"], r["p90_ms"])) if "new_ssh" in only else {}
    res["new_ssh"] = {}
    for n, v in newssh.items():
        pooled = [x for r in v for x in r.get("samples", [])]
        ok = not any("error" in r for r in v)
        res["new_ssh"][n] = {"p50_ms": pct(pooled, 50) if ok else None, "p90_ms": pct(pooled, 90) if ok else None,
                             "count": len(pooled), "rounds": [r.get("p50_ms") for r in v]}

    # (b) sftp and (c) cat: dbgbox against plain ssh -J.
    pair = [n for n in names if sides[n].get("bulk")]
    tree = os.path.join(work, "tree")
    if "sftp" in only and not os.path.isdir(tree):
        made = make_tree(tree, files, total)
        print("  generated tree: %d files, %.1f MiB in %s" % (made[0], made[1] / MiB, tree), flush=True)
    sftp = {} if "sftp" not in only else each_round(pair, "sftp tree %d files %d MiB" % (files, total // MiB),
                      lambda n: u_sftp(sides[n], tree, work, n.replace(" ", "").replace("-", ""), files, total),
                      lambda r: "up %.1f MiB/s (%.2f s)  down %.1f MiB/s (%.2f s)" % (r["up_mibs"], r["up_s"], r["down_mibs"], r["down_s"]))
    res["sftp"] = {n: {"up_mibs": med(v, "up_mibs"), "down_mibs": med(v, "down_mibs"), "rounds": [r.get("up_mibs") for r in v]}
                   for n, v in sftp.items()}
    cat = {} if "cat" not in only else each_round(pair, "%d MiB through `ssh HOST cat`" % (cat_bytes // MiB), lambda n: u_cat(sides[n]["ssh"], cat_bytes),
                     lambda r: "%.1f MiB/s (%.2f s)" % (r["mibs"], r["seconds"]))
    res["cat"] = {n: {"mibs": med(v, "mibs"), "rounds": [r.get("mibs") for r in v]} for n, v in cat.items()}

    # (d) forwarded port.
    fwd = {n: sides[n]["forward_port"] for n in pair if sides[n].get("forward_port")}
    if "forward" not in only:
        pass
    elif len(fwd) == len(pair):
        http = each_round(pair, "forwarded port %d x (1 KiB, 64 KiB)" % http_n, lambda n: u_http(fwd[n], http_n),
                          lambda r: "p50 %.0f µs  p90 %.0f µs  all %.2f s" % (r["p50_us"], r["p90_us"], r["total_s"]))
        res["http"] = {n: {"p50_us": med(v, "p50_us"), "total_s": med(v, "total_s"), "rounds": [r.get("total_s") for r in v]}
                       for n, v in http.items()}
    else:
        print("  forwarded port: %s" % cfg.get("forward_skip", "not measured"), flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    user_report(res, cfg, rounds, runs, files, total, cat_bytes, http_n)
    return 0


def user_report(res, cfg, rounds, runs, files, total, cat_bytes, http_n):
    d, j, cm = cfg["dbgbox"], cfg["plain"], cfg["shared"]

    def get(metric, side, field):
        return (res.get(metric, {}).get(side) or {}).get(field)

    def ratio(a, b):
        return a / b if (a is not None and b) else None

    def fmt(v, f):
        return f % v if v is not None else "n/a"

    print()
    print("== user-level figures (medians of %d round%s; %s = the Host block dbgbox up wrote, %s = ssh -J LOGIN,NODE, "
          "%s = the same with ControlMaster) ==" % (rounds, "" if rounds == 1 else "s", d, j, cm))
    newssh_cols = [n for n in cfg["order"] if n in res.get("new_ssh", {})]
    print("%-34s %s" % ("new `ssh HOST true` (ms)", "  ".join("%22s" % n for n in newssh_cols)))
    for field in ("p50_ms", "p90_ms"):
        print("%-34s %s" % ("  " + field.split("_")[0], "  ".join("%22s" % fmt(get("new_ssh", n, field), "%.1f") for n in newssh_cols)))
    print("%-34s %s" % ("  ratio %s p50 / this p50" % d, "  ".join("%22s" % fmt(ratio(get("new_ssh", d, "p50_ms"), get("new_ssh", n, "p50_ms")), "%.2fx")
                                                          for n in newssh_cols)))
    rows = [
        ("sftp tree upload (MiB/s)", "sftp", "up_mibs", "higher", "%.1f"),
        ("sftp tree download (MiB/s)", "sftp", "down_mibs", "higher", "%.1f"),
        ("%d MiB through cat (MiB/s)" % (cat_bytes // MiB), "cat", "mibs", "higher", "%.1f"),
        ("fwd port p50 round trip (µs)", "http", "p50_us", "lower", "%.0f"),
        ("fwd port %d round trips (s)" % http_n, "http", "total_s", "lower", "%.2f"),
    ]
    print()
    print("%-34s %12s %12s %10s  %s" % ("metric", d, j, "ratio", "ratio is %s/%s" % (d, j)))
    for label, metric, field, better, f in rows:
        if metric not in res:
            continue
        a, b = get(metric, d, field), get(metric, j, field)
        r = ratio(a, b)
        print("%-34s %12s %12s %10s  (%s is better)" % (label, fmt(a, f), fmt(b, f), fmt(r, "%.2fx"), better))
    targets = [
        ("new ssh p50: %s/%s <= 0.5" % (d, j), ratio(get("new_ssh", d, "p50_ms"), get("new_ssh", j, "p50_ms")), "<=", 0.5),
        ("new ssh p50: %s/%s <= 1.0" % (d, cm), ratio(get("new_ssh", d, "p50_ms"), get("new_ssh", cm, "p50_ms")), "<=", 1.0),
        ("sftp tree upload: %s/%s >= 1.0" % (d, j), ratio(get("sftp", d, "up_mibs"), get("sftp", j, "up_mibs")), ">=", 1.0),
        ("fwd port round trips: %s/%s <= 0.9" % (d, j), ratio(get("http", d, "total_s"), get("http", j, "total_s")), "<=", 0.9),
    ]
    print()
    print("== user-level targets (issue 15) ==")
    for what, r, op, t in targets:
        if what.startswith("fwd") and "http" not in res:
            print("  %-52s %-10s %s" % (what, "n/a", "SKIPPED (%s)" % cfg.get("forward_skip", "not measured")))
            continue
        met = r is not None and (r >= t if op == ">=" else r <= t)
        print("  %-52s %-10s %s" % (what, fmt(r, "%.2fx"), "PASS" if met else "FAIL"))


def cmd_facts(a):
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            txt = f.read()
        flags = " ".join(x for x in ("aes", "avx2", "sha_ni", "vaes") if (" %s " % x) in txt)
    except OSError:
        pass
    print("nproc: %d" % os.cpu_count())
    print("cpu: %s (flags: %s)" % (model, flags))
    print("kernel: %s" % " ".join(os.uname()[2:4]))
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("server")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--bind", default="127.0.0.1")
    s.add_argument("--lifetime", type=float, default=1800)
    r = sub.add_parser("run")
    r.add_argument("--tunnel", action="append", required=True, help="NAME=PORT=PID[,PID]")
    r.add_argument("--label", action="append", default=[], help="PID=label for the CPU lines")
    r.add_argument("--quick", action="store_true")
    r.add_argument("--rounds", type=int, default=3, help="measure each metric this many times per tunnel (medians reported)")
    r.add_argument("--only", help="comma-separated metrics: download,upload,rtt,connect,streams")
    r.add_argument("--json")
    sub.add_parser("facts")
    u = sub.add_parser("user")
    u.add_argument("--config", required=True, help="JSON from bench.sh: the sides' commands")
    u.add_argument("--json")
    a = p.parse_args()
    return {"server": cmd_server, "run": cmd_run, "facts": cmd_facts, "user": cmd_user}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
