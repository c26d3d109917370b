"""The web console in a real browser (Debian's chromium, driven by Selenium through
chromedriver), checked against the admin API it reads.

usage: console_check.py ADMIN_URL TOKEN TABLE OUTDIR
       console_check.py --store-down ADMIN_URL OUTDIR

ADMIN_URL is the proxy's admin server, TOKEN its admin_token, TABLE the table the
workload queried (its slow SELECT has captured plans, one before and one after an
index was added), OUTDIR where screenshots and the scroll measurement go. The proxy
holds at least 10,000 fingerprints. Prints one line per check; exits non-zero on the
first failure. With --store-down (a proxy whose store is unreachable, no token) it
checks only that the page says so and what it shows instead.
"""

import json
import os
import sys
import time
import urllib.parse
import urllib.request
from datetime import datetime, timezone

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

STORE_DOWN = sys.argv[1] == "--store-down"
SLOW_FP = []
if STORE_DOWN:
    BASE, OUT = sys.argv[2:4]
    TOKEN, TABLE = "", ""
else:
    BASE, TOKEN, TABLE, OUT = sys.argv[1:5]
os.makedirs(OUT, exist_ok=True)


def api(path, **params):
    query = urllib.parse.urlencode({k: v for k, v in params.items() if v not in (None, "")})
    url = f"{BASE}/api/{path}" + (f"?{query}" if query else "")
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def check(condition, what):
    if not condition:
        raise AssertionError(what)
    print(f"ok: {what}", flush=True)


def browser():
    options = webdriver.ChromeOptions()
    for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1400,1000", "--disable-gpu"]:
        options.add_argument(arg)
    options.binary_location = "/usr/bin/chromium"
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


d = browser()
wait = WebDriverWait(d, 30)


def find(css):
    return wait.until(lambda drv: drv.find_element(By.CSS_SELECTOR, css))


def text_of(css):
    return find(css).text


def until(what, predicate, timeout=30):
    try:
        WebDriverWait(d, timeout).until(lambda drv: predicate())
    except TimeoutException:
        raise AssertionError(f"timed out waiting for {what}")


def shot(name):
    d.save_screenshot(os.path.join(OUT, f"{name}.png"))


def goto(hash_):
    d.get(f"{BASE}/ui/#/{hash_}")


def loaded():
    """No loading indicator left in the page."""
    return not d.find_elements(By.CSS_SELECTOR, "main .loading")


def login():
    goto("overview")
    dialog = find("#login")
    until("the login dialog", lambda: dialog.get_attribute("open") is not None)
    check(dialog.get_attribute("open") is not None, "without a token the console asks for one")
    find("#token").send_keys("not-the-token")
    find("#login-submit").click()
    until("the rejection", lambda: "not accepted" in text_of("#login-error"))
    check(True, "a wrong token is refused with a message")
    box = find("#token")
    box.clear()
    box.send_keys(TOKEN)
    find("#login-submit").click()
    until("the dialog to close", lambda: dialog.get_attribute("open") is None)
    stored = d.execute_script("return sessionStorage.getItem('pgsidecar.admin_token')")
    check(stored == TOKEN, "the token is kept in the tab's sessionStorage")
    until("the overview", lambda: d.find_elements(By.CSS_SELECTOR, "#chart-tps"))


def rows_in_view():
    return d.execute_script(
        "return [...document.querySelectorAll('.vt-layer .vt-row:not([hidden])')]"
        ".map(r => ({idx: r._idx, fp: r._data && r._data.fingerprint, text: r.textContent}))")


def first_row():
    until("the first row", lambda: rows_in_view() and rows_in_view()[0]["fp"])
    return rows_in_view()[0]


def shown_listing(offset=0, limit=1, **params):
    """The API's answer for the frozen listing the page shows (statements keep running,
    so a fresh listing may already be in another order)."""
    until("a listing on screen", lambda: find(".vt").get_attribute("data-snapshot"))
    snapshot = find(".vt").get_attribute("data-snapshot")
    return api("queries/table", snapshot=snapshot, offset=offset, limit=limit, **params)


def queries_page():
    goto("queries")
    until("the query count", lambda: "fingerprints" in text_of("#q-count"))
    listing = shown_listing()
    total = listing["total"]
    check(total == api("queries/table", limit=1)["total"] and f"{total:,} fingerprints" in text_of("#q-count"),
          f"the queries page counts {total} fingerprints as the API does")
    check(first_row()["fp"] == listing["rows"][0][0], "the default order (total time) matches the API")
    shot("queries")
    # Sort by calls, then ascending.
    header = find(".vt-head [data-key='calls']")
    header.click()
    until("sort=calls in the URL", lambda: "sort=calls" in d.current_url)
    want = api("queries/table", sort="calls", limit=1)["rows"][0][0]
    until("the calls order", lambda: first_row()["fp"] == want)
    check(first_row()["fp"] == shown_listing(sort="calls")["rows"][0][0], "sorting by calls matches the API")
    find(".vt-head [data-key='calls']").click()
    until("ascending", lambda: "order=asc" in d.current_url)
    want = api("queries/table", sort="calls", order="asc", limit=1)["rows"][0][0]
    until("the ascending order", lambda: first_row()["fp"] == want)
    check(True, "sorting ascending matches the API")
    # Filter by table and command, then search.
    Select(find("#q-table")).select_by_value(TABLE)
    until("table filter in the URL", lambda: f"table={TABLE}" in d.current_url)
    want = api("queries/table", sort="calls", order="asc", table=TABLE)
    until("the filtered count", lambda: f"{want['total']:,} fingerprints" in text_of("#q-count"))
    check(all(TABLE in r["text"] for r in rows_in_view()),
          f"filtering by table {TABLE} shows only its {want['total']} statements")
    Select(find("#q-command")).select_by_value("UPDATE")
    want = api("queries/table", table=TABLE, command="UPDATE")["total"]
    until("the command filter", lambda: f"{want:,} fingerprints" in text_of("#q-count"))
    check(want >= 1 and all("UPDATE" in r["text"] for r in rows_in_view()), "filtering by command")
    find("button[data-window='1h']")  # still there
    d.find_element(By.XPATH, "//button[text()='Clear filters']").click()
    until("cleared", lambda: "table=" not in d.current_url)
    search = find("#q-search")
    search.send_keys("seed_c4242")
    until("q in the URL", lambda: "q=seed_c4242" in d.current_url)
    want = api("queries/table", q="seed_c4242")["total"]
    until("the search count", lambda: f"{want:,} fingerprints" in text_of("#q-count"))
    check(want >= 1 and all("seed_c4242" in r["text"] for r in rows_in_view()),
          "searching the normalized text")
    # The window switch.
    find("button[data-window='5m']").click()
    until("window=5m", lambda: "window=5m" in d.current_url)
    check(find("button[data-window='5m']").get_attribute("aria-pressed") == "true", "the window switch")
    # State in the URL: a fresh load of the same URL shows the same view.
    d.refresh()
    until("the restored search", lambda: find("#q-search").get_attribute("value") == "seed_c4242")
    check(True, "the page's state survives a reload (it is in the URL)")


def keyboard_opens_detail():
    goto("queries?sort=total_ms")
    until("rows", lambda: first_row())
    third = shown_listing(sort="total_ms", limit=3)["rows"][2][0]
    grid = find(".vt")
    d.execute_script("arguments[0].focus()", grid)
    grid.send_keys(Keys.HOME, Keys.ARROW_DOWN, Keys.ARROW_DOWN, Keys.ARROW_UP, Keys.ARROW_DOWN)
    selected = d.execute_script("return document.querySelector('.vt-row.sel')._data.fingerprint")
    check(selected == third, "arrow keys move the selection")
    grid.send_keys(Keys.ENTER)
    until("the detail page", lambda: f"#/query/{third}" in d.current_url)
    check(True, "Enter opens the selected query")


def detail_with_plan():
    selects = api("queries/table", table=TABLE, command="SELECT", limit=100)["rows"]
    candidates = [(api("plans", fingerprint=r[0], limit=100)["data"], r[0]) for r in selects]
    ours, fp = max(candidates, key=lambda c: len(c[0]))
    SLOW_FP.append(fp)
    check(ours and ours[0]["analyzed"], f"the workload's slow SELECT on {TABLE} has analyzed plans")
    q = api(f"queries/{fp}")
    entry = q["entries"][0]
    goto(f"query/{fp}?database={entry['database']}&user={entry['user']}&window=1h")
    until("the plan tree", lambda: d.find_elements(By.CSS_SELECTOR, "#d-plan .node"))
    check(TABLE in text_of("#d-sql"), "the detail shows the statement")
    kws = d.find_elements(By.CSS_SELECTOR, "#d-sql .kw")
    check(any(k.text.upper() == "SELECT" for k in kws), "the SQL is highlighted")
    calls = int(find("#d-windows tr[data-window='1h'] td[data-col='calls']").text.replace(",", ""))
    check(calls == entry["windows"]["1h"]["calls"], f"1h calls {calls} as in the API")
    hist = api(f"queries/{fp}/histogram", window="1h", database=entry["database"], user=entry["user"])
    until("the histogram", lambda: d.find_elements(By.CSS_SELECTOR, "#d-histogram"))
    check(int(find("#d-histogram").get_attribute("data-total")) == hist["total"] == calls,
          "the histogram holds every call of the window")
    shown = d.find_elements(By.CSS_SELECTOR, ".plans-list button")
    check(len(shown) == len(ours), f"all {len(ours)} captured plans are listed")
    root = ours[0]["plan"][0]["Plan"]["Node Type"]
    check(root in text_of("#d-plan"), f"the plan tree starts with {root}")
    check(len(d.find_elements(By.CSS_SELECTOR, "#d-plan .node.hot")) == 1,
          "exactly one node is marked most expensive")
    check("est" in text_of("#d-plan") and "actual" in text_of("#d-plan"),
          "rows estimated and actual are shown")
    hashes = [p["plan_hash"] for p in ours]
    changes = sum(1 for a, b in zip(hashes, hashes[1:]) if a != b)
    marked = len(d.find_elements(By.CSS_SELECTOR, ".plans-list .badge.change"))
    check(changes >= 1 and marked == changes, f"{changes} plan change(s) marked")
    shot("query-detail")
    # Open the older plan: the URL keeps which.
    shown[-1].click()
    until("plan in the URL", lambda: f"plan={ours[-1]['id']}" in d.current_url)
    until("the older plan", lambda: ours[-1]["plan"][0]["Plan"]["Node Type"] in text_of("#d-plan"))
    check(True, "another plan opens from the list")


def scroll_measure():
    goto("queries?window=1h")
    until("rows", lambda: first_row())
    total = api("queries/table", limit=1)["total"]
    check(total >= 10000, f"{total} fingerprints seeded")
    figures = {"fingerprints": total}
    for name, rows_per_frame in [("wheel", 4), ("fling", 25)]:
        result = scroll_pass(rows_per_frame)
        figures[name] = summary(result)
        check(result["rows"] < 80, f"{name}: only {result['rows']} row elements exist for {total} rows")
    print("SCROLL " + json.dumps(figures), flush=True)
    with open(os.path.join(OUT, "scroll.json"), "w") as f:
        json.dump(figures, f, indent=1)
    # The rows in view after scrolling are those the API has at that offset.
    until("the slice under the scroll", lambda: all(r["fp"] for r in rows_in_view()))
    row = rows_in_view()[0]
    want = shown_listing(offset=row["idx"], window="1h")["rows"][0][0]
    check(row["fp"] == want, f"row {row['idx']} after scrolling is the API's row at that offset")


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else 0


def summary(result):
    """Per-frame rendering cost (Performance API measures) and frame intervals."""
    renders, frames = result["renders"], result["frames"]
    return {
        "frames": len(frames),
        "render_ms_p50": round(pct(renders, 0.5), 3),
        "render_ms_p95": round(pct(renders, 0.95), 3),
        "render_ms_max": round(max(renders), 3),
        "renders_over_16ms": sum(1 for r in renders if r > 16),
        "frame_interval_ms_p50": round(pct(frames, 0.5), 2),
        "frame_interval_ms_p95": round(pct(frames, 0.95), 2),
        "row_elements": result["rows"],
        "long_frames": len(result["loaf"]),
        "long_frames_script_ms": round(sum(x["script"] for x in result["loaf"]), 1),
        "long_frames_style_layout_ms": round(sum(x["layout"] for x in result["loaf"]), 1),
        "long_frames_total_ms": round(sum(x["duration"] for x in result["loaf"]), 1),
    }


def scroll_pass(rows_per_frame):
    """Scrolls `rows_per_frame` rows (30 px each) per animation frame for 240 frames."""
    find(".vt-body")
    return d.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const body = document.querySelector('.vt-body');
        performance.clearMeasures('vt-render');
        // Long animation frames (over 50 ms), split into script and style/layout time.
        const loaf = [];
        const observer = PerformanceObserver.supportedEntryTypes.includes('long-animation-frame')
          ? new PerformanceObserver((list) => loaf.push(...list.getEntries().map((e) => ({
              duration: e.duration,
              script: e.scripts.reduce((a, x) => a + x.duration, 0),
              layout: e.startTime + e.duration - (e.styleAndLayoutStart || e.startTime + e.duration),
            })))) : null;
        if (observer) observer.observe({ type: 'long-animation-frame' });
        const frames = [];
        let last = performance.now();
        let n = 0;
        const step = 30 * arguments[0];
        function frame(t) {
          frames.push(t - last);
          last = t;
          body.scrollTop = Math.min(body.scrollHeight, body.scrollTop + step);
          if (++n < 240) requestAnimationFrame(frame);
          else {
            const renders = performance.getEntriesByName('vt-render').map(e => e.duration);
            const rows = document.querySelectorAll('.vt-layer .vt-row').length;
            if (observer) { loaf.push(...observer.takeRecords().map((e) => ({ duration: e.duration,
              script: e.scripts.reduce((a, x) => a + x.duration, 0),
              layout: e.startTime + e.duration - (e.styleAndLayoutStart || e.startTime + e.duration) }))); observer.disconnect(); }
            done({frames: frames.slice(1), renders, rows, scrollTop: body.scrollTop, loaf});
          }
        }
        requestAnimationFrame(frame);
    """, rows_per_frame)


def overview():
    # A point per completed minute: wait for one with calls.
    deadline = time.time() + 150
    while not [p for p in api("minutes")["points"] if p["calls"] > 0]:
        if time.time() > deadline:
            raise AssertionError("no minute of history with calls within 150 s")
        time.sleep(2)
    # A minute may complete between reading the API and the page's own read: retry.
    for _ in range(3):
        hist = api("minutes")
        goto("overview")
        until("the charts", lambda: d.find_elements(By.CSS_SELECTOR, "#chart-tps svg"))
        if api("minutes") == hist:
            break
    last = hist["points"][-1]
    latest = find("#chart-tps").get_attribute("data-latest")
    check(latest == f"{last['tps']:.1f}", f"TPS {latest} is the API's last point")
    dots = d.find_elements(By.CSS_SELECTOR, "#chart-latency svg circle")
    busy = [p for p in hist["points"] if p["calls"] > 0]
    check(len(dots) == 3 * len(busy), "p50/p95/p99 are charted for every minute with calls")
    check("No cache yet" in text_of("#chart-cache"), "the cache hit ratio says there is no cache yet")
    for chart in ["errors", "waiting", "pool"]:
        find(f"#chart-{chart}")
    alerts = api("alerts", limit=100)["data"]
    now = datetime.now(timezone.utc)
    recent = [a for a in alerts
              if (now - datetime.fromisoformat(a["at"].replace("Z", "+00:00"))).total_seconds() < 900]
    until("the alerts", loaded)
    shown = d.find_elements(By.CSS_SELECTOR, "main tr[data-fingerprint]")
    check(len(shown) == len(recent) > 0, f"{len(recent)} active alerts listed")
    shot("overview")


def detail_minutes():
    """Once a minute has completed, the query's page charts its calls and p95 per minute."""
    fp = SLOW_FP[0]
    series = [s for s in api(f"minutes/{fp}")["series"] if s["points"]]
    check(series, f"the API has minutes for {fp}")
    s = series[0]
    goto(f"query/{fp}?database={s['database']}&user={s['user']}")
    until("the minute charts", lambda: d.find_elements(By.CSS_SELECTOR, "#d-minutes svg"))
    charts = d.find_elements(By.CSS_SELECTOR, "#d-minutes svg")
    dots = charts[0].find_elements(By.CSS_SELECTOR, "circle")
    check(len(charts) == 2 and len(dots) == len(s["points"]),
          f"calls and p95 per minute: {len(s['points'])} minutes as in the API")
    titles = " ".join(t.get_attribute("textContent") for t in charts[0].find_elements(By.CSS_SELECTOR, "title"))
    check(f"calls: {s['points'][-1]['calls']}" in titles, "the last minute's calls as in the API")
    shot("query-detail-minutes")


def other_pages():
    goto("slow")
    until("slow events", loaded)
    events = api("slow", limit=100)["data"]
    alerts = api("alerts", limit=100)["data"]
    tables = d.find_elements(By.CSS_SELECTOR, "main table")
    check(len(tables) == 2, "the slow page lists alerts and slow events")
    check(len(tables[1].find_elements(By.CSS_SELECTOR, "tbody tr")) == len(events) > 0,
          f"{len(events)} slow events as in the API")
    check(len(tables[0].find_elements(By.CSS_SELECTOR, "tbody tr")) == len(alerts),
          f"{len(alerts)} alerts as in the API")
    check("memory" in text_of("main"), "the slow page says events come from memory (no store)")
    shot("slow")
    goto("pools")
    until("pools", lambda: d.find_elements(By.CSS_SELECTOR, "#show-pools"))
    pools = api("show/pools")
    heads = [th.text for th in d.find_elements(By.CSS_SELECTOR, "#show-pools th")]
    check(heads == pools["columns"], "the pools table has SHOW POOLS' columns")
    check(len(d.find_elements(By.CSS_SELECTOR, "#show-pools tbody tr")) == len(pools["data"]),
          f"{len(pools['data'])} pools as in the API")
    clients = api("show/clients")
    until("clients", lambda: d.find_elements(By.CSS_SELECTOR, "#show-clients"))
    heads = [th.text for th in d.find_elements(By.CSS_SELECTOR, "#show-clients th")]
    check(heads == clients["columns"] if clients["data"] else "None right now" in text_of("#show-clients"),
          "the clients table has SHOW CLIENTS' columns (or says there is none)")
    find("#show-servers")
    shot("pools")
    goto("jobs")
    until("jobs", loaded)
    check("store, which is off" in text_of("main"), "the jobs page says the store is off")
    shot("jobs")
    for page in ["cache", "advice"]:
        goto(page)
        until(page, lambda: "not built yet" in text_of("main"))
        check(True, f"the {page} page says it is not built yet")
        shot(page)


def dark_mode():
    d.execute_cdp_cmd("Emulation.setEmulatedMedia",
                      {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    goto("queries")
    until("rows", lambda: first_row())
    bg = d.execute_script("return getComputedStyle(document.body).backgroundColor")
    check(bg == "rgb(15, 18, 22)", f"dark mode follows the system ({bg})")
    shot("queries-dark")
    d.execute_cdp_cmd("Emulation.setEmulatedMedia",
                      {"features": [{"name": "prefers-color-scheme", "value": "light"}]})


def store_down():
    goto("slow")
    until("the banner", lambda: find("#banner").is_displayed())
    banner = text_of("#banner")
    check("store is down" in banner and "1,000" in banner and "store_url" in banner,
          f"the banner says the store is down, what is shown instead and what to check: {banner}")
    until("the slow page", loaded)
    check("showing the last 1,000 events from memory" in text_of("main"),
          "the slow page says its events come from memory")
    shot("store-down")
    goto("jobs")
    until("jobs", loaded)
    check("store, which is down" in text_of("main"), "the jobs page says the store is down")


if STORE_DOWN:
    try:
        store_down()
    finally:
        d.quit()
    print("console check passed")
    sys.exit(0)

try:
    login()
    queries_page()
    keyboard_opens_detail()
    detail_with_plan()
    scroll_measure()
    other_pages()
    dark_mode()
    overview()
    detail_minutes()
    # The 401s of the login check are expected; nothing else may fail.
    errors = [e for e in d.get_log("browser") if e["level"] == "SEVERE" and " 401 " not in e["message"]]
    check(not errors, f"no errors in the browser console {errors}")
except Exception:
    shot("failure")
    print("URL: " + d.current_url)
    print("PAGE: " + d.find_element(By.TAG_NAME, "body").text[:3000])
    raise
finally:
    d.quit()
print("console check passed")
