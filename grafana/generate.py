#!/usr/bin/env python3
"""Writes grafana/dashboards/*.json: the pgsidecar dashboards (Grafana 10+).

The JSON files are what Grafana provisions and what the tests check; this script is
how they are kept consistent (one place for the datasource variable, ids and layout).
Edit here, run `python3 grafana/generate.py`, commit both.

Every expression filters on `instance=~"$instance"`; the tests evaluate each one
against a real Prometheus with `$instance` as `.*`, `$fingerprint` as `.*`,
`$__rate_interval` as `1m` and `$__range` as `1h`.
"""

import json
import pathlib
import sys

OUT = pathlib.Path(__file__).resolve().parent / "dashboards"
DS = {"type": "prometheus", "uid": "${datasource}"}
I = 'instance=~"$instance"'
RI = "$__rate_interval"

# Panels whose metrics do not exist yet: they fill in when the feature lands. The
# tests read this marker (and the list of pending metric names in their own code).
PENDING_CACHE = "Pending: fills in when the result cache (issue #11) lands."


class Layout:
    """Hands out ids and grid positions: panels flow left to right, 24 columns wide."""

    def __init__(self):
        self.id = 0
        self.x = 0
        self.y = 0
        self.row_h = 0

    def next_id(self):
        self.id += 1
        return self.id

    def place(self, w, h):
        if self.x + w > 24:
            self.x, self.y = 0, self.y + self.row_h
            self.row_h = 0
        pos = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def row(self, title):
        self.x, self.y = 0, self.y + self.row_h
        self.row_h = 0
        pos = {"x": 0, "y": self.y, "w": 24, "h": 1}
        self.y += 1
        return {
            "type": "row",
            "id": self.next_id(),
            "title": title,
            "collapsed": False,
            "gridPos": pos,
            "panels": [],
        }


def target(expr, legend="__auto", ref="A", **extra):
    t = {"datasource": DS, "refId": ref, "expr": expr, "legendFormat": legend}
    t.update(extra)
    return t


def panel(layout, kind, title, targets, unit="short", w=8, h=8, desc="", **extra):
    p = {
        "type": kind,
        "id": layout.next_id(),
        "title": title,
        "description": desc,
        "datasource": DS,
        "gridPos": layout.place(w, h),
        "targets": [target(*t) if isinstance(t, tuple) else t for t in targets],
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
    }
    for ref, t in zip("ABCDEFGH", p["targets"]):
        t["refId"] = ref
    p.update(extra)
    return p


def ts(layout, title, targets, unit="short", **kw):
    return panel(layout, "timeseries", title, targets, unit, **kw)


def stat(layout, title, targets, unit="short", **kw):
    return panel(layout, "stat", title, targets, unit, w=kw.pop("w", 4), h=kw.pop("h", 4), **kw)


def quantiles(metric, by, sel=I):
    return [
        (
            f"histogram_quantile({q}, sum by ({by}, le) (rate({metric}_bucket{{{sel}}}[{RI}])))",
            f"p{int(q * 100)} {{{{{by}}}}}",
        )
        for q in (0.5, 0.95, 0.99)
    ]


def dashboard(uid, title, panels, extra_vars=(), desc=""):
    variables = [
        {
            "type": "datasource",
            "name": "datasource",
            "label": "Prometheus",
            "query": "prometheus",
            "current": {},
            "hide": 0,
            "refresh": 1,
            "options": [],
        },
        {
            "type": "query",
            "name": "instance",
            "label": "Sidecar",
            "datasource": DS,
            "query": {"query": "label_values(pgsidecar_build_info, instance)", "refId": "instance"},
            "definition": "label_values(pgsidecar_build_info, instance)",
            "includeAll": True,
            "multi": True,
            "allValue": ".*",
            "current": {"selected": True, "text": "All", "value": "$__all"},
            "refresh": 2,
            "sort": 1,
            "options": [],
        },
        *extra_vars,
    ]
    return {
        "uid": uid,
        "title": title,
        "description": desc,
        "tags": ["pgsidecar", "postgresql"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "timezone": "",
        "templating": {"list": variables},
        "annotations": {"list": []},
        "links": [
            {"type": "dashboards", "tags": ["pgsidecar"], "asDropdown": True, "title": "pgsidecar"}
        ],
        "panels": panels,
    }


def overview():
    L = Layout()
    q = f"pgsidecar_queries_total{{{I}}}"
    ps = [L.row("Traffic")]
    ps.append(ts(L, "Statements per second by command",
                 [(f"sum by (command) (rate({q}[{RI}]))", "{{command}}")], "ops"))
    ps.append(ts(L, "Errors per second by command",
                 [(f'sum by (command) (rate(pgsidecar_queries_total{{{I}, outcome="error"}}[{RI}]))',
                   "{{command}}")], "ops"))
    ps.append(ts(L, "Error ratio",
                 [(f'sum(rate(pgsidecar_queries_total{{{I}, outcome="error"}}[{RI}])) / sum(rate({q}[{RI}]))',
                   "errors / statements")], "percentunit",
                 desc="Alert PgsidecarErrorRatioHigh fires above 2% for 5 minutes."))
    ps.append(ts(L, "Latency p50 / p95 / p99 by command",
                 quantiles("pgsidecar_query_duration_seconds", "command"), "s", w=16,
                 desc="From the pgsidecar_query_duration_seconds histogram (fixed buckets, aggregates over a fleet)."))
    ps.append(ts(L, "Rows per second by command",
                 [(f"sum by (command) (rate(pgsidecar_query_rows_total{{{I}}}[{RI}]))", "{{command}}")], "rowsps"))
    ps.append(L.row("Pools"))
    ps.append(ts(L, "Pool saturation (active / pool_size)",
                 [(f'sum without (state) (pgsidecar_pool_connections{{{I}, state="active"}}) / pgsidecar_pool_size{{{I}}}',
                   "{{database}}/{{user}} {{instance}}")], "percentunit",
                 desc="Alert PgsidecarPoolSaturated fires above 90% for 5 minutes."))
    ps.append(ts(L, "Clients waiting for a server",
                 [(f'sum by (database, user) (pgsidecar_pool_clients{{{I}, state="waiting"}})',
                   "{{database}}/{{user}}")]))
    ps.append(ts(L, "Checkout timeouts",
                 [(f"sum by (database, user) (increase(pgsidecar_pool_checkout_timeouts_total{{{I}}}[{RI}]))",
                   "{{database}}/{{user}}")],
                 desc="Clients that gave up after checkout_timeout and got SQLSTATE 53300."))
    ps.append(ts(L, "Pool wait p50 / p95 / p99",
                 quantiles("pgsidecar_pool_wait_seconds", "database, user"), "s"))
    ps.append(ts(L, "Server connections by state",
                 [(f"sum by (state) (pgsidecar_pool_connections{{{I}}})", "{{state}}")]))
    ps.append(ts(L, "Clients pinned per second, by reason",
                 [(f"sum by (reason) (rate(pgsidecar_pinned_clients_total{{{I}}}[{RI}]))", "{{reason}}")], "ops",
                 desc="Transaction mode: clients that kept their server for session state."))
    ps.append(ts(L, "Client connections against max_client_conn",
                 [(f"sum by (instance) (pgsidecar_client_connections{{{I}}})", "open {{instance}}"),
                  (f"max by (instance) (pgsidecar_client_connections_max{{{I}}})", "max_client_conn {{instance}}")]))
    ps.append(ts(L, "Server connect errors per second",
                 [(f"sum by (database, user) (rate(pgsidecar_server_connect_errors_total{{{I}}}[{RI}]))",
                   "{{database}}/{{user}}")], "ops"))
    ps.append(ts(L, "Client connections accepted per second",
                 [(f"sum by (instance) (rate(pgsidecar_client_connections_total{{{I}}}[{RI}]))", "{{instance}}")], "ops"))
    ps.append(L.row("Process"))
    ps.append(stat(L, "Version", [(f"pgsidecar_build_info{{{I}}}", "{{version}}")],
                   options={"textMode": "name", "reduceOptions": {"calcs": ["lastNotNull"]}}))
    ps.append(stat(L, "Uptime", [(f"time() - process_start_time_seconds{{job=~\"pgsidecar.*\", {I}}}", "{{instance}}")], "s"))
    ps.append(ts(L, "Resident memory", [(f"process_resident_memory_bytes{{job=~\"pgsidecar.*\", {I}}}", "{{instance}}")],
                 "bytes", w=8))
    ps.append(ts(L, "CPU", [(f"rate(process_cpu_seconds_total{{job=~\"pgsidecar.*\", {I}}}[{RI}])", "{{instance}}")],
                 "percentunit", w=8))
    ps += cache_row(L) + advisor_row(L)
    return dashboard("pgsidecar-overview", "pgsidecar / Overview", ps,
                     desc="Traffic, latency, pools and clients of pgsidecar sidecars.")


def cache_row(L):
    c = lambda m: f"pgsidecar_cache_{m}{{{I}}}"
    ps = [L.row("Cache")]
    ps.append(ts(L, "Cache hit ratio",
                 [(f"sum(rate({c('hits_total')}[{RI}])) / (sum(rate({c('hits_total')}[{RI}])) + sum(rate({c('misses_total')}[{RI}])))",
                   "hit ratio")], "percentunit", desc="Hits over lookups that were not refused (pgsidecar_cache_hits_total, _misses_total)."))
    ps.append(ts(L, "Cache misses and bypasses by reason",
                 [(f"sum by (reason) (rate({c('misses_total')}[{RI}]))", "miss: {{reason}}"),
                  (f"sum by (reason) (rate({c('bypass_total')}[{RI}]))", "bypass: {{reason}}")], "ops", desc="Why statements went to the server: refused or not cached yet (misses), or skipped (bypass)."))
    ps.append(ts(L, "Cache evictions and invalidations",
                 [(f"sum by (cause) (rate({c('evictions_total')}[{RI}]))", "evicted: {{cause}}"),
                  (f"sum by (source) (rate({c('invalidations_total')}[{RI}]))", "invalidated: {{source}}")], "ops",
                 desc="Entries leaving the cache by cause, and invalidations applied by source."))
    ps.append(ts(L, "Cache size", [(f"sum by (instance) ({c('bytes')})", "bytes {{instance}}")], "bytes", desc="Bytes held by cache entries, per sidecar."))
    ps.append(ts(L, "Cache entries", [(f"sum by (instance) ({c('entries')})", "entries {{instance}}")], desc="Entries in the cache, per sidecar."))
    return ps


def advisor_row(L):
    ps = [L.row("Advisor")]
    ps.append(ts(L, "N+1 patterns detected per second",
                 [(f"sum by (instance) (rate(pgsidecar_n_plus_one_total{{{I}}}[{RI}]))", "{{instance}}")], "ops",
                 w=24, desc="One statement run n_plus_one_threshold times or more with different parameters right after another (GET /api/insights lists them). Batch the repeated statement with = ANY($1) or a join."))
    return ps


def queries():
    L = Layout()
    d = "pgsidecar_query_duration_seconds"
    own = f'{I}, fingerprint!="other"'
    top = [
        target(f"topk(20, sum by (fingerprint) (increase({d}_sum{{{own}}}[$__range])))", "", instant=True, format="table"),
        target(f"sum by (fingerprint) (increase({d}_count{{{own}}}[$__range]))", "", instant=True, format="table"),
        target(f"histogram_quantile(0.95, sum by (fingerprint, le) (rate({d}_bucket{{{own}}}[$__range])))", "",
               instant=True, format="table"),
        target(f"max by (fingerprint, query) (pgsidecar_query_info{{{I}}})", "", instant=True, format="table"),
    ]
    ps = [L.row("Top fingerprints")]
    ps.append(panel(L, "table", "Top fingerprints by total time (time range)", top, "s", w=24, h=10,
                    desc="Total time, calls and p95 per fingerprint with its normalized text (pgsidecar_query_info). "
                         "Only the metrics_top_queries heaviest shapes have their own series; the rest is fingerprint=\"other\".",
                    transformations=[
                        {"id": "merge", "options": {}},
                        {"id": "filterByValue", "options": {"type": "exclude", "match": "any", "filters": [
                            {"fieldName": "Value #A", "config": {"id": "isNull", "options": {}}}]}},
                        {"id": "organize", "options": {
                            "excludeByName": {"Time": True, "Value #D": True},
                            "renameByName": {"Value #A": "total time", "Value #B": "calls", "Value #C": "p95",
                                             "fingerprint": "fingerprint", "query": "query"}}},
                        {"id": "sortBy", "options": {"sort": [{"field": "total time", "desc": True}]}},
                    ]))
    ps.append(ts(L, "Top 10 fingerprints by time spent per second",
                 [(f"topk(10, sum by (fingerprint) (rate({d}_sum{{{own}}}[{RI}])))", "{{fingerprint}}")], "s"))
    ps.append(ts(L, "Top 10 fingerprints by calls per second",
                 [(f"topk(10, sum by (fingerprint) (rate({d}_count{{{own}}}[{RI}])))", "{{fingerprint}}")], "ops"))
    ps.append(ts(L, "Top 10 fingerprints by p95",
                 [(f"topk(10, histogram_quantile(0.95, sum by (fingerprint, le) (rate({d}_bucket{{{own}}}[{RI}]))))",
                   "{{fingerprint}}")], "s"))
    ps.append(L.row("One fingerprint"))
    ps.append(panel(L, "heatmap", "Latency heatmap ($fingerprint)",
                    [target(f'sum by (le) (increase({d}_bucket{{{I}, fingerprint=~"$fingerprint"}}[{RI}]))',
                            "{{le}}", format="heatmap")], "s", w=16, h=10,
                    options={"calculate": False, "yAxis": {"unit": "s"}, "cellGap": 1,
                             "color": {"mode": "scheme", "scheme": "Oranges"}}))
    ps.append(ts(L, "p50 / p95 / p99 ($fingerprint)",
                 quantiles(d, "fingerprint", f'{I}, fingerprint=~"$fingerprint"'), "s", h=10))
    ps.append(L.row("Errors and volume"))
    ps.append(ts(L, "Errors per second by SQLSTATE class",
                 [(f"sum by (class) (rate(pgsidecar_query_errors_total{{{I}}}[{RI}]))", "{{class}}")], "ops",
                 desc="Class = first two SQLSTATE characters: 23 integrity, 40 rollback/serialization, 42 syntax/access, 53 resources, 57 operator intervention."))
    ps.append(ts(L, "Fingerprints tracked",
                 [(f"sum by (instance) (pgsidecar_fingerprints_tracked{{{I}}})", "{{instance}}")]))
    ps.append(ts(L, "Fingerprints evicted per second",
                 [(f"sum by (instance) (rate(pgsidecar_fingerprints_evicted_total{{{I}}}[{RI}]))", "{{instance}}")], "ops",
                 desc="Non-zero means max_fingerprints is too small for the workload."))
    fingerprint_var = {
        "type": "query",
        "name": "fingerprint",
        "label": "Fingerprint",
        "datasource": DS,
        "query": {"query": f'label_values({d}_count{{fingerprint!="other"}}, fingerprint)', "refId": "fingerprint"},
        "definition": f'label_values({d}_count{{fingerprint!="other"}}, fingerprint)',
        "includeAll": True,
        "multi": False,
        "allValue": ".*",
        "current": {"selected": True, "text": "All", "value": "$__all"},
        "refresh": 2,
        "sort": 1,
        "options": [],
    }
    return dashboard("pgsidecar-queries", "pgsidecar / Queries", ps, [fingerprint_var],
                     desc="Per-fingerprint time, calls, latency and errors.")


def slow():
    L = Layout()
    inc = lambda m, by, legend: (f"sum by ({by}) (increase({m}{{{I}}}[{RI}]))", legend)
    ps = [L.row("Slow statements and alerts")]
    ps.append(ts(L, "Slow statements by level",
                 [inc("pgsidecar_slow_queries_total", "level", "{{level}}")],
                 desc="Over slow_warning_ms (warning) and slow_critical_ms (critical)."))
    ps.append(ts(L, "Slow-query alerts",
                 [inc("pgsidecar_alerts_total", "instance", "fired {{instance}}"),
                  inc("pgsidecar_alerts_suppressed_total", "instance", "suppressed (cooldown) {{instance}}")]))
    ps.append(ts(L, "Slow samples dropped (queue full)",
                 [inc("pgsidecar_slow_samples_dropped_total", "instance", "{{instance}}")]))
    ps.append(L.row("Plans"))
    ps.append(ts(L, "Plans captured and failed captures",
                 [inc("pgsidecar_plans_captured_total", "instance", "captured {{instance}}"),
                  inc("pgsidecar_plan_capture_failures_total", "instance", "failed {{instance}}")]))
    ps.append(ts(L, "Plan changes",
                 [inc("pgsidecar_plan_changes_total", "instance", "{{instance}}")],
                 desc="A captured plan whose shape differs from the fingerprint's previous plan."))
    ps.append(ts(L, "Alert webhooks given up",
                 [inc("pgsidecar_alert_webhook_failures_total", "instance", "{{instance}}")]))
    ps.append(L.row("Jobs and store"))
    ps.append(ts(L, "Background jobs by kind and outcome",
                 [inc("pgsidecar_jobs_total", "kind, outcome", "{{kind}} {{outcome}}")], w=12,
                 desc="EXPLAIN captures, webhooks, statistics flushes and retention run from the store's job queue. "
                      "Alert PgsidecarJobsFailing fires on failures."))
    ps.append(ts(L, "Store up (1) / enabled (1)",
                 [(f"min by (instance) (pgsidecar_store_up{{{I}}})", "up {{instance}}"),
                  (f"max by (instance) (pgsidecar_store_enabled{{{I}}})", "enabled {{instance}}")], w=12,
                 desc="up 0 while enabled 1 means the store is down (alert PgsidecarStoreDown); "
                      "up 0 and enabled 0 is memory-only mode."))
    return dashboard("pgsidecar-slow", "pgsidecar / Slow queries", ps,
                     desc="Slow statements, alerts, EXPLAIN plans, background jobs and the store.")


def main():
    # An optional directory argument: where to write instead (the tests compare).
    out = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    out.mkdir(parents=True, exist_ok=True)
    for name, build in [("overview", overview), ("queries", queries), ("slow-queries", slow)]:
        text = json.dumps(build(), indent=2, ensure_ascii=False) + "\n"
        (out / f"pgsidecar-{name}.json").write_text(text)


if __name__ == "__main__":
    main()
