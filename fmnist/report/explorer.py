"""results/explorer.html: every measured row in one file that works offline (no network, no
library: the rows are inlined as JSON, the table and the SVG scatter are plain JavaScript), so the
900-row tables the markdown pages leave out can be filtered, sorted and looked at from a clone."""
from __future__ import annotations

import importlib.util
import json
import shutil
import tempfile
from pathlib import Path

FILTERS = ("model", "variant", "format", "runtime", "machine")
# (key in a shown row, header, numeric)
COLUMNS = (("model", "model", False), ("variant", "variant", False), ("format", "format", False),
           ("runtime", "runtime", False), ("machine", "machine", False), ("accuracy", "accuracy %", True),
           ("agreement", "agreement %", True), ("p50", "p50 µs", True), ("p99", "p99 µs", True),
           ("size_bytes", "bytes", True), ("peak_rss_mb", "peak RSS MB", True), ("flagged", "flag", False))


def _round(value, digits: int):
    return None if value is None else round(value, digits)


def rows(records: list[dict]) -> list[dict]:
    """The rows the explorer shows, in benchmark.json's order: every measured (ok) row, host and devices."""
    return [{"model": r["model"], "variant": r["variant"], "format": r["format"], "runtime": r["runtime"],
             "machine": r.get("machine", "host"), "accuracy": round(100 * r["accuracy"], 2),
             "agreement": round(100 * r["agreement"], 2), "p50": round(r["latency_us"]["p50"], 2),
             "p99": _round(r["latency_us"].get("p99"), 2), "size_bytes": r["size_bytes"],
             "peak_rss_mb": _round(r.get("peak_rss_mb"), 1),
             "flagged": ", ".join(r.get("flag_reasons") or []) if r.get("flagged") else ""}
            for r in records if r["status"] == "ok"]


def page(document: dict) -> str:
    data = json.dumps({"rows": rows(document["records"]), "columns": COLUMNS, "filters": FILTERS},
                      separators=(",", ":")).replace("</", "<\\/")  # no "</script>" inside the script
    return TEMPLATE.replace("/*DATA*/null", data).replace("{date}", document["environment"]["date"])


def browser() -> str | None:
    """The chromedriver on PATH (Debian's chromium-driver) when selenium is installed, else None."""
    return shutil.which("chromedriver") if importlib.util.find_spec("selenium") else None


def open_page(html: Path, driver_path: str, profile: Path):
    """A headless Chromium (selenium) on `html`, with no network use of its own and a fresh profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,1000",
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.get(Path(html).resolve().as_uri())
    return driver


def screenshot(html: Path, png: Path, driver_path: str) -> None:
    """The page as a browser first shows it, to `png` (results/plots/explorer.png)."""
    with tempfile.TemporaryDirectory() as profile:
        driver = open_page(html, driver_path, Path(profile))
        try:
            driver.save_screenshot(str(png))
        finally:
            driver.quit()


TEMPLATE = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>fmnist-edge: results explorer</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<style>
body { font: 14px system-ui, sans-serif; margin: 16px; color: #222; }
#filters label { margin-right: 12px; } select { margin-left: 4px; }
#chart { border: 1px solid #ccc; background: #fff; } .front { fill: none; stroke: #000; stroke-dasharray: 4 3; }
#tip { position: fixed; display: none; background: #fff; border: 1px solid #888; padding: 6px 8px; font-size: 12px;
       pointer-events: none; white-space: pre; box-shadow: 2px 2px 6px #0003; }
table { border-collapse: collapse; margin-top: 12px; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 6px; text-align: left; } td.n { text-align: right; }
th { background: #f3f3f3; cursor: pointer; user-select: none; position: sticky; top: 0; }
th[data-dir="asc"]::after { content: " ▲"; } th[data-dir="desc"]::after { content: " ▼"; }
tr:hover td { background: #fffbe6; } .axis text { font-size: 11px; } .grid { stroke: #eee; }
</style></head><body>
<h1>Results explorer</h1>
<p>Every measured row of benchmark.json (run of {date}), offline: filter, sort by a column (click its header,
again to reverse), hover a point. The dashed line is the Pareto front of the rows shown: no other shown row is
both faster and more accurate. TFLM rows' latency is the host's, not a microcontroller's.</p>
<div id="filters"></div>
<p id="count"></p>
<svg id="chart" width="900" height="420" role="img" aria-label="accuracy against latency"></svg>
<div id="tip"></div>
<table id="rows"><thead><tr></tr></thead><tbody></tbody></table>
<script>
"use strict";
const DATA = /*DATA*/null;
const rows = DATA.rows.map((r, i) => Object.assign({_i: i}, r));
const state = {filters: {}, sort: null, dir: 1};
const colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];
const runtimes = [...new Set(rows.map(r => r.runtime))].sort();
const colour = r => colours[runtimes.indexOf(r.runtime) % colours.length];
const el = (tag, attrs = {}, text = "") => {
  const e = document.createElementNS(tag === "svg" || attrs.svg ? "http://www.w3.org/2000/svg"
                                     : "http://www.w3.org/1999/xhtml", tag);
  for (const [k, v] of Object.entries(attrs)) if (k !== "svg") e.setAttribute(k, v);
  if (text !== "") e.textContent = text;
  return e;
};
function shown() {
  let out = rows.filter(r => DATA.filters.every(f => !state.filters[f] || r[f] === state.filters[f]));
  if (state.sort) {
    const numeric = DATA.columns.find(c => c[0] === state.sort)[2];
    const key = r => r[state.sort];
    out = out.slice().sort((a, b) => {
      const x = key(a), y = key(b);
      if (x === null || x === undefined) return (y === null || y === undefined) ? a._i - b._i : 1;
      if (y === null || y === undefined) return -1;
      const c = numeric ? x - y : String(x).localeCompare(String(y));
      return c ? state.dir * c : a._i - b._i;
    });
  }
  return out;
}
function describe(r) {
  return DATA.columns.map(c => `${c[1]}: ${r[c[0]] === null || r[c[0]] === "" ? "—" : r[c[0]]}`).join("\n");
}
function front(list) {
  const sorted = list.slice().sort((a, b) => a.p50 - b.p50 || b.accuracy - a.accuracy);
  const out = []; let best = -Infinity;
  for (const r of sorted) if (r.accuracy > best) { out.push(r); best = r.accuracy; }
  return out;
}
function chart(list) {
  const svg = document.getElementById("chart"); svg.replaceChildren();
  const W = 900, H = 420, L = 60, R = 150, T = 15, B = 45;
  const timed = list.filter(r => r.p50 > 0);
  if (!timed.length) return;
  const lx = timed.map(r => Math.log10(r.p50)), ys = timed.map(r => r.accuracy);
  const x0 = Math.floor(Math.min(...lx)), x1 = Math.ceil(Math.max(...lx)) + (Math.min(...lx) === Math.max(...lx));
  const y0 = Math.floor(Math.min(...ys)), y1 = Math.ceil(Math.max(...ys)) + (Math.min(...ys) === Math.max(...ys));
  const X = p => L + (Math.log10(p) - x0) / (x1 - x0) * (W - L - R), Y = a => H - B - (a - y0) / (y1 - y0) * (H - T - B);
  const axis = el("g", {svg: 1, class: "axis"}); svg.append(axis);
  for (let e = x0; e <= x1; e++) {
    axis.append(el("line", {svg: 1, class: "grid", x1: X(10 ** e), x2: X(10 ** e), y1: T, y2: H - B}));
    axis.append(el("text", {svg: 1, x: X(10 ** e), y: H - B + 15, "text-anchor": "middle"}, `${10 ** e} µs`));
  }
  const step = Math.max(1, Math.ceil((y1 - y0) / 8));
  for (let a = y0; a <= y1; a += step) {
    axis.append(el("line", {svg: 1, class: "grid", x1: L, x2: W - R, y1: Y(a), y2: Y(a)}));
    axis.append(el("text", {svg: 1, x: L - 6, y: Y(a) + 4, "text-anchor": "end"}, `${a}%`));
  }
  axis.append(el("text", {svg: 1, x: (L + W - R) / 2, y: H - 8, "text-anchor": "middle"}, "batch-1 p50 (µs, log)"));
  axis.append(el("text", {svg: 1, x: 14, y: (T + H - B) / 2, transform: `rotate(-90 14 ${(T + H - B) / 2})`,
                          "text-anchor": "middle"}, "accuracy (%)"));
  const tip = document.getElementById("tip");
  for (const r of timed) {
    const dot = el("circle", {svg: 1, cx: X(r.p50), cy: Y(r.accuracy), r: 4, fill: colour(r), "fill-opacity": 0.6,
                              "data-i": r._i});
    dot.addEventListener("mousemove", ev => { tip.textContent = describe(r); tip.style.display = "block";
      tip.style.left = `${ev.clientX + 12}px`; tip.style.top = `${ev.clientY + 12}px`; });
    dot.addEventListener("mouseleave", () => { tip.style.display = "none"; });
    svg.append(dot);
  }
  const f = front(timed);
  svg.append(el("polyline", {svg: 1, class: "front", points: f.map(r => `${X(r.p50)},${Y(r.accuracy)}`).join(" ")}));
  runtimes.forEach((name, i) => {
    svg.append(el("circle", {svg: 1, cx: W - R + 30, cy: T + 10 + 16 * i, r: 5, fill: colours[i % colours.length]}));
    svg.append(el("text", {svg: 1, x: W - R + 40, y: T + 14 + 16 * i, "font-size": 12}, name));
  });
}
function render() {
  const list = shown();
  const body = document.querySelector("#rows tbody"); body.replaceChildren();
  for (const r of list) {
    const tr = el("tr", {"data-i": r._i});
    for (const [key, , numeric] of DATA.columns)
      tr.append(el("td", numeric ? {class: "n"} : {}, r[key] === null || r[key] === undefined ? "" : String(r[key])));
    body.append(tr);
  }
  document.getElementById("count").textContent = `${list.length} of ${rows.length} rows`;
  chart(list);
}
const filters = document.getElementById("filters");
for (const f of DATA.filters) {
  const label = el("label", {}, f);
  const select = el("select", {id: `filter-${f}`});
  select.append(el("option", {value: ""}, "all"));
  for (const v of [...new Set(rows.map(r => r[f]))].sort()) select.append(el("option", {value: v}, v));
  select.addEventListener("change", () => { state.filters[f] = select.value; render(); });
  label.append(select); filters.append(label);
}
const head = document.querySelector("#rows thead tr");
for (const [key, name] of DATA.columns) {
  const th = el("th", {"data-key": key}, name);
  th.addEventListener("click", () => {
    state.dir = state.sort === key ? -state.dir : 1; state.sort = key;
    head.querySelectorAll("th").forEach(h => h.removeAttribute("data-dir"));
    th.setAttribute("data-dir", state.dir > 0 ? "asc" : "desc"); render();
  });
  head.append(th);
}
render();
</script></body></html>
"""
