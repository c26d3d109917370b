"""The Markdown report of `bench/run --cache`: tables, ratios to direct PostgreSQL, the
break-even hit ratio and the issue #11 target verdicts (goals, not assertions)."""

from __future__ import annotations

import datetime

import bench

LABELS = {"direct": "PostgreSQL", "pgbouncer": "PgBouncer", "pgsidecar": "pgsidecar, no cache",
          "cache": "pgsidecar + cache"}
VARIANT_TEXT = {
    "origin": ("PostgreSQL", "fresh key each time"),
    "direct_fixed": ("PostgreSQL", "one key"),
    "nocache": ("pgsidecar, no cache", "fresh key each time"),
    "miss": ("pgsidecar + cache", "fresh key each time (miss)"),
    "hit": ("pgsidecar + cache", "one key (hit)"),
}


def report(s, machine: dict[str, str], mix, latency, cache_skip: str | None,
           started: datetime.datetime) -> str:
    LABELS["cache"] = s.cache_label
    parts = [f"# pgsidecar cache benchmark, {started:%Y-%m-%d %H:%M}",
             f"Command: `{s.command}`",
             "Machine:\n\n" + "\n".join(f"- {k}: {v}" for k, v in machine.items()),
             method(s, cache_skip),
             "## Target verdicts (issue #11)\n\n" + "\n".join(verdicts(mix, latency, cache_skip)),
             "## Dashboard mix\n\n" + "\n\n".join(mix_table(s, w, runs) for w, runs in mix.items())]
    if latency:
        parts.append("## One client, one statement\n\n"
                     + "\n\n".join(latency_table(n, s.statements[n], runs) for n, runs in latency.items()))
    failures = [f"**{w}% writes → {LABELS[t]}**: {r.result.note}\n\n```\n{r.result.detail}\n```"
                for w, runs in mix.items() for t, r in runs.items() if r.result.status == "failed"]
    failures += [f"**{n} {v}**: {r.result.note}\n\n```\n{r.result.detail}\n```"
                 for n, runs in latency.items() for v, r in runs.items() if r.result.status == "failed"]
    if failures:
        parts.append("## Failures\n\n" + "\n\n".join(failures))
    return "\n\n".join(parts) + "\n"


def method(s, cache_skip: str | None) -> str:
    cache = ("skipped: " + cache_skip) if cache_skip else f"config appended:\n\n```toml\n{s.cache_toml.strip()}\n```"
    return (
        "Settings and method:\n\n"
        f"- Workload: bench/workload/ on database `{s.db}`, {s.rows:,} conversations and "
        f"200 templates; `pgbench -M {s.mode} -c {s.clients} -j {min(s.clients, s.jobs)} "
        f"-T {s.duration}` after {s.warmup} s unmeasured warm-up, each pooler fresh "
        f"(transaction mode, pool size {s.pool_size}, trust, loopback).\n"
        f"- Read mix (percent of reads): {', '.join(f'{k} {v}' for k, v in s.reads.items())}; "
        f"writes split {', '.join(f'{k} {v}' for k, v in s.write_split.items())}.\n"
        "- TPS: pgbench's, without connection time. Latencies: pgbench's per-transaction "
        "log, successful transactions. × direct: TPS over direct PostgreSQL's in the same "
        "run; p95 ÷ direct: below 1 is faster.\n"
        "- CPU µs/tx: the proxy's utime + stime from /proc/PID/stat over the run, per "
        "transaction (PostgreSQL's own CPU is not counted).\n"
        "- Cache hits: pgsidecar_cache_hits_total / (hits + misses) from /metrics over the run.\n"
        f"- Cache variant: {cache}")


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}×" if a and b else "–"


def num(v: float | None, fmt: str = ",.0f") -> str:
    return "–" if v is None else format(v, fmt)


def cpu_us(run) -> float | None:
    r = run.result
    return r.cpu_per_1k * 1000 if r.status == "ok" and r.cpu_per_1k is not None else None


def mix_table(s, writes: int, runs) -> str:
    direct = runs.get("direct")
    d_ok = direct is not None and direct.result.status == "ok"
    rows = []
    for target, run in runs.items():
        r, ok = run.result, run.result.status == "ok"
        rows.append([LABELS[target], bench.fmt_tps(r),
                     ratio(r.tps, direct.result.tps) if ok and d_ok else "–",
                     num(r.p50_us if ok else None), num(run.p95_us if ok else None),
                     ratio(run.p95_us, direct.p95_us).rstrip("×") if ok and d_ok else "–",
                     num(r.p99_us if ok else None), num(cpu_us(run), ".1f"),
                     num(run.hit_ratio, ".1%")])
    header = ["target", "TPS", "× direct", "p50 µs", "p95 µs", "p95 ÷ direct", "p99 µs",
              "proxy CPU µs/tx", "cache hits"]
    return f"### {writes}% writes\n\n" + bench.md_table(header, rows)


def latency_table(name: str, title: str, runs) -> str:
    rows = []
    for variant, run in runs.items():
        target, keys = VARIANT_TEXT[variant]
        ok = run.result.status == "ok"
        rows.append([target, keys, num(run.mean_us if ok else None, ",.1f"),
                     num(run.result.p50_us if ok else None), num(run.p95_us if ok else None),
                     num(cpu_us(run), ".1f"), num(run.hit_ratio, ".1%")])
    header = ["through", "keys", "mean µs", "p50 µs", "p95 µs", "proxy CPU µs/tx", "cache hits"]
    text = f"### {title} (`bench/workload/{name}_*.sql`)\n\n"
    text += bench.md_table(header, rows)
    for origin, label in (("origin", "direct PostgreSQL"), ("nocache", "pgsidecar without cache")):
        text += f"\n\nBreak-even against {label}: {break_even_text(runs, origin)}"
    return text


def mean(runs, variant: str, stat: str = "mean") -> float | None:
    run = runs.get(variant)
    if not run or run.result.status != "ok":
        return None
    return run.mean_us if stat == "mean" else run.result.p50_us


def break_even(runs, origin: str = "origin", stat: str = "mean") -> float | None:
    """The hit ratio above which the cache pays: r > (miss − origin) / (miss − hit),
    clamped to [0, 1]; None when not measured or when a hit is no faster than a miss."""
    hit, miss, base = (mean(runs, v, stat) for v in ("hit", "miss", origin))
    if hit is None or miss is None or base is None or miss <= hit:
        return None
    return min(1.0, max(0.0, (miss - base) / (miss - hit)))


def break_even_text(runs, origin: str) -> str:
    """With means (the expected latency the formula is about) and, as a check against
    a noisy machine, with medians."""
    out = []
    for stat in ("mean", "p50"):
        hit, miss, base = (mean(runs, v, stat) for v in ("hit", "miss", origin))
        if hit is None or miss is None or base is None:
            return "not measured"
        if miss <= hit:
            out.append(f"{stat}s: never pays (hit {hit:.1f} µs ≥ miss {miss:.1f} µs)")
            continue
        r = (miss - base) / (miss - hit)
        out.append(f"{stat}s: r > ({miss:.1f} − {base:.1f}) / ({miss:.1f} − {hit:.1f}) = "
                   f"**{r:.1%}**" + (" (a miss is no slower: every ratio pays)" if r <= 0 else ""))
    return "; ".join(out)


def verdicts(mix, latency, cache_skip: str | None) -> list[str]:
    out = []
    for writes, runs in mix.items():
        d, c = runs.get("direct"), runs.get("cache")
        if cache_skip or not (d and c) or "failed" in (d.result.status, c.result.status):
            out.append(f"- Mix, {writes}% writes, cache ≥ 3× direct TPS and p95 ≥ 3× lower: "
                       "not measured" + (" (cache variant skipped)" if cache_skip else ""))
            continue
        tps, p95 = c.result.tps / d.result.tps, d.p95_us / c.p95_us
        met = "MET" if tps >= 3 and p95 >= 3 else "MISSED"
        out.append(f"- Mix, {writes}% writes, cache ≥ 3× direct TPS and p95 ≥ 3× lower: "
                   f"{tps:.2f}× TPS, p95 {p95:.2f}× lower: **{met}**")
    for writes, runs in mix.items():
        b, x = runs.get("pgbouncer"), runs.get("pgsidecar")
        xb, xc = (cpu_us(b) if b else None), (cpu_us(x) if x else None)
        if xb is None or xc is None:
            out.append(f"- Mix, {writes}% writes, pgsidecar (no cache) CPU/tx ≤ PgBouncer's: not measured")
        else:
            out.append(f"- Mix, {writes}% writes, pgsidecar (no cache) CPU/tx ≤ PgBouncer's: "
                       f"{xc:.1f} vs {xb:.1f} µs: **{'MET' if xc <= xb else 'MISSED'}**")
    for name, runs in latency.items():
        out += latency_verdicts(name, runs)
    return out


def latency_verdicts(name: str, runs) -> list[str]:
    hit, direct = runs.get("hit"), mean(runs, "direct_fixed")
    if not hit or hit.result.status != "ok":
        return [f"- {name}: hit CPU, hit latency and break-even: not measured"]
    really = hit.hit_ratio is not None and hit.hit_ratio >= 0.99
    note = "" if really else f" (but only {num(hit.hit_ratio, '.1%')} of the 'hit' run hit)"
    cpu = cpu_us(hit)
    lines = [f"- {name}: a hit costs ≤ 15 µs proxy CPU: {num(cpu, '.1f')} µs: "
             f"**{'MET' if cpu is not None and cpu <= 15 and really else 'MISSED'}**{note}"]
    if direct is not None:
        met = hit.mean_us < direct and really
        lines.append(f"- {name}: one-client hit latency below direct: {hit.mean_us:.1f} vs "
                     f"{direct:.1f} µs: **{'MET' if met else 'MISSED'}**{note}")
    r = break_even(runs)
    lines.append(f"- {name}: break-even hit ratio under 50%: "
                 + ("not computable" if r is None else f"{r:.1%}: **{'MET' if r < 0.5 else 'MISSED'}**"))
    return lines
