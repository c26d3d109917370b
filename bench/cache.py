"""`bench/run --cache`: the result cache on a dashboard workload (issue #11).

This module owns the cache benchmark; `bench.py` only dispatches here and lends its
process handling, pooler start-up and pgbench parsing. The workload is bench/workload/: a
`conversations` table modelled on the requirements inventory (schema.sql, 300,000 rows by
default, in the harness's own database `pgsidecar_cache_bench`) and pgbench scripts for
list pages with filters and a keyset cursor, statistics, filter options (DISTINCT) and
template lookups, mixed with 0 %, 5 % and 10 % writes.

Each write share runs against direct PostgreSQL, PgBouncer, pgsidecar without a cache and
pgsidecar with `[cache] mode = "auto"` (or the section in --cache-config), back to back,
each pooler fresh. A pgsidecar that rejects the `[cache]` section (`check-config` fails)
gets the cache variant skipped with the reason in the report. Then one-client latencies of
two statements (a point lookup and a list page): direct ("origin"), through pgsidecar
without the cache, through the cache with a fresh key every time (miss) and with one key
(hit), giving the break-even hit ratio r > (miss − origin) / (miss − hit). The cache's
hit and miss counters are read from /metrics around every run, so a "hit" row that did
not hit says so. Report: bench/results/<stamp>-cache.md (see cache_report.py).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import os
import re
import shlex
import shutil
import signal
import tempfile
import time
import urllib.request
from pathlib import Path

import bench
import cache_report

WORKLOAD = Path(__file__).resolve().parent / "workload"
DB = "pgsidecar_cache_bench"
TEMPLATES = 200
TARGETS = ("direct", "pgbouncer", "pgsidecar", "cache")
# Reads of one dashboard session, in percent: mostly list pages and lookups, the heavy
# aggregates and DISTINCTs less often (they are what a dashboard would cache by TTL).
READS = {"list": 40, "queue": 10, "template_get": 20, "template_list": 10,
         "stats_count": 10, "stats_status": 5, "filters": 5}
# Writes: review actions on conversations twice as often as template usage counters.
WRITES = {"write_status": 2, "write_template": 1}
DEFAULT_CACHE_TOML = '[cache]\nmode = "auto"\n'
LATENCY_STATEMENTS = {"point": "point lookup by primary key", "page": "list page (25 rows)"}


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run --cache", description=__doc__.split("\n\n")[0])
    p.add_argument("--cache", action="store_true", help="(selects this benchmark)")
    p.add_argument("--duration", type=int, default=15, help="seconds per mix run [15]")
    p.add_argument("--warmup", type=int, default=3, help="unmeasured seconds before each run [3]")
    p.add_argument("--latency-duration", type=int, default=5, help="seconds per one-client run [5]")
    p.add_argument("--clients", type=int, default=16, help="pgbench clients for the mix [16]")
    p.add_argument("--writes", default="0,5,10", help="write shares in percent [0,5,10]")
    p.add_argument("--mode", default="extended", choices=bench.MODES, help="pgbench -M [extended]")
    p.add_argument("--targets", default=",".join(TARGETS), help=",".join(TARGETS))
    p.add_argument("--rows", type=int, default=300_000, help="conversations rows [300000]")
    p.add_argument("--cache-config", type=Path,
                   help=f"TOML appended to pgsidecar's config for the cache variant [{DEFAULT_CACHE_TOML!r}]")
    p.add_argument("--cache-label", default="pgsidecar + cache",
                   help="the cache variant's name in the report, e.g. for a rules config "
                        "matching nothing (the no-regression check) [pgsidecar + cache]")
    p.add_argument("--no-latency", action="store_true", help="skip the one-client latencies")
    p.add_argument("--binary", type=Path, help="pgsidecar binary [target/release/pgsidecar, built]")
    p.add_argument("--no-build", action="store_true", help="use the existing binary as is")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="pgbench -j cap [nproc]")
    p.add_argument("--pool-size", type=int, default=20, help="server connections per pool [20]")
    p.add_argument("--pg-host", default="127.0.0.1")
    p.add_argument("--pg-port", type=int, default=5432)
    p.add_argument("--pg-user", default="postgres")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    s = p.parse_args(argv)
    s.writes = [int(w) for w in s.writes.split(",") if w]
    s.targets = bench.checked_list(p, "--targets", s.targets, TARGETS)
    if any(not 0 <= w < 100 for w in s.writes):
        p.error("--writes: each share is a percentage in [0, 100)")
    s.db, s.idle_clients, s.quick = DB, 0, False  # what bench.py's helpers read
    s.reads, s.write_split, s.statements = READS, WRITES, LATENCY_STATEMENTS  # for the report
    s.cache_toml = s.cache_config.read_text() if s.cache_config else DEFAULT_CACHE_TOML
    return s


# --------------------------------------------------------------------------------------
# Setup


def ensure_dataset(s) -> None:
    """Loads schema.sql unless the database already holds this many rows."""
    if not bench.psql(s, f"SELECT 1 FROM pg_database WHERE datname = '{DB}'"):
        bench.psql(s, f'CREATE DATABASE "{DB}"')
    have = bench.psql(s, "SELECT CASE WHEN to_regclass('bench_meta') IS NULL THEN 0 "
                      "ELSE (SELECT rows FROM bench_meta) END", db=DB)
    if int(have or 0) == s.rows:
        return
    bench.log(f"loading the dashboard workload into {DB}: {s.rows:,} conversations")
    bench.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-v", f"rows={s.rows}",
               "-v", f"templates={TEMPLATES}", *bench.pg_conninfo(s), "-d", DB,
               "-f", str(WORKLOAD / "schema.sql")], timeout=3600)


def sidecar_config(s, work: Path, port: int, admin: int, cache: bool) -> Path:
    path = work / ("pgsidecar-cache.toml" if cache else "pgsidecar.toml")
    path.write_text(
        f'listen = "127.0.0.1:{port}"\nadmin_listen = "127.0.0.1:{admin}"\n'
        f'upstream = "postgres://{s.pg_user}@{s.pg_host}:{s.pg_port}/{DB}"\n'
        f'auth_type = "trust"\npool_mode = "transaction"\npool_size = {s.pool_size}\n'
        f'checkout_timeout = "{bench.QUEUE_TIMEOUT_S}s"\nshutdown_timeout = "2s"\n'
        'log_format = "text"\n' + (s.cache_toml if cache else ""))
    return path


def cache_support(s, work: Path) -> str | None:
    """None when the binary accepts the cache config and installed its triggers, else
    why the cache variant is skipped."""
    config = sidecar_config(s, work, bench.free_port(), bench.free_port(), cache=True)
    checked = bench.run([str(bench.BINARY), "check-config", "--config", str(config)], check=False)
    if checked.returncode != 0:
        why = (checked.stderr.strip() or checked.stdout.strip()).splitlines()
        why = why[-1].split(", expected one of")[0] if why else f"exit {checked.returncode}"
        return f"pgsidecar rejects the [cache] section ({why})"
    installed = bench.run([str(bench.BINARY), "cache", "install", "--config", str(config)], check=False)
    if installed.returncode != 0:
        return "`pgsidecar cache install` failed: " + installed.stderr.strip()[-300:]
    return None


def uninstall_cache(s, work: Path) -> None:
    config = sidecar_config(s, work, bench.free_port(), bench.free_port(), cache=True)
    bench.run([str(bench.BINARY), "cache", "uninstall", "--config", str(config)], check=False)


@dataclasses.dataclass
class Sidecar(bench.Pooler):
    admin: int = 0

    def cache_counters(self) -> dict[str, float]:
        """Sums of pgsidecar_cache_{hits,misses,bypass}_total over their labels."""
        totals = {"hits": 0.0, "misses": 0.0, "bypass": 0.0}
        with contextlib.suppress(OSError):
            url = f"http://127.0.0.1:{self.admin}/metrics"
            text = urllib.request.urlopen(url, timeout=5).read().decode()
            for m in re.finditer(r"^pgsidecar_cache_(hits|misses|bypass)_total(?:\{[^}]*\})? (\S+)$",
                                 text, re.M):
                totals[m.group(1)] += float(m.group(2))
        return totals


@contextlib.contextmanager
def target_running(s, target: str, work: Path):
    """None for direct, else a fresh pooler, stopped on leaving."""
    if target == "direct":
        yield None
        return
    pooler_dir = work / f"{target}-{time.monotonic_ns()}"
    pooler_dir.mkdir()
    pooler_dir.chmod(0o755)
    if target == "pgbouncer":
        pooler = bench.start_pgbouncer(s, pooler_dir)
    else:
        port, admin = bench.free_port(), bench.free_port()
        config = sidecar_config(s, pooler_dir, port, admin, cache=target == "cache")
        log_path = pooler_dir / "pgsidecar.log"
        proc = bench.CHILDREN.start([str(bench.BINARY), "--config", str(config)], log=log_path,
                                    env=dict(os.environ, NO_COLOR="1"))
        pooler = Sidecar(target, port, proc, log_path, admin=admin)
    try:
        bench.wait_ready(s, pooler)
        yield pooler
    finally:
        bench.CHILDREN.stop(pooler.proc)


# --------------------------------------------------------------------------------------
# Runs


@dataclasses.dataclass
class Run:
    """One pgbench run against one target, with what the cache counted meanwhile."""
    result: bench.Result
    p95_us: int | None = None
    mean_us: float | None = None
    hits: float | None = None
    misses: float | None = None

    @property
    def hit_ratio(self) -> float | None:
        total = (self.hits or 0) + (self.misses or 0)
        return self.hits / total if self.hits is not None and total else None


def mix_scripts(writes: int) -> list[str]:
    """pgbench -f arguments with integer weights summing to 1,000."""
    weights = {name: round(w * (100 - writes) * 10 / 100) for name, w in READS.items()}
    write_total = sum(WRITES.values())
    weights |= {name: round(w * writes * 10 / write_total) for name, w in WRITES.items()}
    return [f"-f{WORKLOAD / name}.sql@{w}" for name, w in weights.items() if w]


def measure(s, port: int, scripts: list[str], clients: int, seconds: int, work: Path,
            pooler: bench.Pooler | None) -> Run:
    """One pgbench run: bench.py's Result (TPS, p50/p99, the pooler's CPU) plus p95, the
    mean and the cache's counters over the run."""
    log_dir = Path(tempfile.mkdtemp(prefix="txlog-", dir=work))
    argv = bench.pgbench_argv(s, port, [*scripts, "-M", s.mode], clients, seconds, log_dir)
    counters = pooler.cache_counters() if isinstance(pooler, Sidecar) else None
    cpu_before = bench.cpu_seconds(pooler.pid) if pooler else 0.0
    rc, out, err = bench.run_pgbench(argv, seconds)
    result = bench.Result(pooler.name if pooler else "direct")
    alive = pooler is not None and pooler.proc.poll() is None
    cpu_used = bench.cpu_seconds(pooler.pid) - cpu_before if alive else None
    latencies, served = bench.read_tx_logs(log_dir)
    shutil.rmtree(log_dir, ignore_errors=True)
    summary = bench.parse_summary(out)
    result.tps = summary.get("tps")
    result.transactions = int(summary.get("transactions", 0))
    result.failed = int(summary.get("failed", 0))
    result.p50_us, result.p99_us = bench.percentile(latencies, 50), bench.percentile(latencies, 99)
    result.clients_served = len(served)
    if cpu_used is not None and result.transactions:
        result.cpu_per_1k = cpu_used / (result.transactions / 1000)
    bench.judge(result, rc, err, pooler)
    run = Run(result, bench.percentile(latencies, 95),
              sum(latencies) / len(latencies) if latencies else None)
    if counters is not None and alive:
        after = pooler.cache_counters()
        run.hits, run.misses = after["hits"] - counters["hits"], after["misses"] - counters["misses"]
    return run


def warm_up(s, port: int, scripts: list[str], clients: int) -> None:
    """Unmeasured: fills PostgreSQL's buffers, the pools and the cache alike."""
    argv = bench.pgbench_argv(s, port, [*scripts, "-M", s.mode], clients, s.warmup, None)
    bench.run_pgbench(argv, s.warmup)


def run_target(s, target: str, scripts: list[str], clients: int, seconds: int, work: Path) -> Run:
    with target_running(s, target, work) as pooler:
        port = pooler.port if pooler else s.pg_port
        if s.warmup:
            warm_up(s, port, scripts, clients)
        run = measure(s, port, scripts, clients, seconds, work, pooler)
    run.result.target = target
    return run


def run_mix(s, work: Path, cache_skip: str | None) -> dict[int, dict[str, Run]]:
    table: dict[int, dict[str, Run]] = {}
    for writes in s.writes:
        table[writes] = {}
        for target in s.targets:
            if target == "cache" and cache_skip:
                continue
            run = run_target(s, target, mix_scripts(writes), s.clients, s.duration, work)
            table[writes][target] = run
            bench.log(f"  mix {writes}% writes, {target}: {bench.short(run.result)}, "
                      f"p95 {run.p95_us} µs" + hit_note(run))
    return table


def hit_note(run: Run) -> str:
    return "" if run.hit_ratio is None else f", cache hits {run.hit_ratio:.0%}"


LATENCY_VARIANTS = (  # (column, target, script suffix)
    ("origin", "direct", "random"), ("direct_fixed", "direct", "fixed"),
    ("nocache", "pgsidecar", "random"), ("miss", "cache", "random"), ("hit", "cache", "fixed"))


def run_latency(s, work: Path, cache_skip: str | None) -> dict[str, dict[str, Run]]:
    out: dict[str, dict[str, Run]] = {}
    for statement in LATENCY_STATEMENTS:
        out[statement] = {}
        for column, target, suffix in LATENCY_VARIANTS:
            if target == "cache" and cache_skip:
                continue
            scripts = [f"-f{WORKLOAD / f'{statement}_{suffix}.sql'}"]
            run = run_target(s, target, scripts, 1, s.latency_duration, work)
            out[statement][column] = run
            bench.log(f"  one client, {statement}, {column}: mean {run.mean_us or 0:.0f} µs"
                      + hit_note(run))
    return out


# --------------------------------------------------------------------------------------
# Main


def prepare(s, work: Path) -> str | None:
    """Everything before the first run; returns why the cache variant is skipped, if so."""
    bench.raise_fd_limit()
    s.bouncer_path = bench.ensure_pgbouncer()
    s.bouncer_version = bench.pgbouncer_version(s.bouncer_path)
    if s.binary:
        bench.BINARY = s.binary.resolve()
    else:
        bench.ensure_pgsidecar_built(s.no_build)
    ensure_dataset(s)
    if "cache" not in s.targets:
        return "not requested (--targets)"
    skip = cache_support(s, work)
    if skip:
        bench.log(f"cache variant skipped: {skip}")
    return skip


def main(argv: list[str]) -> int:
    s = parse_args(argv)
    s.command = shlex.join(["bench/run", *argv])
    signal.signal(signal.SIGTERM, bench.on_stop_signal)
    signal.signal(signal.SIGINT, bench.on_stop_signal)
    started = datetime.datetime.now()
    work = Path(tempfile.mkdtemp(prefix="pgsidecar-cache-bench-"))
    work.chmod(0o755)  # PgBouncer runs as postgres and reads its files from here
    cache_skip = "setup did not finish"
    try:
        cache_skip = prepare(s, work)
        machine = bench.machine_description(s)
        if s.binary:
            machine["pgsidecar"] = machine["pgsidecar"].replace("release build", f"`{s.binary}`")
        mix = run_mix(s, work, cache_skip)
        latency = {} if s.no_latency else run_latency(s, work, cache_skip)
        machine["load average at end"] = bench.load_average()
        text = cache_report.report(s, machine, mix, latency, cache_skip, started)
        bench.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        md = bench.RESULTS_DIR / f"{started:%Y%m%d-%H%M%S}-cache.md"
        md.write_text(text)
        print(text)
        bench.log(f"wrote {md.relative_to(bench.REPO)}")
        return 0
    except KeyboardInterrupt:
        bench.log("interrupted: stopping everything")
        return 130
    except RuntimeError as e:
        bench.log(f"bench: {e}")
        return 2
    finally:
        bench.CHILDREN.stop_all()
        if cache_skip is None:
            uninstall_cache(s, work)  # the NOTIFY triggers would slow later direct runs
        if s.keep:
            bench.log(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
