#!/usr/bin/env python3
"""pgsidecar benchmark harness: pgsidecar side by side with PostgreSQL and PgBouncer.

This script owns everything under `bench/` (and the numbers in docs/BENCHMARKS.md):

* Setup. Raises the file-descriptor limit (inherited by everything it starts), installs
  PgBouncer with apt if absent, builds pgsidecar (`cargo build --release`) when the binary
  is missing or older than the sources, and creates the pgbench database (`pgbench -i`)
  on the local PostgreSQL when it is absent or at another scale. The database is the
  harness's own (`pgsidecar_perf`): `pgsidecar_bench` belongs to the integration tests,
  which re-initialise it at scale 1 whenever they run.
* Matrix. pgbench `-S` (select only) and the TPC-B-like script, in `-M simple`,
  `extended` and `prepared`, at each client count; every cell runs against direct
  PostgreSQL, PgBouncer and pgsidecar back to back. Each pooler is started fresh for its
  cell (same pool size, transaction mode, trust auth, free loopback ports) and stopped
  after it, so its peak RSS (VmHWM) and CPU time (utime+stime) belong to that cell.
  Latency percentiles come from pgbench's per-transaction log (`-l`).
* Connection scale (`--conns`). N idle clients (raw TCP, real startup up to
  ReadyForQuery) per pooler: RSS per client; then M clients running `-S` through a pool of
  `--pool-size`: throughput, p99 and whether every client was served.
* Soak (`--soak MINUTES`). pgbench `-S` plus connection churn through pgsidecar while its
  RSS is sampled every 10 s; exits 1 when the final RSS exceeds 1.1x the post-warm-up RSS.
* Cost of statistics (`--stats-overhead ROUNDS`). `-S -M simple -c 64` through pgsidecar
  with `stats = true` and `stats = false`, the order alternating between rounds; TPS,
  CPU per transaction and the throughput lost over all rounds against the 5% budget.
* Instructions (`--instructions`, bench/instructions.py). User-space instructions per
  transaction under callgrind, pgsidecar (statistics on and off) against PgBouncer.
* Report. A Markdown report (printed, and written to bench/results/<timestamp>.md) with
  the target verdicts, plus CSV files next to it.

Everything it starts is stopped again on success, error and Ctrl-C. Standard library
only; Python 3.11+. Run as root on a fresh machine (apt); PgBouncer, which refuses to run
as root, is then started as the `postgres` user.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import datetime
import os
import re
import resource
import selectors
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "bench" / "results"
BINARY = REPO / "target" / "release" / "pgsidecar"

TARGETS = ("direct", "pgbouncer", "pgsidecar")
POOLERS = ("pgbouncer", "pgsidecar")
LABELS = {"direct": "PostgreSQL", "pgbouncer": "PgBouncer", "pgsidecar": "pgsidecar"}
SCRIPTS = {"select": ["-S"], "tpcb": ["-b", "tpcb-like"]}
SCRIPT_TITLES = {"select": "Select only (`-S`)", "tpcb": "TPC-B-like (default script)"}
MODES = ("simple", "extended", "prepared")

QUICK_DURATION = 1
FULL_DURATION = 20
FD_LIMIT = 65536
# How long a client may queue for a server in either pooler (pgsidecar checkout_timeout,
# PgBouncer query_wait_timeout). pgbench -M prepared runs PQprepare synchronously, which
# deadlocks a transaction pool smaller than the client count (a pgbench thread waits for
# a server while its other clients hold every server inside a transaction); this limit
# is what breaks such a cell, so it is kept short.
QUEUE_TIMEOUT_S = 10
SOAK_SAMPLE_EVERY = 10.0
SOAK_GROWTH_LIMIT = 1.10


# --------------------------------------------------------------------------------------
# Command line


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/run",
        description="Benchmark pgsidecar against direct PostgreSQL and PgBouncer.",
        epilog="Without --matrix/--conns/--soak: the matrix and the connection-scale "
        "test (only the matrix with --quick).",
    )
    p.add_argument("--quick", action="store_true", help=f"{QUICK_DURATION} s cells (about 2 minutes)")
    p.add_argument("--matrix", action="store_true", help="run the pgbench matrix")
    p.add_argument("--conns", action="store_true", help="run the connection-scale test")
    p.add_argument("--soak", type=float, metavar="MINUTES", help="run the soak test")
    p.add_argument("--stats-overhead", type=int, metavar="ROUNDS",
                   help="cost of statistics: -S -M simple -c 64 through pgsidecar with "
                        "stats on and off, alternating, ROUNDS times each")
    p.add_argument("--unix", action="store_true",
                   help="TCP against Unix sockets: -S -M simple through each target, "
                        "client and upstream both over TCP, then both over Unix sockets")
    p.add_argument("--pg-socket-dir", default="/var/run/postgresql",
                   help="PostgreSQL's socket directory, for --unix [/var/run/postgresql]")
    p.add_argument("--duration", type=int, help=f"seconds per pgbench run [{FULL_DURATION}]")
    p.add_argument("--clients", default="1,16,64,256", help="client counts [1,16,64,256]")
    p.add_argument("--scripts", default="select,tpcb", help="select,tpcb")
    p.add_argument("--modes", default=",".join(MODES), help="simple,extended,prepared")
    p.add_argument("--targets", default=",".join(TARGETS), help="direct,pgbouncer,pgsidecar")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="pgbench -j cap [nproc]")
    p.add_argument("--pool-size", type=int, default=20, help="server connections per pool [20]")
    p.add_argument("--scale", type=int, default=10, help="pgbench scale factor [10]")
    p.add_argument("--db", default="pgsidecar_perf",
                   help="pgbench database, only for the harness [pgsidecar_perf]")
    p.add_argument("--pg-host", default="127.0.0.1")
    p.add_argument("--pg-port", type=int, default=5432)
    p.add_argument("--pg-user", default="postgres")
    p.add_argument("--idle-clients", type=int, default=10_000, help="idle clients [10000]")
    p.add_argument("--busy-clients", type=int, default=1_000, help="busy -S clients [1000]")
    p.add_argument("--no-build", action="store_true", help="use the existing binary as is")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = p.parse_args(argv)
    choose_parts(args)
    args.duration = args.duration or (QUICK_DURATION if args.quick else FULL_DURATION)
    args.clients = [int(c) for c in args.clients.split(",") if c]
    args.scripts = checked_list(p, "--scripts", args.scripts, SCRIPTS)
    args.modes = checked_list(p, "--modes", args.modes, MODES)
    args.targets = checked_list(p, "--targets", args.targets, TARGETS)
    return args


def choose_parts(args: argparse.Namespace) -> None:
    """Without an explicit choice: matrix + connection scale, or just the matrix if quick."""
    if not (args.matrix or args.conns or args.soak or args.stats_overhead or args.unix):
        args.matrix = True
        args.conns = not args.quick


def checked_list(p: argparse.ArgumentParser, flag: str, value: str, allowed) -> list[str]:
    items = [v for v in value.split(",") if v]
    for item in items:
        if item not in allowed:
            p.error(f"{flag}: unknown {item!r} (choose from {', '.join(allowed)})")
    return items


# --------------------------------------------------------------------------------------
# Child processes: every one is registered so that one call stops them all.


class Children:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, argv: list[str], log: Path | None = None, **kw) -> subprocess.Popen:
        out = open(log, "ab") if log else subprocess.DEVNULL
        try:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=kw.pop("stdout", out),
                stderr=kw.pop("stderr", subprocess.STDOUT if log else subprocess.DEVNULL),
                start_new_session=True, **kw,
            )
        finally:
            if log:
                out.close()
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, grace: float = 5.0) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in list(reversed(self.procs)):
            self.stop(proc, grace=2.0)


CHILDREN = Children()


def on_stop_signal(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def run(argv: list[str], check: bool = True, timeout: float | None = None, **kw) -> subprocess.CompletedProcess:
    """Runs a short command to completion, its output captured."""
    proc = CHILDREN.start(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        CHILDREN.stop(proc, grace=1.0)
        out, err = proc.communicate()
        raise RuntimeError(f"{argv[0]} did not finish in {timeout} s") from None
    finally:
        CHILDREN.stop(proc)
    result = subprocess.CompletedProcess(argv, proc.returncode, out.decode(errors="replace"),
                                         err.decode(errors="replace"))
    if check and result.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------
# Setup


def raise_fd_limit(want: int = FD_LIMIT) -> int:
    """Raises RLIMIT_NOFILE for this process and every child; returns the soft limit.
    The hard limit goes up too when allowed (root with CAP_SYS_RESOURCE)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < want:
        with contextlib.suppress(OSError, ValueError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return want
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, target), hard))
    return max(soft, target)


def pgbouncer_path() -> str | None:
    for candidate in (shutil.which("pgbouncer"), "/usr/sbin/pgbouncer"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def ensure_pgbouncer() -> str:
    path = pgbouncer_path()
    if path:
        return path
    if os.geteuid() != 0:
        raise RuntimeError("PgBouncer is not installed and installing it needs root")
    log("PgBouncer not found: apt-get install -y pgbouncer")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(["apt-get", "update"], env=env, timeout=600)
    run(["apt-get", "install", "-y", "pgbouncer"], env=env, timeout=900)
    path = pgbouncer_path()
    if not path:
        raise RuntimeError("apt-get installed pgbouncer but no pgbouncer binary was found")
    return path


def pgbouncer_version(path: str) -> tuple[int, int]:
    first = run([path, "--version"]).stdout.splitlines()[0]
    m = re.search(r"(\d+)\.(\d+)", first)
    if not m:
        raise RuntimeError(f"cannot read the PgBouncer version from {first!r}")
    return int(m.group(1)), int(m.group(2))


def binary_is_stale() -> bool:
    sources = [REPO / "Cargo.toml", REPO / "Cargo.lock", *REPO.glob("src/**/*.rs")]
    newest = max(p.stat().st_mtime for p in sources if p.exists())
    return not BINARY.exists() or BINARY.stat().st_mtime < newest


def ensure_pgsidecar_built(skip: bool) -> None:
    if BINARY.exists() and (skip or not binary_is_stale()):
        return
    log("building pgsidecar: cargo build --release")
    proc = subprocess.run(["cargo", "build", "--release"], cwd=REPO)
    if proc.returncode != 0 or not BINARY.exists():
        hint = " (--no-build benchmarks the existing binary)" if BINARY.exists() else ""
        raise RuntimeError(f"cargo build --release failed{hint}")


def psql(s, *sql: str, db: str = "postgres", port: int | None = None) -> str:
    """Statements (one transaction each) through psql; direct unless a port is given."""
    argv = ["psql", "-X", "-qAt", "-v", "ON_ERROR_STOP=1", "-h", s.pg_host,
            "-p", str(port or s.pg_port), "-U", s.pg_user, "-d", db]
    for statement in sql:
        argv += ["-c", statement]
    env = dict(os.environ, PGCONNECT_TIMEOUT="5")
    return run(argv, env=env, timeout=600).stdout.strip()


def pg_conninfo(s, port: int | None = None) -> list[str]:
    return ["-h", s.pg_host, "-p", str(port or s.pg_port), "-U", s.pg_user]


def ensure_bench_db(s) -> None:
    """Creates the database and runs `pgbench -i` unless it already holds this scale."""
    if not psql(s, f"SELECT 1 FROM pg_database WHERE datname = '{s.db}'"):
        log(f"creating database {s.db}")
        psql(s, f'CREATE DATABASE "{s.db}"')
    has_tables = psql(s, "SELECT to_regclass('pgbench_branches') IS NOT NULL", db=s.db) == "t"
    scale = int(psql(s, "SELECT count(*) FROM pgbench_branches", db=s.db)) if has_tables else 0
    if scale != s.scale:
        log(f"initialising {s.db}: pgbench -i -s {s.scale}")
        run(["pgbench", "-i", "-q", "-s", str(s.scale), *pg_conninfo(s), s.db], timeout=3600)


def connection_room(s) -> tuple[int, int]:
    """(client connections still available on the server, max_connections)."""
    row = psql(s, "SELECT current_setting('max_connections')::int, "
               "current_setting('superuser_reserved_connections')::int, "
               "(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')")
    max_conn, reserved, used = (int(v) for v in row.split("|"))
    return max_conn - reserved - used, max_conn


def reset_tpcb_tables(s) -> None:
    """What pgbench does before a TPC-B run unless -n; done directly, not via a pooler."""
    psql(s, "VACUUM pgbench_branches", "VACUUM pgbench_tellers", "TRUNCATE pgbench_history", db=s.db)


# --------------------------------------------------------------------------------------
# Machine description


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def machine_description(s) -> dict[str, str]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    meminfo = Path("/proc/meminfo").read_text()
    mem_kb = int(re.search(r"^MemTotal:\s*(\d+)", meminfo, re.M).group(1))
    return {
        "CPU": model.group(1).strip() if model else "unknown",
        "cores (nproc)": str(os.cpu_count()),
        "memory": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "kernel": f"{os.uname().sysname} {os.uname().release}",
        "PostgreSQL": psql(s, "SHOW server_version"),
        "PgBouncer": ".".join(map(str, s.bouncer_version)),
        "pgbench": run(["pgbench", "--version"]).stdout.strip(),
        "pgsidecar": git_description(),
        "load average (1/5/15 min) at start": load_average(),
    }


def git_description() -> str:
    try:
        commit = run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]).stdout.strip()
        dirty = run(["git", "-C", str(REPO), "status", "--porcelain", "--", "src", "Cargo.toml"]).stdout
    except (RuntimeError, FileNotFoundError):
        return "release build (no git)"
    text = f"release build of {commit}" + (" + uncommitted changes" if dirty.strip() else "")
    return text + (" (binary older than the sources: --no-build)" if binary_is_stale() else "")


# --------------------------------------------------------------------------------------
# /proc readers


def cpu_seconds(pid: int) -> float:
    """utime + stime (fields 14 and 15 of /proc/PID/stat) in seconds, all threads."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()  # fields[0] is field 3 (state)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_kb(pid: int, key: str) -> int:
    """A `kB` value from /proc/PID/status, e.g. VmRSS or VmHWM."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{key} missing from /proc/{pid}/status")


# --------------------------------------------------------------------------------------
# Poolers


@dataclasses.dataclass
class Pooler:
    name: str
    port: int
    proc: subprocess.Popen
    log: Path
    socket_dir: str | None = None  # where its Unix socket is, when it has one

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            text = re.sub(r"\x1b\[[0-9;]*m", "", self.log.read_text(errors="replace"))
            return "\n".join(text.splitlines()[-lines:])
        return ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_pgsidecar(s, work: Path, stats: bool = True, unix: bool = False) -> Pooler:
    """With `unix`: clients also on `work/.s.PGSQL.<port>`, the server over its socket."""
    port, admin = free_port(), free_port()
    config = work / "pgsidecar.toml"
    upstream = f"postgres://{s.pg_user}@{s.pg_host}:{s.pg_port}/postgres"
    if unix:
        upstream = f"postgres://{s.pg_user}@/postgres?host={s.pg_socket_dir}&port={s.pg_port}"
    config.write_text(
        f'listen = "127.0.0.1:{port}"\n'
        + (f'listen_unix_dir = "{work}"\n' if unix else "")
        + f'admin_listen = "127.0.0.1:{admin}"\n'
        f'upstream = "{upstream}"\n'
        'auth_type = "trust"\n'
        'pool_mode = "transaction"\n'
        f"pool_size = {s.pool_size}\n"
        f"max_client_conn = {2 * s.idle_clients + 1000}\n"
        f'checkout_timeout = "{QUEUE_TIMEOUT_S}s"\n'
        'shutdown_timeout = "2s"\n'
        'log_format = "text"\n'
        f"stats = {'true' if stats else 'false'}\n"
    )
    log_path = work / "pgsidecar.log"
    env = dict(os.environ, NO_COLOR="1")
    proc = CHILDREN.start([str(BINARY), "--config", str(config)], log=log_path, env=env)
    return Pooler("pgsidecar", port, proc, log_path)


def start_pgbouncer(s, work: Path, unix: bool = False) -> Pooler:
    """With `unix`: clients also on `work/.s.PGSQL.<port>`, the server over its socket."""
    port = free_port()
    server_host = s.pg_socket_dir if unix else s.pg_host
    socket_dir = work if unix else ""
    if unix and os.geteuid() == 0:
        shutil.chown(work, "postgres", "postgres")  # PgBouncer (as postgres) binds there
    ini, users = work / "pgbouncer.ini", work / "userlist.txt"
    users.write_text(f'"{s.pg_user}" ""\n')
    prepared = "max_prepared_statements = 200\n" if s.bouncer_version >= (1, 21) else ""
    ini.write_text(
        "[databases]\n"
        f"{s.db} = host={server_host} port={s.pg_port} dbname={s.db}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir = {socket_dir}\n"
        f"auth_type = trust\nauth_file = {users}\n"
        f"pool_mode = transaction\ndefault_pool_size = {s.pool_size}\n"
        f"max_client_conn = {2 * s.idle_clients + 1000}\n"
        f"query_wait_timeout = {QUEUE_TIMEOUT_S}\n"
        "log_connections = 0\nlog_disconnections = 0\n" + prepared
    )
    for path in (ini, users):
        path.chmod(0o644)
    log_path = work / "pgbouncer.log"
    proc = CHILDREN.start([s.bouncer_path, str(ini)], log=log_path, **pgbouncer_identity())
    return Pooler("pgbouncer", port, proc, log_path)


def pgbouncer_identity() -> dict:
    """PgBouncer refuses to run as root: switch to the postgres user (no wrapper
    process, so the PID we hold is PgBouncer's own, for /proc accounting)."""
    if os.geteuid() != 0:
        return {}
    return {"user": "postgres", "group": "postgres", "extra_groups": []}


def wait_ready(s, pooler: Pooler, timeout: float = 15.0) -> None:
    """Waits until a real query through the pooler works."""
    deadline = time.monotonic() + timeout
    while True:
        if pooler.proc.poll() is not None:
            raise RuntimeError(f"{pooler.name} exited ({pooler.proc.returncode}):\n{pooler.log_tail()}")
        with contextlib.suppress(RuntimeError):
            if psql(s, "SELECT 1", db=s.db, port=pooler.port) == "1":
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{pooler.name} not ready in {timeout} s:\n{pooler.log_tail()}")
        time.sleep(0.05)


@contextlib.contextmanager
def pooler_running(s, name: str, work: Path, unix: bool = False):
    """A freshly started pooler, ready for queries; stopped on leaving."""
    pooler_dir = work / f"{name}-{time.monotonic_ns()}"
    pooler_dir.mkdir()
    pooler_dir.chmod(0o755)
    if name == "pgbouncer":
        pooler = start_pgbouncer(s, pooler_dir, unix)
    else:
        pooler = start_pgsidecar(s, pooler_dir, stats=name != "pgsidecar-nostats", unix=unix)
    pooler.socket_dir = str(pooler_dir) if unix else None
    try:
        wait_ready(s, pooler)
        yield pooler
    finally:
        CHILDREN.stop(pooler.proc)


# --------------------------------------------------------------------------------------
# pgbench


@dataclasses.dataclass
class Result:
    """One pgbench run against one target."""
    target: str
    status: str = "ok"  # ok | n/a | failed
    note: str = ""
    tps: float | None = None
    transactions: int = 0
    failed: int = 0
    p50_us: int | None = None
    p99_us: int | None = None
    cpu_per_1k: float | None = None
    peak_rss_kb: int | None = None
    clients_served: int | None = None
    detail: str = ""  # pgbench errors and pooler log, for the failure section


def pgbench_argv(s, port: int, workload: list[str], clients: int, duration: int,
                 log_dir: Path | None) -> list[str]:
    argv = ["pgbench", *pg_conninfo(s, port), "-n", *workload, "-c", str(clients),
            "-j", str(max(1, min(clients, s.jobs))), "-T", str(duration)]
    if log_dir:
        argv += ["-l", f"--log-prefix={log_dir}/tx"]
    return argv + [s.db]


def run_pgbench(argv: list[str], duration: int) -> tuple[int, str, str]:
    proc = CHILDREN.start(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=duration + 120)
        return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")
    except subprocess.TimeoutExpired:
        CHILDREN.stop(proc, grace=1.0)
        return -1, "", f"pgbench hung: no result {duration + 120} s after start"
    finally:
        CHILDREN.stop(proc)


def parse_summary(out: str) -> dict[str, float]:
    patterns = {
        # "(including reconnection times)" with -C
        "tps": r"^tps = ([\d.]+) \((?:without initial connection|including reconnection) time",
        "transactions": r"^number of transactions actually processed: (\d+)",
        "failed": r"^number of failed transactions: (\d+)",
    }
    found = {}
    for key, pattern in patterns.items():
        m = re.search(pattern, out, re.M)
        if m:
            found[key] = float(m.group(1))
    return found


def read_tx_logs(log_dir: Path) -> tuple[list[int], set[int]]:
    """Latencies (µs, sorted) of successful transactions and the clients that had one.
    Log columns: client_id transaction_no time script_no time_epoch time_us ..."""
    latencies, clients = [], set()
    for path in log_dir.glob("tx.*"):
        with open(path) as f:
            for line in f:
                cols = line.split()
                if len(cols) >= 3 and cols[2].isdigit():
                    latencies.append(int(cols[2]))
                    clients.add(int(cols[0]))
    latencies.sort()
    return latencies, clients


def percentile(sorted_values: list[int], q: float) -> int | None:
    if not sorted_values:
        return None
    rank = max(1, round(q / 100 * len(sorted_values)))  # nearest rank
    return sorted_values[min(rank, len(sorted_values)) - 1]


def error_lines(err: str, limit: int = 3) -> list[str]:
    seen = []
    for line in err.splitlines():
        line = re.sub(r"client \d+", "client N", line.strip())
        if ("error" in line.lower() or "abort" in line.lower() or "hung" in line) and line not in seen:
            seen.append(line)
    return seen[:limit]


def distinct_lines(text: str, limit: int = 10) -> str:
    """The distinct lines of `text` in order of first appearance, with repeat counts."""
    counts: dict[str, int] = {}
    for line in text.strip().splitlines():
        line = re.sub(r"client \d+", "client N", line.strip())
        counts[line] = counts.get(line, 0) + 1
    shown = [f"{line}  (×{n})" if n > 1 else line for line, n in list(counts.items())[:limit]]
    if len(counts) > limit:
        shown.append(f"… {len(counts) - limit} more distinct lines")
    return "\n".join(shown)


def measure(s, target: str, port: int, workload: list[str], clients: int, duration: int,
            work: Path, pooler: Pooler | None = None) -> Result:
    """Runs pgbench once against `port`, with the pooler's CPU and peak RSS if given."""
    log_dir = Path(tempfile.mkdtemp(prefix="txlog-", dir=work))
    cpu_before = cpu_seconds(pooler.pid) if pooler else 0.0
    rc, out, err = run_pgbench(pgbench_argv(s, port, workload, clients, duration, log_dir), duration)
    result, cpu_used = Result(target), None
    if pooler and pooler.proc.poll() is None:
        cpu_used = cpu_seconds(pooler.pid) - cpu_before
        result.peak_rss_kb = status_kb(pooler.pid, "VmHWM")
    summary = parse_summary(out)
    latencies, served = read_tx_logs(log_dir)
    shutil.rmtree(log_dir, ignore_errors=True)
    result.tps = summary.get("tps")
    result.transactions = int(summary.get("transactions", 0))
    result.failed = int(summary.get("failed", 0))
    result.p50_us, result.p99_us = percentile(latencies, 50), percentile(latencies, 99)
    result.clients_served = len(served)
    if cpu_used is not None and result.transactions:
        result.cpu_per_1k = cpu_used / (result.transactions / 1000)
    judge(result, rc, err, pooler)
    return result


def judge(result: Result, rc: int, err: str, pooler: Pooler | None) -> None:
    """Marks a run failed on a pgbench error, failed transactions or a dead pooler."""
    problems = []
    if pooler and pooler.proc.poll() is not None:
        problems.append(f"{pooler.name} exited during the run (status {pooler.proc.returncode})")
    if rc != 0:
        problems.append(f"pgbench exit status {rc}")
    if result.failed:
        problems.append(f"{result.failed} failed transactions")
    if not result.transactions:
        problems.append("no transactions")
    if not problems:
        return
    errors = error_lines(err)
    if any("too many clients" in e or "too many connections" in e for e in errors) and not pooler:
        result.status, result.note = "n/a", "too many connections"
        return
    result.status = "failed"
    result.note = "; ".join(problems + errors[:1])
    result.detail = "pgbench stderr (distinct lines, client numbers elided):\n" + distinct_lines(err)
    if pooler:
        result.detail += f"\n\n{pooler.name} log (last lines):\n{pooler.log_tail()}"


# --------------------------------------------------------------------------------------
# The matrix


@dataclasses.dataclass
class Cell:
    script: str
    mode: str
    clients: int
    results: dict[str, Result] = dataclasses.field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.script} {self.mode} c={self.clients}"

    def workload(self) -> list[str]:
        return [*SCRIPTS[self.script], "-M", self.mode]


def not_applicable(s, cell: Cell, target: str) -> str | None:
    """Why a target cannot run this cell, or None."""
    if target == "pgbouncer" and cell.mode == "prepared" and s.bouncer_version < (1, 21):
        return "PgBouncer " + ".".join(map(str, s.bouncer_version))
    if target == "direct":
        room, max_conn = connection_room(s)
        if cell.clients > room - 2:
            log(f"  direct c={cell.clients}: {room} of max_connections {max_conn} free")
            return "too many connections"
    return None


def run_target(s, cell: Cell, target: str, work: Path) -> Result:
    reason = not_applicable(s, cell, target)
    if reason:
        return Result(target, status="n/a", note=reason)
    if cell.script == "tpcb":
        reset_tpcb_tables(s)
    if target == "direct":
        return measure(s, target, s.pg_port, cell.workload(), cell.clients, s.duration, work)
    with pooler_running(s, target, work) as pooler:
        return measure(s, target, pooler.port, cell.workload(), cell.clients, s.duration, work, pooler)


def run_matrix(s, work: Path) -> list[Cell]:
    cells = [Cell(script, mode, c) for script in s.scripts for mode in s.modes for c in s.clients]
    for i, cell in enumerate(cells, 1):
        started = time.monotonic()
        for target in s.targets:
            cell.results[target] = run_target(s, cell, target, work)
        log(f"[{i}/{len(cells)}, {time.monotonic() - started:.1f} s] {cell.label}: " + " | ".join(
            f"{t} {short(r)}" for t, r in cell.results.items()))
    return cells


def short(r: Result) -> str:
    if r.status != "ok":
        return f"{r.status.upper()} ({r.note})"
    return f"{r.tps:,.0f} tps p50 {r.p50_us} µs"


# --------------------------------------------------------------------------------------
# Connection scale: idle clients over raw TCP, then many busy clients


def startup_message(user: str, database: str) -> bytes:
    body = struct.pack("!I", 196608)  # protocol 3.0
    body += b"user\0" + user.encode() + b"\0database\0" + database.encode() + b"\0\0"
    return struct.pack("!I", len(body) + 4) + body


def login_outcome(buf: bytes) -> tuple[str | None, bytes]:
    """Scans backend messages: ("ready"|error text|None, unconsumed bytes)."""
    while len(buf) >= 5:
        tag, length = buf[0:1], struct.unpack("!I", buf[1:5])[0]
        if len(buf) < 1 + length:
            break
        body, buf = buf[5:1 + length], buf[1 + length:]
        if tag == b"Z":
            return "ready", buf
        if tag == b"E":
            return "error: " + body.replace(b"\0", b" ").decode(errors="replace").strip(), buf
        if tag == b"R" and struct.unpack("!I", body[:4])[0] != 0:
            return "error: the pooler asked for a password (trust expected)", buf
    return None, buf


def log_in_batch(port: int, user: str, db: str, count: int, timeout: float) -> tuple[list[socket.socket], list[str]]:
    """Opens `count` connections, sends startup, waits for ReadyForQuery on each."""
    errors: list[str] = []
    pending: dict[socket.socket, bytes] = {}
    for _ in range(count):
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
            sock.sendall(startup_message(user, db))
        except OSError as e:
            errors.append(f"connect: {e}")
            continue
        sock.setblocking(False)
        pending[sock] = b""
    ready = wait_for_ready(pending, errors, time.monotonic() + timeout)
    return ready, errors


def wait_for_ready(pending: dict[socket.socket, bytes], errors: list[str], deadline: float) -> list[socket.socket]:
    """Reads every socket until ReadyForQuery; failed ones are closed, their errors noted."""
    ready = []
    with selectors.DefaultSelector() as sel:
        for sock in pending:
            sel.register(sock, selectors.EVENT_READ)
        while pending and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=max(0.0, deadline - time.monotonic())):
                sock = key.fileobj
                outcome = read_login(sock, pending)
                if outcome is None:
                    continue
                sel.unregister(sock)
                del pending[sock]
                if outcome == "ready":
                    ready.append(sock)
                else:
                    errors.append(outcome)
                    sock.close()
    for sock in pending:
        errors.append("error: no ReadyForQuery before the timeout")
        sock.close()
    return ready


def read_login(sock: socket.socket, pending: dict[socket.socket, bytes]) -> str | None:
    try:
        data = sock.recv(65536)
    except OSError as e:
        return f"error: {e}"
    if not data:
        return "error: connection closed during login"
    outcome, pending[sock] = login_outcome(pending[sock] + data)
    return outcome


def close_clients(socks: list[socket.socket]) -> None:
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.setblocking(True)
            sock.sendall(b"X\0\0\0\4")  # Terminate
        sock.close()


def server_connections(s) -> int:
    return int(psql(s, f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{s.db}'"))


def wait_for_no_server_connections(s, timeout: float = 10.0) -> None:
    """Backends of a stopped pooler take a moment to exit; wait so counts start at 0."""
    deadline = time.monotonic() + timeout
    while server_connections(s) and time.monotonic() < deadline:
        time.sleep(0.1)


@dataclasses.dataclass
class IdleResult:
    pooler: str
    wanted: int
    connected: int = 0
    errors: list[str] = dataclasses.field(default_factory=list)
    rss_before_kb: int = 0
    rss_after_kb: int = 0
    server_conns: int = 0
    seconds: float = 0.0

    @property
    def bytes_per_client(self) -> float | None:
        if not self.connected:
            return None
        return (self.rss_after_kb - self.rss_before_kb) * 1024 / self.connected


def idle_clients_test(s, name: str, work: Path, batch: int = 500) -> IdleResult:
    result = IdleResult(name, s.idle_clients)
    socks: list[socket.socket] = []
    wait_for_no_server_connections(s)
    with pooler_running(s, name, work) as pooler:
        time.sleep(0.5)
        result.rss_before_kb = status_kb(pooler.pid, "VmRSS")
        started = time.monotonic()
        try:
            while len(socks) + len(result.errors) < s.idle_clients:
                count = min(batch, s.idle_clients - len(socks) - len(result.errors))
                opened, errors = log_in_batch(pooler.port, s.pg_user, s.db, count, timeout=60)
                socks += opened
                result.errors += errors
                if errors and not opened:
                    break
            result.seconds = time.monotonic() - started
            time.sleep(1.0)
            result.connected = len(socks)
            result.rss_after_kb = status_kb(pooler.pid, "VmRSS")
            result.server_conns = server_connections(s)
        finally:
            close_clients(socks)
    return result


def busy_clients_test(s, name: str, work: Path) -> Result:
    duration = max(s.duration, 5)
    workload = ["-S", "-M", "simple"]
    if name == "direct":
        return measure(s, name, s.pg_port, workload, s.busy_clients, duration, work)
    with pooler_running(s, name, work) as pooler:
        return measure(s, name, pooler.port, workload, s.busy_clients, duration, work, pooler)


def run_conns(s, work: Path) -> tuple[list[IdleResult], list[Result]]:
    idle, busy = [], []
    for name in [t for t in POOLERS if t in s.targets]:
        log(f"connection scale: {s.idle_clients} idle clients -> {name}")
        idle.append(idle_clients_test(s, name, work))
        log(f"  {idle[-1].connected} connected, {fmt_bytes(idle[-1].bytes_per_client)} per client")
        log(f"connection scale: {s.busy_clients} clients running -S -> {name}")
        busy.append(busy_clients_test(s, name, work))
        log(f"  {short(busy[-1])}, {busy[-1].clients_served} clients served")
    return idle, busy


# --------------------------------------------------------------------------------------
# Soak


@dataclasses.dataclass
class Soak:
    minutes: float
    warmup_s: float
    samples: list[tuple[float, int]] = dataclasses.field(default_factory=list)  # (s, kB)
    pgbench_ok: bool = True
    load: str = ""  # what pgbench reported, to show the load was real
    note: str = ""

    @property
    def baseline_kb(self) -> int | None:
        after = [kb for t, kb in self.samples if t >= self.warmup_s]
        return after[0] if after else None

    @property
    def final_kb(self) -> int | None:
        return self.samples[-1][1] if self.samples else None

    @property
    def passed(self) -> bool:
        base, final = self.baseline_kb, self.final_kb
        return bool(self.pgbench_ok and base and final and final <= SOAK_GROWTH_LIMIT * base)


def run_soak(s, work: Path) -> Soak:
    seconds = int(s.soak * 60)
    soak = Soak(s.soak, warmup_s=60.0 if seconds >= 120 else seconds / 2)
    log(f"soak: {s.soak:g} min of -S (16 clients) + connection churn (-C, 4 clients)")
    runs = {"steady (-S -M extended, 16 clients)": (["-S", "-M", "extended"], 16),
            "churn (-S -C, 4 clients)": (["-S", "-C"], 4)}
    logs = {name: work / f"soak-{i}.log" for i, name in enumerate(runs)}
    with pooler_running(s, "pgsidecar", work) as pooler:
        procs = [CHILDREN.start(pgbench_argv(s, pooler.port, workload, clients, seconds, None),
                                log=logs[name]) for name, (workload, clients) in runs.items()]
        sample_until_done(soak, pooler, procs)
        soak.pgbench_ok = all(p.wait() == 0 for p in procs) and soak.pgbench_ok
    outputs = {name: path.read_text(errors="replace") for name, path in logs.items()}
    soak.load = "; ".join(f"{name}: {parse_summary(out).get('tps', 0):,.0f} tps"
                          for name, out in outputs.items())
    if not soak.pgbench_ok:
        soak.note += "\n".join(f"{name}:\n{out[-1500:]}" for name, out in outputs.items())
    return soak


def sample_until_done(soak: Soak, pooler: Pooler, procs: list[subprocess.Popen]) -> None:
    started = time.monotonic()
    while True:
        elapsed = time.monotonic() - started
        if pooler.proc.poll() is not None:
            soak.pgbench_ok, soak.note = False, f"pgsidecar exited:\n{pooler.log_tail()}\n"
            return
        if not soak.samples or elapsed - soak.samples[-1][0] >= 1.0:
            soak.samples.append((elapsed, status_kb(pooler.pid, "VmRSS")))
            log(f"  soak t={elapsed:5.0f} s RSS {soak.samples[-1][1] / 1024:.1f} MB")
        if any(p.poll() is not None for p in procs):
            return
        next_tick = started + SOAK_SAMPLE_EVERY * len(soak.samples)
        while time.monotonic() < next_tick and all(p.poll() is None for p in procs):
            time.sleep(0.2)


# --------------------------------------------------------------------------------------
# Cost of statistics

OVERHEAD_WORKLOAD = ["-S", "-M", "simple"]
OVERHEAD_CLIENTS = 64
# --------------------------------------------------------------------------------------
# TCP against Unix sockets

UNIX_WORKLOAD = ["-S", "-M", "simple"]


def measure_over_unix(s, target: str, port: int, clients: int, work: Path,
                      host: str, pooler: Pooler | None = None) -> Result:
    """`measure`, with pgbench connecting to the socket directory `host`."""
    saved, s.pg_host = s.pg_host, host
    try:
        return measure(s, target, port, UNIX_WORKLOAD, clients, s.duration, work, pooler)
    finally:
        s.pg_host = saved


def run_unix(s, work: Path) -> list[tuple[str, int, Result, Result]]:
    """(target, clients, over TCP, over Unix sockets) for each target and client count.
    Over TCP everything is loopback TCP; over Unix the client reaches the target, and a
    pooler reaches PostgreSQL, through Unix sockets."""
    rows = []
    for clients in s.clients:
        for target in s.targets:
            if target == "direct":
                tcp = measure(s, target, s.pg_port, UNIX_WORKLOAD, clients, s.duration, work)
                unix = measure_over_unix(s, target, s.pg_port, clients, work, s.pg_socket_dir)
            else:
                with pooler_running(s, target, work) as pooler:
                    tcp = measure(s, target, pooler.port, UNIX_WORKLOAD, clients, s.duration,
                                  work, pooler)
                with pooler_running(s, target, work, unix=True) as pooler:
                    unix = measure_over_unix(s, target, pooler.port, clients, work,
                                             pooler.socket_dir, pooler)
            log(f"  unix c={clients} {target}: TCP {short(tcp)} | Unix {short(unix)}")
            rows.append((target, clients, tcp, unix))
    return rows


def unix_section(s, rows: list[tuple[str, int, Result, Result]]) -> str:
    lines = [f"`pgbench -S -M simple -T {s.duration}`, transaction pools of {s.pool_size}. "
             "TCP: client and pooler upstream over loopback TCP. Unix: client over the "
             "target's Unix socket, pooler upstream over PostgreSQL's socket "
             f"(`{s.pg_socket_dir}`).", "",
             "| target | clients | TCP TPS | Unix TPS | Unix / TCP | p50 µs TCP / Unix | "
             "CPU s / 1k tx TCP / Unix |",
             "|---|---|---|---|---|---|---|"]
    for target, clients, tcp, unix in rows:
        lines.append(f"| {LABELS[target]} | {clients} | {fmt_tps(tcp)} | {fmt_tps(unix)} | "
                     f"{fmt_ratio(unix, tcp)} | {fmt_lat_p50(tcp)} / {fmt_lat_p50(unix)} | "
                     f"{fmt_cpu(tcp)} / {fmt_cpu(unix)} |")
    return "\n".join(lines)


def fmt_lat_p50(r: Result) -> str:
    return str(r.p50_us) if r.status == "ok" and r.p50_us is not None else "–"


OVERHEAD_BUDGET = 0.05


def run_stats_overhead(s, work: Path) -> list[tuple[Result, Result]]:
    """(stats on, stats off) per round. The order alternates between rounds so that a
    drift in the machine's speed does not always favour the same configuration."""
    rounds = []
    for i in range(s.stats_overhead):
        order = ["pgsidecar", "pgsidecar-nostats"]
        if i % 2:
            order.reverse()
        got = {}
        for name in order:
            with pooler_running(s, name, work) as pooler:
                got[name] = measure(s, name, pooler.port, OVERHEAD_WORKLOAD, OVERHEAD_CLIENTS,
                                    s.duration, work, pooler)
            log(f"  stats round {i + 1} {name}: {fmt_tps(got[name])} tps")
        rounds.append((got["pgsidecar"], got["pgsidecar-nostats"]))
    return rounds


def overhead_section(s, rounds: list[tuple[Result, Result]]) -> str:
    lines = [f"`pgbench -S -M simple -c {OVERHEAD_CLIENTS} -T {s.duration}` through pgsidecar "
             "with `stats = true` and `stats = false`, alternating, pool size "
             f"{s.pool_size}.", "",
             "| round | stats on TPS | stats off TPS | on / off | CPU µs per tx: on / off |",
             "|---|---|---|---|---|"]
    for i, (on, off) in enumerate(rounds, 1):
        cpu = "–"
        if on.cpu_per_1k and off.cpu_per_1k:
            cpu = f"{on.cpu_per_1k * 1000:.1f} / {off.cpu_per_1k * 1000:.1f}"
        lines.append(f"| {i} | {fmt_tps(on)} | {fmt_tps(off)} | {fmt_ratio(on, off)} | {cpu} |")
    ok = [(on.tps, off.tps) for on, off in rounds if on.status == off.status == "ok"]
    if ok:
        on_total, off_total = sum(a for a, _ in ok), sum(b for _, b in ok)
        loss = 1 - on_total / off_total
        verdict = "within" if loss <= OVERHEAD_BUDGET else "over"
        lines += ["", f"Throughput lost to statistics over {len(ok)} rounds: {loss:.1%} "
                      f"({verdict} the {OVERHEAD_BUDGET:.0%} budget)."]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# Formatting


def fmt_tps(r: Result | None) -> str:
    if r is None:
        return "–"
    if r.status == "n/a":
        return f"n/a ({r.note})"
    if r.status == "failed":
        return "FAILED"
    return f"{r.tps:,.0f}"


def fmt_lat(r: Result | None) -> str:
    if r is None or r.status != "ok" or r.p50_us is None:
        return "–"
    return f"{r.p50_us:,} / {r.p99_us:,}"


def fmt_ratio(a: Result | None, b: Result | None) -> str:
    if not (a and b and a.status == b.status == "ok" and a.tps and b.tps):
        return "–"
    return f"{a.tps / b.tps:.2f}×"


def fmt_cpu(r: Result | None) -> str:
    if r is None or r.status != "ok" or r.cpu_per_1k is None:
        return "–"
    return f"{r.cpu_per_1k:.4f}"


def fmt_mb(kb: int | None) -> str:
    return "–" if kb is None else f"{kb / 1024:.1f}"


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "–"
    return f"{n / 1024:.1f} KiB" if n >= 1024 else f"{n:.0f} B"


def md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def matrix_tables(cells: list[Cell]) -> list[str]:
    header = ["mode", "clients", "direct TPS", "PgBouncer TPS", "pgsidecar TPS",
              "sidecar / bouncer", "sidecar / direct", "direct p50 / p99 µs",
              "PgBouncer p50 / p99 µs", "pgsidecar p50 / p99 µs",
              "CPU s / 1k tx: PgBouncer / pgsidecar", "peak RSS MB: PgBouncer / pgsidecar"]
    out = []
    for script in dict.fromkeys(c.script for c in cells):
        rows = []
        for c in (c for c in cells if c.script == script):
            d, b, x = (c.results.get(t) for t in TARGETS)
            rows.append([c.mode, str(c.clients), fmt_tps(d), fmt_tps(b), fmt_tps(x),
                         fmt_ratio(x, b), fmt_ratio(x, d), fmt_lat(d), fmt_lat(b), fmt_lat(x),
                         f"{fmt_cpu(b)} / {fmt_cpu(x)}",
                         f"{fmt_mb(b and b.peak_rss_kb)} / {fmt_mb(x and x.peak_rss_kb)}"])
        out.append(f"### {SCRIPT_TITLES[script]}\n\n" + md_table(header, rows))
    return out


def failures_section(cells: list[Cell], busy: list[Result]) -> str:
    parts = []
    for c in cells:
        for t, r in c.results.items():
            if r.status == "failed":
                parts.append(f"**{c.label} → {LABELS[t]}**: {r.note}\n\n```\n{r.detail}\n```")
    for r in busy:
        if r.status == "failed":
            parts.append(f"**busy clients → {LABELS[r.target]}**: {r.note}\n\n```\n{r.detail}\n```")
    return "\n\n".join(parts)


def conns_section(s, idle: list[IdleResult], busy: list[Result]) -> str:
    idle_rows = [[LABELS[r.pooler], f"{r.connected:,} / {r.wanted:,}", fmt_mb(r.rss_before_kb),
                  fmt_mb(r.rss_after_kb), fmt_bytes(r.bytes_per_client), str(r.server_conns),
                  f"{r.seconds:.1f}", r.errors[0] if r.errors else ""] for r in idle]
    busy_rows = [[LABELS[r.target], str(s.busy_clients), fmt_tps(r), fmt_lat(r),
                  f"{r.clients_served} / {s.busy_clients}", str(r.failed),
                  fmt_cpu(r), fmt_mb(r.peak_rss_kb), r.note] for r in busy]
    return (
        f"### {s.idle_clients:,} idle clients\n\n"
        "Raw TCP connections doing a real startup (StartupMessage, trust, up to "
        "ReadyForQuery), opened in batches of 500 and held open while RSS is read.\n\n"
        + md_table(["pooler", "logged in", "RSS before MB", "RSS after MB", "per client",
                    "server connections", "seconds to connect", "first error"], idle_rows)
        + f"\n\n### {s.busy_clients:,} clients running `-S` through pool_size {s.pool_size}\n\n"
        + f"`pgbench -S -M simple -c {s.busy_clients} -j {min(s.jobs, s.busy_clients)} "
        f"-T {max(s.duration, 5)}`; served = clients with at least one transaction in the "
        "per-transaction log.\n\n"
        + md_table(["pooler", "clients", "TPS", "p50 / p99 µs", "clients served",
                    "failed tx", "CPU s / 1k tx", "peak RSS MB", "note"], busy_rows)
    )


def soak_section(soak: Soak) -> str:
    rows = [[f"{t:.0f}", fmt_mb(kb)] for t, kb in soak.samples]
    verdict = "PASS" if soak.passed else "FAIL"
    text = (
        f"{soak.minutes:g} min; warm-up {soak.warmup_s:.0f} s; RSS after warm-up "
        f"{fmt_mb(soak.baseline_kb)} MB, final {fmt_mb(soak.final_kb)} MB "
        f"(limit {SOAK_GROWTH_LIMIT:.2f}×): **{verdict}**\n\n"
        f"Load through pgsidecar: {soak.load}.\n\n"
        + md_table(["t (s)", "pgsidecar RSS MB"], rows)
    )
    if soak.note:
        text += f"\n\n```\n{soak.note}\n```"
    return text


# --------------------------------------------------------------------------------------
# Target verdicts (goals, not assertions)


def verdicts(cells: list[Cell], idle: list[IdleResult], soak: Soak | None) -> list[str]:
    return [throughput_verdict(cells), latency_verdict(cells), idle_verdict(idle),
            soak_verdict(soak)]


def comparable(cells: list[Cell]) -> list[tuple[Cell, Result, Result]]:
    """Cells where PgBouncer worked, with both pooler results."""
    out = []
    for c in cells:
        b, x = c.results.get("pgbouncer"), c.results.get("pgsidecar")
        if b and x and b.status == "ok":
            out.append((c, b, x))
    return out


def throughput_verdict(cells: list[Cell]) -> str:
    pairs = comparable(cells)
    if not pairs:
        return "- Throughput ≥ 1.0× PgBouncer in every cell: not measured"
    ratios = [(c, x.tps / b.tps if x.status == "ok" else 0.0) for c, b, x in pairs]
    below = [f"{c.label} ({r:.2f}×)" for c, r in ratios if r < 1.0]
    at_aim = sum(r >= 1.2 for _, r in ratios)
    cheaper = sum(1 for _, b, x in pairs if x.status == "ok" and x.cpu_per_1k is not None
                  and b.cpu_per_1k is not None and x.cpu_per_1k < b.cpu_per_1k)
    verdict = "MET" if not below else "MISSED"
    lines = [f"- Throughput ≥ 1.0× PgBouncer in every cell where PgBouncer works: **{verdict}** "
             f"(≥ 1.0× in {len(pairs) - len(below)} of {len(pairs)} cells)"]
    if below:
        lines.append(f"  - below 1.0×: {', '.join(below)}")
    lines.append(f"- Aim 1.2× PgBouncer: reached in {at_aim} of {len(pairs)} cells")
    cpu_verdict = "MET" if cheaper == len(pairs) else "MISSED"
    lines.append(f"- Less CPU per transaction than PgBouncer: **{cpu_verdict}** "
                 f"(less in {cheaper} of {len(pairs)} cells)")
    return "\n".join(lines)


def latency_verdict(cells: list[Cell]) -> str:
    lines = []
    for c in cells:
        d, x = c.results.get("direct"), c.results.get("pgsidecar")
        if c.clients != 1 or c.mode != "extended" or not (d and x):
            continue
        if d.status == x.status == "ok":
            added = x.p50_us - d.p50_us
            verdict = "MET" if added <= 30 else "MISSED"
            lines.append(f"- One client, extended, {c.script}: added p50 latency over direct "
                         f"{added:+d} µs (goal ≤ 30 µs): **{verdict}**")
        else:
            lines.append(f"- One client, extended, {c.script}: added p50 latency: not measured "
                         f"(direct {d.status}, pgsidecar {x.status})")
    return "\n".join(lines) or "- One client, extended protocol, added p50 ≤ 30 µs: not measured"


def idle_verdict(idle: list[IdleResult]) -> str:
    r = next((r for r in idle if r.pooler == "pgsidecar"), None)
    if r is None:
        return "- 10,000 idle clients in ≤ 200 MB RSS: not measured (run with --conns)"
    ok = r.connected == r.wanted and r.rss_after_kb <= 200 * 1024
    return (f"- {r.wanted:,} idle clients in ≤ 200 MB RSS: {r.connected:,} logged in, RSS "
            f"{fmt_mb(r.rss_after_kb)} MB: **{'MET' if ok else 'MISSED'}**")


def soak_verdict(soak: Soak | None) -> str:
    if soak is None:
        return "- Soak RSS flat: not measured (run with --soak MINUTES)"
    return (f"- Soak RSS flat ({soak.minutes:g} min, final ≤ {SOAK_GROWTH_LIMIT:.2f}× post-warm-up): "
            f"**{'MET' if soak.passed else 'MISSED'}**")


# --------------------------------------------------------------------------------------
# Report files


def report(s, machine: dict[str, str], cells, idle, busy, soak, started: datetime.datetime) -> str:
    kind = "quick run" if s.quick else "run"
    parts = [
        f"# pgsidecar benchmark, {started:%Y-%m-%d %H:%M} ({kind})",
        f"Command: `{s.command}`",
        "Machine:\n\n" + "\n".join(f"- {k}: {v}" for k, v in machine.items()),
        settings_text(s),
        "## Target verdicts\n\n" + "\n".join(verdicts(cells, idle, soak)),
    ]
    if cells:
        parts.append("## pgbench matrix\n\n" + "\n\n".join(matrix_tables(cells)))
    if idle or busy:
        parts.append("## Connection scale\n\n" + conns_section(s, idle, busy))
    if soak:
        parts.append("## Soak\n\n" + soak_section(soak))
    failures = failures_section(cells, busy)
    if failures:
        parts.append("## Failures\n\n" + failures)
    return "\n\n".join(parts) + "\n"


def settings_text(s) -> str:
    return (
        "Settings and method:\n\n"
        f"- pgbench database `{s.db}`, scale {s.scale}; `-T {s.duration}` per run, "
        f"`-j min(clients, {s.jobs})`, `-n` (the TPC-B tables are vacuumed and "
        "pgbench_history truncated directly before every TPC-B run).\n"
        f"- Both poolers: transaction mode, pool size {s.pool_size}, trust auth, loopback, "
        f"clients queue for a server at most {QUEUE_TIMEOUT_S} s. "
        "Each cell runs direct → PgBouncer → pgsidecar back to back; each pooler is "
        "started fresh for its cell (after one readiness query) and stopped after it.\n"
        "- TPS: pgbench's `tps` without initial connection time. Latency p50 / p99: from the "
        "per-transaction log (`-l`), successful transactions only.\n"
        "- CPU s / 1k tx: the pooler's utime + stime (/proc/PID/stat) over the pgbench run, "
        "client connection set-up included, per 1,000 transactions.\n"
        "- Peak RSS: the pooler's VmHWM at the end of the cell (the process lived only "
        "for that cell).\n"
        "- n/a: the target cannot run the cell (direct: more clients than the server has "
        "free connections; PgBouncer < 1.21: no prepared statements in transaction mode). "
        "FAILED: pgbench errors or failed transactions (details under Failures)."
    )


def write_csvs(stamp: str, cells, idle, busy, soak) -> list[Path]:
    written = []
    if cells:
        rows = [{"script": c.script, "mode": c.mode, "clients": c.clients, **result_row(r)}
                for c in cells for r in c.results.values()]
        written.append(write_csv(RESULTS_DIR / f"{stamp}.csv", rows))
    if idle:
        rows = [{**dataclasses.asdict(r), "errors": len(r.errors), "bytes_per_client": r.bytes_per_client}
                for r in idle]
        written.append(write_csv(RESULTS_DIR / f"{stamp}-idle.csv", rows))
    if busy:
        written.append(write_csv(RESULTS_DIR / f"{stamp}-busy.csv", [result_row(r) for r in busy]))
    if soak:
        rows = [{"seconds": round(t, 1), "rss_kb": kb} for t, kb in soak.samples]
        written.append(write_csv(RESULTS_DIR / f"{stamp}-soak.csv", rows))
    return written


def result_row(r: Result) -> dict:
    row = dataclasses.asdict(r)
    row.pop("detail")
    return row


def write_csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


# --------------------------------------------------------------------------------------
# Main


def prepare(s) -> None:
    fds = raise_fd_limit(max(FD_LIMIT, 2 * s.idle_clients + 1000))
    if s.conns and fds < s.idle_clients + 100:
        raise RuntimeError(f"file-descriptor limit {fds} is too low for {s.idle_clients} clients")
    s.bouncer_path = ensure_pgbouncer()
    s.bouncer_version = pgbouncer_version(s.bouncer_path)
    ensure_pgsidecar_built(s.no_build)
    ensure_bench_db(s)


def main(argv: list[str]) -> int:
    if "--instructions" in argv:
        return __import__("instructions").main(argv)  # bench/instructions.py
    s = parse_args(argv)
    s.command = shlex.join(["bench/run", *argv])
    signal.signal(signal.SIGTERM, on_stop_signal)
    signal.signal(signal.SIGINT, on_stop_signal)  # also when started with SIGINT ignored
    started = datetime.datetime.now()
    work = Path(tempfile.mkdtemp(prefix="pgsidecar-bench-"))
    work.chmod(0o755)  # PgBouncer runs as postgres and reads its files from here
    cells, idle, busy, soak, overhead, unix = [], [], [], None, [], []
    try:
        prepare(s)
        machine = machine_description(s)
        if s.matrix:
            cells = run_matrix(s, work)
        if s.conns:
            idle, busy = run_conns(s, work)
        if s.soak:
            soak = run_soak(s, work)
        if s.stats_overhead:
            overhead = run_stats_overhead(s, work)
        if s.unix:
            unix = run_unix(s, work)
        machine["load average at end"] = load_average()
        text = report(s, machine, cells, idle, busy, soak, started)
        if overhead:
            text += "\n## Cost of statistics\n\n" + overhead_section(s, overhead) + "\n"
        if unix:
            text += "\n## TCP against Unix sockets\n\n" + unix_section(s, unix) + "\n"
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        stamp = started.strftime("%Y%m%d-%H%M%S")
        md = RESULTS_DIR / f"{stamp}.md"
        md.write_text(text)
        print(text)
        for path in [md, *write_csvs(stamp, cells, idle, busy, soak)]:
            log(f"wrote {path.relative_to(REPO)}")
        return 1 if soak and not soak.passed else 0
    except KeyboardInterrupt:
        log("interrupted: stopping everything")
        return 130
    except RuntimeError as e:
        log(f"bench: {e}")
        return 2
    finally:
        CHILDREN.stop_all()
        if s.keep:
            log(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if sys.version_info < (3, 11):
        sys.exit("bench: Python 3.11 or newer is needed")
    sys.exit(main(sys.argv[1:]))
