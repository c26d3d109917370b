#!/usr/bin/env python3
"""Randomized checker for the result cache (issue #11): is any sidecar ever wrong?

Two or more sidecars (pgsidecar instances over one database) and a direct connection.
For --duration seconds, threads interleave on a small table whose rows carry a version
counter (`UPDATE … SET version = version + 1 … RETURNING version`, so a row's versions
are committed in increasing order):

* writers through each sidecar and directly bump random rows;
* readers through each sidecar read random rows, in the simple protocol, the extended
  protocol (psycopg prepares after a few executions) and with binary results;
* a prober bumps one row directly, then one poller per sidecar reads that row until it
  shows the new version, which is the visibility latency of a direct write (one more
  poller reads it straight from PostgreSQL: the harness's own floor, reported alongside).

It asserts
(a) read-your-writes per sidecar: no read through sidecar S returns a version older than
    the newest one committed through S (commit acknowledged) before the read began, and
    a read returns the row it asked for;
(b) a direct write becomes visible through every sidecar within --bound-ms, and reports
    the latencies (p50, p99, max; from the commit's acknowledgement to the end of the
    first read that saw it, so a read's round trip is included).

Prints a JSON summary on stdout. Exit status: 0 no violation, 1 a violation (each one
described on stderr, the first 20 in the JSON), 2 the harness could not run (connection
or setup error, or too few reads to mean anything). Needs psycopg 3.

    cache_checker.py --direct postgres://postgres@127.0.0.1:5432/test \\
        --sidecar postgres://postgres@127.0.0.1:6432/test \\
        --sidecar postgres://postgres@127.0.0.1:6433/test --duration 60
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import threading
import time

import psycopg

READ_KINDS = ("simple", "extended", "binary")
MAX_REPORTED = 20


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--direct", required=True, help="connection URL straight to PostgreSQL")
    p.add_argument("--sidecar", action="append", required=True,
                   help="connection URL through one sidecar (give it two or more times)")
    p.add_argument("--duration", type=float, default=60.0, help="seconds [60]")
    p.add_argument("--rows", type=int, default=16, help="rows in the table; few rows, many conflicts [16]")
    p.add_argument("--table", default="cache_checker", help="table, recreated [cache_checker]")
    p.add_argument("--readers", type=int, default=3, help="reader threads per sidecar [3]")
    p.add_argument("--writers", type=int, default=1, help="writer threads per sidecar and direct [1]")
    p.add_argument("--bound-ms", type=float, default=1000.0,
                   help="a direct write must be visible through every sidecar within this [1000]")
    p.add_argument("--probe-gap-ms", type=float, default=20.0,
                   help="most time between the end of one probe and the next [20]")
    p.add_argument("--min-reads", type=int, default=100,
                   help="fewer reads through a sidecar than this is a harness failure [100]")
    p.add_argument("--prepare-threshold", default="5", metavar="N|none",
                   help="psycopg prepares a statement after N executions; none: never "
                        "(PgBouncer < 1.21 in transaction mode has no prepared statements) [5]")
    p.add_argument("--no-setup", action="store_true",
                   help="use the table as it is (id int primary key, version bigint)")
    p.add_argument("--inject-stale", type=float, default=0.0, metavar="P",
                   help="self-test: a read reports its version minus one with probability P, "
                        "which must make the checker fail")
    args = p.parse_args(argv)
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", args.table):
        p.error("--table: a plain lower-case identifier")
    if args.prepare_threshold != "none" and not args.prepare_threshold.isdigit():
        p.error("--prepare-threshold: a number or none")
    args.prepare_threshold = None if args.prepare_threshold == "none" else int(args.prepare_threshold)
    return args


def redact(url: str) -> str:
    """The URL without its password, for the summary."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


class Ledger:
    """What the threads share: acknowledged versions per sidecar, violations, counters.
    One lock; every critical section is a few dictionary operations, never I/O."""

    def __init__(self, sidecars: int, rows: int) -> None:
        self.lock = threading.Lock()
        # Index `sidecars` is the reference poller reading directly: the harness's floor.
        self.acked = [[0] * (rows + 1) for _ in range(sidecars + 1)]  # [sidecar][row] -> version
        self.violations: list[dict] = []
        self.errors: list[str] = []
        self.reads = [dict.fromkeys(READ_KINDS, 0) for _ in range(sidecars + 1)]
        self.writes = [0] * (sidecars + 1)  # the last one is direct
        self.visibility: list[list[float]] = [[] for _ in range(sidecars + 1)]
        self.stop = threading.Event()

    def floor(self, sidecar: int, row: int) -> int:
        with self.lock:
            return self.acked[sidecar][row]

    def acknowledge(self, sidecar: int | None, row: int, version: int) -> None:
        with self.lock:
            if sidecar is None:
                self.writes[-1] += 1
                return
            self.writes[sidecar] += 1
            self.acked[sidecar][row] = max(self.acked[sidecar][row], version)

    def violation(self, **what) -> None:
        with self.lock:
            self.violations.append(what)
        print(f"cache_checker: VIOLATION {json.dumps(what)}", file=sys.stderr, flush=True)

    def error(self, where: str, e: BaseException) -> None:
        with self.lock:
            self.errors.append(f"{where}: {type(e).__name__}: {e}".strip())
        print(f"cache_checker: error in {where}: {e}", file=sys.stderr, flush=True)
        self.stop.set()


def connect(url: str, args=None) -> psycopg.Connection:
    conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
    if args is not None:
        conn.prepare_threshold = args.prepare_threshold
    return conn


def setup(args) -> None:
    with connect(args.direct) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {args.table}")
        conn.execute(f"CREATE TABLE {args.table} (id int PRIMARY KEY, version bigint NOT NULL)")
        conn.execute(f"INSERT INTO {args.table} SELECT g, 0 FROM generate_series(1, %s) g",
                     (args.rows,))


def bump(conn: psycopg.Connection, table: str, row: int) -> int:
    cur = conn.execute(f"UPDATE {table} SET version = version + 1 WHERE id = %s RETURNING version",
                       (row,))
    return cur.fetchone()[0]


def read(conn: psycopg.Connection, table: str, row: int, kind: str) -> tuple[int, int]:
    """(id, version) of one row: a single SELECT outside a transaction, cacheable."""
    sql = f"SELECT id, version FROM {table} WHERE id = %s"
    if kind == "simple":
        cur = psycopg.ClientCursor(conn)  # parameters bound in the text: a Query message
        cur.execute(sql, (row,))
    else:
        cur = conn.cursor()
        cur.execute(sql, (row,), binary=kind == "binary")
    found = cur.fetchone()
    if found is None:
        raise LookupError(f"row {row} missing")
    return found


def checked_read(ledger: Ledger, args, conn, sidecar: int, row: int, kind: str) -> int:
    """Reads and applies rule (a); returns the version read."""
    floor = ledger.floor(sidecar, row)
    got_id, version = read(conn, args.table, row, kind)
    if args.inject_stale and random.random() < args.inject_stale:
        version -= 1
    with ledger.lock:
        ledger.reads[sidecar][kind] += 1
    if got_id != row:
        ledger.violation(kind="wrong_row", sidecar=sidecar, asked=row, got=got_id, protocol=kind)
    elif version < floor:
        ledger.violation(kind="stale_read", sidecar=sidecar, row=row, read_version=version,
                         committed_through_this_sidecar=floor, protocol=kind)
    return version


def writer(ledger: Ledger, args, url: str, sidecar: int | None) -> None:
    where = "direct writer" if sidecar is None else f"writer on sidecar {sidecar}"
    try:
        with connect(url, args) as conn:
            while not ledger.stop.is_set():
                row = random.randint(1, args.rows)
                ledger.acknowledge(sidecar, row, bump(conn, args.table, row))
                time.sleep(random.uniform(0, 0.002))
    except Exception as e:  # noqa: BLE001 - any failure ends the run as a harness error
        ledger.error(where, e)


def reader(ledger: Ledger, args, url: str, sidecar: int, kind: str) -> None:
    try:
        with connect(url, args) as conn:
            while not ledger.stop.is_set():
                checked_read(ledger, args, conn, sidecar, random.randint(1, args.rows), kind)
    except Exception as e:  # noqa: BLE001
        ledger.error(f"{kind} reader on sidecar {sidecar}", e)


class Probe:
    """The direct write being watched: (sequence, row, version, acknowledged at)."""

    def __init__(self, pollers: int) -> None:
        self.cond = threading.Condition()
        self.current: tuple[int, int, int, float] | None = None
        self.pending = 0
        self.pollers = pollers

    def start(self, seq: int, row: int, version: int, acked: float) -> None:
        with self.cond:
            self.current, self.pending = (seq, row, version, acked), self.pollers
            self.cond.notify_all()

    def done(self) -> None:
        with self.cond:
            self.pending -= 1
            self.cond.notify_all()


def prober(ledger: Ledger, args, probe: Probe) -> None:
    try:
        with connect(args.direct, args) as conn:
            seq = 0
            while not ledger.stop.is_set():
                seq += 1
                row = random.randint(1, args.rows)
                version = bump(conn, args.table, row)
                ledger.acknowledge(None, row, version)
                probe.start(seq, row, version, time.monotonic())
                with probe.cond:
                    probe.cond.wait_for(lambda: probe.pending == 0 or ledger.stop.is_set())
                time.sleep(random.uniform(0, args.probe_gap_ms / 1000))
    except Exception as e:  # noqa: BLE001
        ledger.error("prober", e)
    with probe.cond:
        probe.cond.notify_all()


def poller(ledger: Ledger, args, url: str, sidecar: int, probe: Probe) -> None:
    seen = 0
    try:
        with connect(url, args) as conn:
            while not ledger.stop.is_set():
                with probe.cond:
                    probe.cond.wait_for(lambda: ledger.stop.is_set() or (
                        probe.current is not None and probe.current[0] > seen), timeout=0.5)
                    if ledger.stop.is_set() or probe.current is None or probe.current[0] <= seen:
                        continue
                    seen, row, version, acked = probe.current
                watch(ledger, args, conn, sidecar, row, version, acked)
                probe.done()
    except Exception as e:  # noqa: BLE001
        ledger.error(f"poller on sidecar {sidecar}", e)


def watch(ledger: Ledger, args, conn, sidecar: int, row: int, version: int, acked: float) -> None:
    """Reads `row` through the sidecar until it shows `version`, or the bound passes."""
    while True:
        got = checked_read(ledger, args, conn, sidecar, row, "extended")
        now = time.monotonic()
        if got >= version:
            with ledger.lock:
                ledger.visibility[sidecar].append((now - acked) * 1000)
            return
        if (now - acked) * 1000 > args.bound_ms or ledger.stop.is_set():
            if not ledger.stop.is_set():
                ledger.violation(kind="not_visible", sidecar=sidecar, row=row,
                                 direct_version=version, still_reads=got,
                                 after_ms=round((now - acked) * 1000, 1), bound_ms=args.bound_ms)
            return


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, round(q / 100 * len(ordered)))) - 1]


def run(args) -> dict:
    n = len(args.sidecar)
    ledger, probe = Ledger(n, args.rows), Probe(n + 1)
    threads = [threading.Thread(target=prober, args=(ledger, args, probe))]
    threads += [threading.Thread(target=writer, args=(ledger, args, args.direct, None))
                for _ in range(args.writers)]
    for i, url in enumerate(args.sidecar):
        threads += [threading.Thread(target=writer, args=(ledger, args, url, i))
                    for _ in range(args.writers)]
        threads += [threading.Thread(target=reader, args=(ledger, args, url, i, READ_KINDS[k % 3]))
                    for k in range(args.readers)]
        threads.append(threading.Thread(target=poller, args=(ledger, args, url, i, probe)))
    threads.append(threading.Thread(target=poller, args=(ledger, args, args.direct, n, probe)))
    started = time.monotonic()
    for t in threads:
        t.daemon = True
        t.start()
    ledger.stop.wait(args.duration)
    ledger.stop.set()
    for t in threads:
        t.join(timeout=args.bound_ms / 1000 + 15)
    return summary(args, ledger, time.monotonic() - started)


def summary(args, ledger: Ledger, elapsed: float) -> dict:
    sidecars = []
    for i, url in enumerate(args.sidecar):
        sidecars.append({
            "url": redact(url), "reads": sum(ledger.reads[i].values()),
            "reads_by_protocol": ledger.reads[i], "writes": ledger.writes[i],
            "visibility_ms": latency_summary(ledger.visibility[i]),
            "violations": sum(1 for v in ledger.violations if v.get("sidecar") == i),
        })
    too_few = [i for i, s in enumerate(sidecars) if s["reads"] < args.min_reads]
    errors = list(ledger.errors) + [f"sidecar {i}: only {sidecars[i]['reads']} reads "
                                    f"(--min-reads {args.min_reads})" for i in too_few]
    return {"ok": not ledger.violations and not errors, "duration_s": round(elapsed, 1),
            "rows": args.rows, "bound_ms": args.bound_ms, "direct_writes": ledger.writes[-1],
            "sidecars": sidecars,
            # The same measurement read straight from PostgreSQL: what the harness itself
            # adds (thread wake-up, a read's round trip), to subtract when judging a bound.
            "direct_visibility_ms": latency_summary(ledger.visibility[len(args.sidecar)]), "violations": len(ledger.violations),
            "first_violations": ledger.violations[:MAX_REPORTED], "errors": errors,
            "inject_stale": args.inject_stale}


def latency_summary(lat: list[float]) -> dict:
    return {"count": len(lat), "p50": rounded(percentile(lat, 50)),
            "p99": rounded(percentile(lat, 99)), "max": rounded(max(lat) if lat else None)}


def rounded(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        if not args.no_setup:
            setup(args)
    except psycopg.Error as e:
        print(f"cache_checker: setup through --direct failed: {e}", file=sys.stderr)
        return 2
    # Threads wait for the GIL up to the switch interval (5 ms by default), which would
    # swamp the visibility latencies being measured.
    sys.setswitchinterval(0.0002)
    result = run(args)
    print(json.dumps(result, indent=2))
    if result["violations"]:
        print(f"cache_checker: FAILED: {result['violations']} violation(s); first: "
              f"{json.dumps(result['first_violations'][0])}", file=sys.stderr)
        return 1
    if result["errors"]:
        print(f"cache_checker: could not check: {result['errors'][0]}", file=sys.stderr)
        return 2
    print("cache_checker: OK", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
