"""Thousands of groups: one ``multicast monitor`` joined to 2,048 groups, against a plain
Python loop that does the same.

Run it inside the private network namespace (it refuses to run anywhere else)::

    scripts/netns-run .venv/bin/python benchmarks/bench_groups.py            # 3 runs
    scripts/netns-run .venv/bin/python benchmarks/bench_groups.py --quick    # a smoke run

Each receiver runs in a process of its own, on ``lo``: it joins ``--groups`` consecutive
groups (2,048, mcjoin's maximum, by default), says so, and counts what arrives until it has
``--per-group`` datagrams of every group, or ``--timeout`` passes. Then ``multicast stream``
(another process) sends ``--per-group`` frames to every group in turn at ``--rate``.
Measured per receiver: the join time (wall clock) and its CPU time, the CPU time per
datagram while counting, and whether every group got exactly its datagrams.

- ``ours``: :class:`multicast.tools.Monitor` (payload detection, per-flow accounting);
- ``plain python``: sockets of 20 groups each (``net.ipv4.igmp_max_memberships``), joined
  with ``IP_ADD_MEMBERSHIP``, one bound socket reading with ``IP_PKTINFO``
  (``IP_MULTICAST_ALL`` on), ``recvmsg`` per datagram and a count per group.

mcjoin (C) is not a Debian package here and is not built: it is not measured.

Results: a table on standard output and ``benchmarks/results/groups.json``. Every process
it starts is bounded in time and ended by its pid.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from multicast.testing import private_namespace_problem

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
FIRST = "239.30.0.0"
PORT = 47014
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
IP_MULTICAST_ALL = 49
PER_SOCKET = 20  # the kernel's default net.ipv4.igmp_max_memberships


def _cpu() -> float:
    return time.process_time()


def _ours(groups: int, per_group: int, timeout: float) -> dict[str, object]:
    from multicast.core import parse_channels  # noqa: PLC0415
    from multicast.tools import Monitor  # noqa: PLC0415

    channels = parse_channels(f"{FIRST}+{groups}")
    started, cpu = time.monotonic(), _cpu()
    with Monitor(channels, PORT) as monitor:
        joined, join_cpu = time.monotonic() - started, _cpu() - cpu
        print("joined", flush=True)
        cpu = _cpu()
        report = monitor.run(duration=timeout, count=groups * per_group)
        count_cpu = _cpu() - cpu
        sockets = 1 + len(monitor.receiver.holders)
    per = Counter({flow.group: flow.received for flow in report.senders})
    return {
        "join_seconds": joined,
        "join_cpu": join_cpu,
        "count_cpu": count_cpu,
        "datagrams": report.datagrams,
        "sockets": sockets,
        "exact": len(per) == groups and set(per.values()) == {per_group},
    }


def _plain(groups: int, per_group: int, timeout: float) -> dict[str, object]:
    first = int.from_bytes(socket.inet_aton(FIRST), "big")
    names = [socket.inet_ntoa((first + n).to_bytes(4, "big")) for n in range(groups)]
    started, cpu = time.monotonic(), _cpu()
    reader = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    reader.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    reader.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 1)
    reader.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
    reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    reader.bind(("0.0.0.0", PORT))
    holders = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM)]
    for index, name in enumerate(names):
        if index and index % PER_SOCKET == 0:
            holders.append(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        request = socket.inet_aton(name) + socket.inet_aton("0.0.0.0")
        holders[-1].setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, request)
    joined, join_cpu = time.monotonic() - started, _cpu() - cpu
    print("joined", flush=True)
    cpu = _cpu()
    counts: Counter[str] = Counter()
    wanted = set(names)
    reader.settimeout(timeout)
    total = 0
    try:
        while total < groups * per_group:
            _, ancillary, _, _ = reader.recvmsg(2048, 64)
            for level, kind, data in ancillary:
                if level == socket.IPPROTO_IP and kind == IP_PKTINFO:
                    group = socket.inet_ntoa(data[8:12])
                    if group in wanted:
                        counts[group] += 1
                        total += 1
    except TimeoutError:
        pass
    count_cpu = _cpu() - cpu
    for holder in holders:
        holder.close()
    reader.close()
    return {
        "join_seconds": joined,
        "join_cpu": join_cpu,
        "count_cpu": count_cpu,
        "datagrams": total,
        "sockets": 1 + len(holders),
        "exact": len(counts) == groups and set(counts.values()) == {per_group},
    }


WORKERS = {"ours": _ours, "plain python": _plain}


def measure(path: str, args: argparse.Namespace) -> dict[str, object]:
    """One run of ``path``: its worker joins, the stream feeds it, its figures come back."""
    worker = subprocess.Popen(
        [sys.executable, __file__, "--worker", path, *_shared(args)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert worker.stdout is not None
        if worker.stdout.readline().strip() != "joined":
            raise RuntimeError(f"{path}: the receiver did not join")
        subprocess.run(
            [
                *(sys.executable, "-m", "multicast", "stream", f"{FIRST}+{args.groups}"),
                *("--port", str(PORT), "--rate", args.rate, "--size", "100"),
                *("--count", str(args.groups * args.per_group)),
            ],
            check=True,
            capture_output=True,
            timeout=args.timeout,
        )
        output, _ = worker.communicate(timeout=args.timeout + 10)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, 9)
            worker.wait()
    figures: dict[str, object] = json.loads(output)
    return figures


def _shared(args: argparse.Namespace) -> list[str]:
    return [
        *("--groups", str(args.groups), "--per-group", str(args.per_group)),
        *("--timeout", str(args.timeout), "--rate", args.rate),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=2048)
    parser.add_argument("--per-group", type=int, default=20, help="datagrams per group")
    parser.add_argument("--rate", default="50kpps", help="of the stream, as `multicast stream`")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per run")
    parser.add_argument("--quick", action="store_true", help="one run, 3 datagrams per group")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        print(json.dumps(WORKERS[args.worker](args.groups, args.per_group, args.timeout)))
        return 0
    problem = private_namespace_problem()
    if problem is not None:
        print(f"bench_groups: run me inside scripts/netns-run ({problem})", file=sys.stderr)
        return 3
    if args.quick:
        args.runs, args.per_group = 1, 3
    runs: dict[str, list[dict[str, object]]] = {path: [] for path in WORKERS}
    for _ in range(args.runs):
        for path in WORKERS:  # interleaved: a slow spell of the machine hits both alike
            runs[path].append(measure(path, args))
    rows = []
    print(f"{args.groups} groups, {args.per_group} datagrams each, {args.runs} runs (median)")
    print(f"{'receiver':14} {'join ms':>9} {'join CPU ms':>12} {'CPU µs/datagram':>16} exact")
    for path, figures in runs.items():

        def median(name: str, figures: list[dict[str, object]] = figures) -> float:
            return statistics.median(float(str(run[name])) for run in figures)

        datagrams = median("datagrams")
        row = {
            "receiver": path,
            "join_ms": median("join_seconds") * 1e3,
            "join_cpu_ms": median("join_cpu") * 1e3,
            "cpu_us_per_datagram": median("count_cpu") / max(datagrams, 1) * 1e6,
            "exact": all(bool(run["exact"]) for run in figures),
            "sockets": figures[0]["sockets"],
            "runs": figures,
        }
        rows.append(row)
        print(
            f"{path:14} {row['join_ms']:9.1f} {row['join_cpu_ms']:12.1f} "
            f"{row['cpu_us_per_datagram']:16.2f} {row['exact']}"
        )
    RESULTS.mkdir(exist_ok=True)
    conditions = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "load": os.getloadavg(),
        "groups": args.groups,
        "per_group": args.per_group,
        "rate": args.rate,
        "runs": args.runs,
        "mcjoin": "not measured: not a Debian package here, not built",
    }
    (RESULTS / "groups.json").write_text(json.dumps({"conditions": conditions, "rows": rows}))
    return 0 if all(row["exact"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
