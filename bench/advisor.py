"""`bench/run --advisor`: does the index advisor's advice pay off?

Loads a `conversations`-style schema (modelled on the requirements inventory, T-1.2)
with primary keys, a unique slug and a foreign key, and no secondary indexes. Runs a
dashboard mix through pgsidecar (pgbench, extended protocol, so values are bound), asks
for advice (`POST /api/advice/run`, timed: the target is <= 60 s), applies every
suggested CREATE INDEX, runs the mix again; then replaces the advisor's indexes with a
human-chosen set written down below (before any run), and runs it a third time.
Reports TPS and p95 for the three, the number of indexes, and the advisor's TPS as a
share of the human set's (target >= 80% with no more indexes).
"""

import datetime
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import bench as b

DB = "pgsidecar_advisor_bench"

# The human set, chosen from the inventory (T-1.2.1, T-1.2.2) and the mix below before
# any measurement. Its btree list follows the inventory; chunks(conversation_id) is the
# foreign key's index every reviewer would add for the conversation -> chunks lookups.
HUMAN = [
    "CREATE INDEX h_status ON conversations (status)",
    "CREATE INDEX h_tier ON conversations (tier)",
    "CREATE INDEX h_created_at ON conversations (created_at DESC)",
    "CREATE INDEX h_updated_at ON conversations (updated_at)",
    "CREATE INDEX h_quality ON conversations (quality_score)",
    "CREATE INDEX h_status_quality ON conversations (status, quality_score)",
    "CREATE INDEX h_tier_status_date ON conversations (tier, status, created_at DESC)",
    "CREATE INDEX h_pending ON conversations (created_at) WHERE status = 'pending_review'",
    "CREATE INDEX h_category ON conversations USING gin (category)",
    "CREATE INDEX h_metadata ON conversations USING gin (metadata jsonb_path_ops)",
    "CREATE INDEX h_chunks_conv ON chunks (conversation_id)",
]

# The dashboard mix: (weight, pgbench script). :vars are bound parameters (-M extended).
MIX = [
    (30, """\\set tier random(0, 2)
\\set st random(0, 2)
SELECT id, title, quality_score FROM conversations
 WHERE tier = (ARRAY['template','scenario','edge_case'])[:tier + 1]
   AND status = (ARRAY['draft','approved','rejected'])[:st + 1]
 ORDER BY created_at DESC LIMIT 25;"""),
    (15, """SELECT id, title FROM conversations WHERE status = 'pending_review'
 ORDER BY created_at LIMIT 50;"""),
    (10, """\\set st random(0, 2)
\\set q random(900, 999)
SELECT count(*) FROM conversations
 WHERE status = (ARRAY['draft','approved','rejected'])[:st + 1] AND quality_score >= :q / 100.0;"""),
    (20, """\\set id random(1, 100000)
SELECT * FROM conversations WHERE id = :id;
SELECT body FROM chunks WHERE conversation_id = :id;"""),
    (15, """\\set m random(1, 120)
SELECT id, title FROM conversations WHERE updated_at > now() - make_interval(mins => :m)
 ORDER BY updated_at DESC LIMIT 20;"""),
    (10, """\\set c random(0, 49)
SELECT id FROM conversations WHERE category @> ARRAY['cat-' || :c] LIMIT 50;"""),
]

SCHEMA = """
DROP TABLE IF EXISTS chunks, conversations;
CREATE TABLE conversations (
    id bigint PRIMARY KEY, slug text UNIQUE NOT NULL, status text NOT NULL,
    tier text NOT NULL, persona text NOT NULL, emotion text NOT NULL, title text NOT NULL,
    quality_score numeric NOT NULL, category text[] NOT NULL, metadata jsonb NOT NULL,
    created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL);
CREATE TABLE chunks (id bigserial PRIMARY KEY,
    conversation_id bigint NOT NULL REFERENCES conversations (id), body text NOT NULL);
INSERT INTO conversations
SELECT g, 'slug-' || g,
       CASE WHEN g % 200 = 0 THEN 'pending_review' ELSE (ARRAY['draft','approved','rejected'])[1 + g % 3] END,
       (ARRAY['template','scenario','edge_case'])[1 + (g / 3) % 3],
       'persona-' || (g % 150), 'emotion-' || (g % 170),
       'conversation about ' || md5(g::text), (g % 1000) / 100.0,
       ARRAY['cat-' || (g % 50), 'cat-' || (g % 7)],
       jsonb_build_object('source', 'src-' || (g % 400)),
       now() - make_interval(secs => g * 90), now() - make_interval(secs => g * 45)
FROM generate_series(1, 100000) g;
INSERT INTO chunks (conversation_id, body)
SELECT 1 + g % 100000, 'chunk ' || g FROM generate_series(1, 300000) g;
"""


def secondary_indexes(s) -> list[str]:
    out = b.psql(s, "SELECT indexname FROM pg_indexes WHERE schemaname = 'public' "
                    "AND indexname NOT IN ('conversations_pkey','conversations_slug_key','chunks_pkey')",
                 db=DB)
    return [n for n in out.splitlines() if n]


def drop_secondary(s) -> None:
    for name in secondary_indexes(s):
        b.psql(s, f'DROP INDEX "{name}"', db=DB)


def run_mix(s, port: int, work: Path, label: str) -> dict:
    scripts = []
    for i, (weight, text) in enumerate(MIX):
        path = work / f"mix{i}.sql"
        path.write_text(text + "\n")
        scripts += ["-f", f"{path}@{weight}"]
    logs = work / f"logs-{label}"
    logs.mkdir()
    argv = ["pgbench", "-n", "-M", "extended", "-c", str(s.clients), "-j", str(min(s.clients, 4)),
            "-T", str(s.duration), "-l", f"--log-prefix={logs}/tx",
            *b.pg_conninfo(s, port), *scripts, DB]
    proc = b.run(argv, check=False, timeout=s.duration + 120)
    if proc.returncode != 0:
        raise RuntimeError(f"pgbench failed ({label}): {proc.stderr[-500:]}")
    summary = b.parse_summary(proc.stdout)
    latencies, _ = b.read_tx_logs(logs)
    p95 = b.percentile(latencies, 95)
    result = {"label": label, "tps": summary.get("tps", 0.0), "p95_ms": (p95 or 0) / 1000.0,
              "transactions": int(summary.get("transactions", 0)),
              "indexes": len(secondary_indexes(s))}
    b.log(f"{label}: {result['tps']:.0f} TPS, p95 {result['p95_ms']:.2f} ms, {result['indexes']} indexes")
    return result


def http(method: str, url: str) -> bytes:
    req = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(req, timeout=300) as r:
        return r.read()


def start(s, work: Path, binary: Path):
    port, admin = b.free_port(), b.free_port()
    config = work / "advisor.toml"
    config.write_text(
        f'listen = "127.0.0.1:{port}"\nadmin_listen = "127.0.0.1:{admin}"\n'
        f'upstream = "postgres://{s.pg_user}@{s.pg_host}:{s.pg_port}/postgres"\n'
        'auth_type = "trust"\npool_size = 20\nstore = false\nlog_format = "text"\n'
        '[advisor]\ninterval = "0s"\n')
    log_path = work / "pgsidecar.log"
    proc = b.CHILDREN.start([str(binary), "--config", str(config)], log=log_path,
                            env=dict(os.environ, NO_COLOR="1"))
    pooler = b.Pooler("pgsidecar", port, proc, log_path)
    s.db = DB
    b.wait_ready(s, pooler, timeout=30)
    return pooler, f"http://127.0.0.1:{admin}"


def main(argv: list[str]) -> int:
    import argparse
    p = argparse.ArgumentParser(prog="bench/run --advisor", description=__doc__)
    p.add_argument("--duration", type=int, default=30, help="seconds per run [30]")
    p.add_argument("--clients", type=int, default=8, help="pgbench clients [8]")
    p.add_argument("--pg-host", default="127.0.0.1")
    p.add_argument("--pg-port", type=int, default=5432)
    p.add_argument("--pg-user", default="postgres")
    p.add_argument("--debug-binary", action="store_true",
                   help="benchmark target/debug/pgsidecar (no release build)")
    s = p.parse_args(argv)
    binary = b.REPO / "target" / ("debug" if s.debug_binary else "release") / "pgsidecar"
    if not s.debug_binary:
        b.ensure_pgsidecar_built(False)
    started = datetime.datetime.now()
    work = Path(tempfile.mkdtemp(prefix="pgsidecar-advisor-"))
    try:
        b.psql(s, f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)', f'CREATE DATABASE "{DB}"')
        b.psql(s, "CREATE EXTENSION hypopg", "CREATE EXTENSION pg_trgm", db=DB)
        b.log("loading 100,000 conversations and 300,000 chunks")
        b.psql(s, SCHEMA, db=DB)
        b.psql(s, "VACUUM ANALYZE", db=DB)
        pooler, admin = start(s, work, binary)
        none = run_mix(s, pooler.port, work, "no secondary indexes")
        t0 = time.monotonic()
        summary = json.loads(http("POST", f"{admin}/api/advice/run"))
        pass_s = time.monotonic() - t0
        script = http("GET", f"{admin}/api/advice/script").decode()
        creates = [l for l in script.splitlines() if l.startswith("CREATE INDEX CONCURRENTLY")]
        b.log(f"advisor pass: {pass_s:.1f} s, {len(creates)} CREATE statements")
        for c in creates:
            b.psql(s, c, db=DB)
        b.psql(s, "ANALYZE", db=DB)
        # A second pass notices the applied indexes, so the closed loop measures "after".
        http("POST", f"{admin}/api/advice/run")
        advised = run_mix(s, pooler.port, work, "advisor's indexes")
        loop = json.loads(http("GET", f"{admin}/api/advice?kind=create&limit=100"))
        drop_secondary(s)
        for c in HUMAN:
            b.psql(s, c, db=DB)
        b.psql(s, "ANALYZE", db=DB)
        human = run_mix(s, pooler.port, work, "human-chosen indexes")
        text = report(s, started, binary, none, advised, human, pass_s, script, summary, loop)
        b.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        md = b.RESULTS_DIR / f"{started.strftime('%Y%m%d-%H%M%S')}-advisor.md"
        md.write_text(text)
        print(text)
        b.log(f"wrote {md.relative_to(b.REPO)}")
        return 0
    except RuntimeError as e:
        b.log(f"bench: {e}")
        return 2
    finally:
        b.CHILDREN.stop_all()
        shutil.rmtree(work, ignore_errors=True)


def report(s, started, binary, none, advised, human, pass_s, script, summary, loop) -> str:
    rows = [none, advised, human]
    share = advised["tps"] / human["tps"] * 100 if human["tps"] else 0.0
    lines = [
        f"# Index advisor benchmark, {started:%Y-%m-%d %H:%M}",
        "",
        f"`bench/run --advisor {' '.join(sys.argv[2:])}`; binary `{binary.relative_to(b.REPO)}`; "
        f"pgbench -M extended, {s.clients} clients, {s.duration} s per run, through pgsidecar; "
        f"load average at end {b.load_average()}.",
        "",
        "| indexes | secondary indexes | TPS | p95 (ms) |",
        "|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['label']} | {r['indexes']} | {r['tps']:.0f} | {r['p95_ms']:.2f} |")
    lines += [
        "",
        f"Advisor's TPS as a share of the human set's: **{share:.0f}%** "
        f"({advised['indexes']} indexes against {human['indexes']}). "
        f"Advisor pass: **{pass_s:.1f} s** (target <= 60 s).",
        "",
        "Measured by the closed loop (p95 before -> after, ms):",
        "",
    ]
    for sug in loop.get("data", []):
        for v in sug.get("serves", []):
            b_, a_ = v.get("measured_before") or {}, v.get("measured_after") or {}
            if a_.get("calls"):
                lines.append(f"- `{sug['name']}` for `{v['query'][:80]}`: "
                             f"{b_.get('p95_ms', 0):.2f} -> {a_.get('p95_ms', 0):.2f}")
    lines += ["", "Human set (written down before the runs):", ""]
    lines += [f"- `{c}`" for c in HUMAN]
    lines += ["", "Advice as printed (`/api/advice/script`):", "", "```sql", script.strip(), "```", ""]
    return "\n".join(lines)
