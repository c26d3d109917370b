"""`bench/run --instructions`: user-space instructions per transaction, under callgrind.

Instruction counts do not depend on how busy the machine is, so this measures the CPU a
pooler spends per transaction even on a loaded machine. Each pooler (pgsidecar with
statistics on, pgsidecar with them off, PgBouncer) runs under `valgrind --tool=callgrind`
twice per protocol, with `pgbench -S -c 8 -t N` at two values of N; the difference of
the two totals over the difference of the transactions cancels start-up, connection
set-up and shutdown. The pgsidecar runs' profiles are compared the same way, function by
function (inclusive), to show where a transaction's instructions go.

Options (after `--instructions`): `--instr-n N1,N2` transactions per client [200,1000], `--instr-binary PATH`
(another pgsidecar build, measured as is),
`--modes simple,extended`, plus the harness's connection options. Writes
bench/results/<timestamp>-instructions.md and keeps the callgrind files next to it.
"""

from __future__ import annotations

import datetime
import re
import signal
import subprocess
import time
from pathlib import Path

import bench as b

CLIENTS = 8
JOBS = 2
POOLERS = ("pgsidecar", "pgsidecar-nostats", "pgbouncer")
#: Functions shown in the per-transaction profile.
PROFILE_ROWS = 30


def main(argv: list[str]) -> int:
    n_values = [200, 1000]
    rest = []
    it = iter(argv)
    for arg in it:
        if arg == "--instructions":
            continue
        if arg == "--instr-n":
            n_values = [int(x) for x in next(it).split(",")]
        elif arg.startswith("--instr-n="):
            n_values = [int(x) for x in arg.split("=", 1)[1].split(",")]
        elif arg == "--instr-binary":
            b.BINARY = Path(next(it)).resolve()  # another build (say main's) for a before/after
        else:
            rest.append(arg)
    s = b.parse_args(rest)
    s.no_build = s.no_build or b.BINARY != b.REPO / "target" / "release" / "pgsidecar"
    s.conns = False
    modes = [m for m in s.modes.split(",") if m in ("simple", "extended", "prepared")]
    if "--modes" not in " ".join(rest):
        modes = ["simple", "extended"]
    started = datetime.datetime.now()
    stamp = started.strftime("%Y%m%d-%H%M%S")
    out_dir = b.RESULTS_DIR / f"{stamp}-callgrind"
    out_dir.mkdir(parents=True, exist_ok=True)
    out_dir.chmod(0o777)  # PgBouncer runs as postgres and writes its profile here
    work = Path(b.tempfile.mkdtemp(prefix="pgsidecar-instr-"))
    work.chmod(0o755)
    try:
        b.prepare(s)
        rows, profiles = [], {}
        for mode in modes:
            for pooler in POOLERS:
                totals = []
                for n in n_values:
                    out = out_dir / f"{pooler}-{mode}-{n}.out"
                    totals.append(measure(s, work, pooler, mode, n, out))
                per_tx = (totals[1] - totals[0]) / ((n_values[1] - n_values[0]) * CLIENTS)
                rows.append((mode, pooler, per_tx, totals))
                b.log(f"{mode:9} {pooler:18} {per_tx:10,.0f} instructions per transaction")
                if pooler.startswith("pgsidecar"):
                    files = [out_dir / f"{pooler}-{mode}-{n}.out" for n in n_values]
                    profiles[(mode, pooler)] = profile(files, n_values)
        text = report(s, rows, profiles, n_values, out_dir)
        md = b.RESULTS_DIR / f"{stamp}-instructions.md"
        md.write_text(text)
        print(text)
        b.log(f"wrote {md.relative_to(b.REPO)}")
        return 0
    except KeyboardInterrupt:
        return 130
    except RuntimeError as e:
        b.log(f"bench: {e}")
        return 2
    finally:
        b.CHILDREN.stop_all()
        b.shutil.rmtree(work, ignore_errors=True)


def measure(s, work: Path, pooler: str, mode: str, n: int, out: Path) -> int:
    """Total instructions of one pooler process serving `pgbench -S -t n`."""
    wrap = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
    original = b.CHILDREN.start

    def start(argv, log=None, **kw):
        return original([*wrap, *argv], log=log, **kw)

    b.CHILDREN.start = start
    try:
        if pooler == "pgbouncer":
            p = b.start_pgbouncer(s, work)
        else:
            p = b.start_pgsidecar(s, work, stats=pooler == "pgsidecar")
    finally:
        b.CHILDREN.start = original
    try:
        b.wait_ready(s, p, timeout=120.0)
        argv = ["pgbench", *b.pg_conninfo(s, p.port), "-n", "-S", "-M", mode,
                "-c", str(CLIENTS), "-j", str(JOBS), "-t", str(n), s.db]
        code, stdout, err = b.run_pgbench(argv, 600)
        if code != 0:
            raise RuntimeError(f"pgbench through {pooler} failed: {err.strip()[-500:]}")
    finally:
        # SIGINT: both poolers exit cleanly on it, so callgrind writes its totals.
        if p.proc.poll() is None:
            p.proc.send_signal(signal.SIGINT)
        try:
            p.proc.wait(120)
        except subprocess.TimeoutExpired:
            p.proc.kill()
            p.proc.wait()
        if p.proc in b.CHILDREN.procs:
            b.CHILDREN.procs.remove(p.proc)
    for _ in range(50):
        if out.exists():
            break
        time.sleep(0.1)
    return totals(out)


def totals(out: Path) -> int:
    text = out.read_text(errors="replace")
    m = re.search(r"^(?:summary|totals):\s+(\d+)", text, re.M)
    if not m:
        raise RuntimeError(f"no totals in {out}")
    return int(m.group(1))


def inclusive(out: Path) -> dict[str, int]:
    """Inclusive instructions per function, from callgrind_annotate."""
    text = subprocess.run(
        ["callgrind_annotate", "--inclusive=yes", "--threshold=100", str(out)],
        capture_output=True, text=True, check=False).stdout
    found: dict[str, int] = {}
    for line in text.splitlines():
        m = re.match(r"^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(\S.*?)(?:\s+\[[^\]]*\])?$", line)
        if not m or ":" not in m.group(2):
            continue
        name = short_name(m.group(2).split(":", 1)[1])
        found[name] = max(found.get(name, 0), int(m.group(1).replace(",", "")))
    return found


def short_name(name: str) -> str:
    name = re.sub(r"::h[0-9a-f]{16}$", "", name)
    name = re.sub(r"<[^<>]*>", "<>", name)
    return name[:110]


def profile(files: list[Path], n_values: list[int]) -> list[tuple[str, float]]:
    low, high = inclusive(files[0]), inclusive(files[1])
    tx = (n_values[1] - n_values[0]) * CLIENTS
    rows = [(name, (high[name] - low.get(name, 0)) / tx) for name in high]
    rows = [r for r in rows if r[1] >= 20]
    rows.sort(key=lambda r: -r[1])
    return rows[:PROFILE_ROWS]


def report(s, rows, profiles, n_values, out_dir: Path) -> str:
    lines = [
        "# Instructions per transaction (callgrind)", "",
        f"`{b.shlex.join(['bench/run', '--instructions'])}` — pgbench -S -c {CLIENTS} -j {JOBS}, "
        f"-t {n_values[0]} and {n_values[1]} per client, difference of totals over "
        f"{(n_values[1] - n_values[0]) * CLIENTS} transactions; load average "
        f"{b.load_average()} (does not matter for instruction counts).", "",
        "| protocol | pooler | instructions / tx | × PgBouncer |",
        "|---|---|---:|---:|",
    ]
    bouncer = {mode: per for mode, pooler, per, _ in rows if pooler == "pgbouncer"}
    for mode, pooler, per, _ in rows:
        ratio = per / bouncer[mode] if bouncer.get(mode) else float("nan")
        lines.append(f"| {mode} | {pooler} | {per:,.0f} | {ratio:.2f} |")
    for (mode, pooler), prof in profiles.items():
        lines += ["", f"## Where a transaction's instructions go: {pooler}, {mode}", "",
                  "| inclusive per transaction | function |", "|---:|---|"]
        lines += [f"| {per:,.0f} | `{name}` |" for name, per in prof]
    lines += ["", f"Callgrind files: `{out_dir.relative_to(b.REPO)}`", ""]
    return "\n".join(lines)
