"""The pages of results/ that every run has: README (headline, own-model targets, method), accuracy,
latency, size, and training. One render function per page, from the run's document and the
analysis; a page's plots and the CSV of a long per-row table (`long_table`) are written into the folder
being published."""
from __future__ import annotations

from pathlib import Path

from fmnist.atomic import write_text
from fmnist.environment import HOST_LABEL
from fmnist.metrics import MAX_ACCURACY_DROP, MIN_AGREEMENT, VARIANT_MAX_DROP
from fmnist.models import get_spec
from fmnist.report import analysis as a
from fmnist.report import deploy
from fmnist.report.gfm import LONG, NO_DATA, Column, csv_of, field, table, table_of  # noqa: F401 (NO_DATA: its users)


def pct(value) -> str:
    return "" if value is None else f"{100 * value:.2f}%"


def us(value) -> str:
    if value is None:
        return ""
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def features(machine: dict) -> str:
    """', with avx2, fma' (a CPU's name does not tell its vector extensions); '' for older records."""
    found = machine.get("cpu_features")
    return f", with {', '.join(found)}" if found else ""


def environment_lines(env: dict) -> list[str]:
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v)
    return ["## Environment", "",
            f"- CPU: {env['cpu']} ({env['cores']} cores, {env['machine']}{features(env)}), Python {env['python']}",
            f"- Libraries: {versions}", f"- Seed: {env['seed']}; run on {env['date']}", ""]


def method_lines(document: dict) -> list[str]:
    settings, records = document["settings"], document["records"]
    scopes = sorted({(r["runtime"], r["latency_scope"]) for r in records if r.get("latency_scope")})
    lines = ["## Method", "",
             f"- Batch-1 latency: {settings['warmup_calls']} warm-up calls, then at least {settings['min_calls']} "
             f"calls and {settings['min_seconds']} s (at most {settings['max_calls']:,}). What is timed, per runtime:",
             *[f"  - {runtime}: {scope}" for runtime, scope in scopes],
             f"- Throughput at batch {settings['throughput_batch']}, timed (a runtime that takes one image per "
             f"call says how its figure is derived: `throughput_scope`); accuracy on all 10,000 test images; parity "
             f"against the Keras source model of the same variant.",
             f"- Flagged (⚠): accuracy more than {100 * MAX_ACCURACY_DROP:g} pts below the source model, or top-1 "
             f"agreement under {100 * MIN_AGREEMENT:g}%; a variant whose own Keras accuracy is more than "
             f"{100 * VARIANT_MAX_DROP:g} pt below its base model's is flagged as such (the variant lost it, not "
             f"the export). Flagged artifacts are measured like any other: what they cost is the answer.",
             "- Memory: each runtime runs in a process of its own, its library imported before the baseline. "
             "Peak RSS is the process's high-water mark over loading the artifact, the first call, warm-up and "
             "the timed batch-1 loop (the footprint an edge device needs for one image), read before any larger "
             "batch runs; model RSS is the part of it above the baseline. The peak after the accuracy "
             "(batch-1,000) and throughput passes is a separate figure (`peak_rss_mb_large_batches`)."]
    overhead = document.get("harness_overhead")
    if overhead:
        lines.append(f"- Harness overhead: on {Path(overhead['artifact']).parent.parent.name} TFLite, "
                     f"{overhead['rounds']} interleaved rounds of the harness's timed loop and a bare "
                     f"`interpreter.invoke()` loop: {overhead['harness_us']:.2f} µs against "
                     f"{overhead['bare_loop_us']:.2f} µs per call, ratio {overhead['ratio']:.3f} (interquartile "
                     f"{overhead['ratio_lower_quartile']:.3f}-{overhead['ratio_upper_quartile']:.3f}).")
    date = document["environment"]["date"]
    measured = [r for r in records if r.get("machine", HOST_LABEL) == HOST_LABEL and r["status"] == "ok"]
    reused = sum(bool(r.get("reused")) for r in measured)
    if reused:
        lines.append(f"- {reused} of the {len(measured)} rows measured on this machine were measured by an earlier "
                     f"run on this machine, of the same file, settings and measuring code, and reused.")
    carried = sorted({r["measured_on"][:10] for r in measured if r.get("measured_on", date) != date})
    if carried:
        lines.append(f"- {sum(r.get('measured_on', date) != date for r in measured)} rows were not asked for by this "
                     f"run and are kept from the earlier runs of {', '.join(carried)} (their files unchanged).")
    return lines + [""]


def _headline_row(h: a.Headline) -> list:
    integer, fastest, base = h.integer, h.fastest, h.float_file
    return [h.model, h.source, pct(h.accuracy),
            a.label(fastest) if fastest else "none sound", pct(fastest["accuracy"]) if fastest else "",
            us(fastest["latency_us"]["p50"]) if fastest else "",
            (f"{h.float_speedup:.2f}× ({base['format']}: {us(base['latency_us']['p50'])} µs)" if base is not fastest
             else "it is the float file") if base else "",
            us(h.reference["latency_us"]["p50"]) if h.reference else "not measured",
            f"{h.speedup:,.0f}×" if h.speedup else "",
            f"{a.label(h.smallest)}: {h.smallest['size_bytes']:,} B" if h.smallest else "",
            (f"{a.label(integer)}: {pct(integer['accuracy'])} ({100 * integer['accuracy_delta']:+.2f} pts), "
             f"{integer['size_bytes']:,} B" + (f", {h.integer_shrink:.2f}× smaller" if h.integer_shrink else "")
             + (" ⚠" if integer["flagged"] else "")) if integer else "not measured"]


def _missed_lines(h: a.Headline) -> list[str]:
    said = {"speedup": f"the fastest sound edge row is {h.speedup or 0:.0f}× faster than the Keras call",
            "int8_shrink": f"its smallest full-integer artifact is {h.best_shrink or 0:.2f}× smaller than its float "
                           f"counterpart (a small network's file is mostly fixed overhead)"}
    return [f"- {h.model}: {said[t.metric]}, short of {t.bound:g}×" for t in h.missed]


def _verdict_line(v: a.Verdict) -> str:
    shown = {"accuracy": pct, "bytes": lambda x: f"{x:,.0f} B", "us": lambda x: f"{us(x)} µs",
             "seconds": lambda x: f"{x / 60:.1f} min"}[v.target.metric.rsplit("_", 1)[-1]]
    if v.value is None:
        return f"- {v.what}: not measured in this run"
    return (f"- {v.what} {shown(v.value)} (target {v.target.direction.value} {shown(v.target.bound)}): "
            f"{'met' if v.met else '**missed**'}")


def own_model_lines(document: dict) -> list[str]:
    """Our own models against their registered targets, and where they sit on the Pareto front."""
    ok = a.ok_rows(document["records"])
    host = a.host_rows(ok)
    front = {id(r) for r in a.front_rows(host)}
    trained = {(t["model"], t["variant"]): t for t in document.get("trained", [])}
    lines = []
    for model in sorted({r["model"] for r in host if r["source"] == "own"}):
        mine = [r for r in host if r["model"] == model]
        lines += [f"**{model}** ({get_spec(model).summary}):", "",
                  *map(_verdict_line, a.verdicts(get_spec(model).targets, mine, trained.get((model, "base")))),
                  f"- rows on the accuracy-vs-latency Pareto front: "
                  f"{', '.join(a.label(r) for r in mine if id(r) in front) or 'none'}", ""]
    return lines


def run_cost_lines(document: dict) -> list[str]:
    """Where the run's time went: stages, training jobs against the machine's dense rate, the floor."""
    c = document.get("run_cost")
    if not c or not c.get("dense_gflops"):  # none yet: a refresh in the middle of a run
        return []
    stages = [[name.replace("_", " "), f"{seconds:,.0f} s", f"{seconds / c['wall_seconds']:.0%}"]
              for name, seconds in c["stage_seconds"].items()]
    jobs = sorted(c["training"], key=lambda j: -j["seconds"])
    rows = [[j["folder"], f"{j['images']:,} × {j['epochs']}", f"{j['macs'] / 1e6:.2f} M", f"{j['flop'] / 1e12:.2f}",
             f"{j['seconds']:,.0f} s", f"{j['gflops']:.1f}", f"{j['of_dense_rate']:.1%}", "yes" if j["this_run"] else
             "no (cached)"] for j in jobs]
    this_run = [j for j in jobs if j["this_run"]]
    floor = (f"This run trained {len(this_run)} of them: {c['training_flop_this_run'] / 1e12:.1f} TFLOP, a floor of "
             f"{c['floor_seconds'] / 60:.1f} min at the dense rate; the whole run took {c['wall_seconds'] / 60:.1f} min, "
             f"{c['wall_over_floor']:.1f}× that floor." if this_run else
             "This run trained nothing (every model was cached), so it has no training floor.")
    return ["## Run cost", "",
            f"The run's own matmul measured this machine's dense float32 rate at {c['dense_gflops']:.0f} GFLOP/s on "
            f"every core. Training FLOP per job: images × epochs × 6 × MACs (forward and backward). The run took "
            f"{c['wall_seconds'] / 60:.1f} min; its stages overlap (jobs on every core at once), so each stage's time "
            f"is its jobs' own, summed, and the shares of that wall time can add up to more than 100%.", "",
            table(stages, ["stage", "job time", "of the run's wall time"]), "",
            table(rows, ["training job", "images × epochs", "MACs/image", "TFLOP", "time", "GFLOP/s",
                         "of the dense rate", "trained by this run"]), "", floor, ""]


def _speed(c: deploy.Candidate, kind: str) -> str:
    r = c.row
    if kind == "board":
        return f"{r['macs'] / 1e6:.2f} M MACs"
    if kind == "npu":
        return f"est. {us(r['ethos_u']['inference_us'])} µs (Vela)"
    return f"p50 {us(r['latency_us']['p50'])} µs"


def _memory(r: dict, kind: str) -> str:
    if kind == "board":
        own = r[r["runtime"]]
        return f"flash {deploy.size(own['flash_bytes'])}, arena {deploy.size(own['arena_bytes_min'])}"
    if kind == "npu":
        return f"weights {deploy.size(deploy.npu_weights(r))}, SRAM {deploy.size(r['ethos_u']['sram_bytes'])}"
    return f"file {deploy.size(r['size_bytes'])}, RSS {r['peak_rss_mb']:.0f} MB"


def csv_line(index: int) -> int:
    """The line of benchmark.csv that holds record `index` (one header line, one line per record)."""
    return index + 2


def _pick(c: deploy.Candidate | None, kind: str, lines: dict) -> str:
    if c is None:
        return "nothing measured fits"
    r, line = c.row, csv_line(lines[id(c.row)])
    return (f"**{r['model']}** · {a.label(r)}: {pct(c.accuracy)}, {_speed(c, kind)}, {_memory(r, kind)} "
            f"([csv line {line}](benchmark.csv#L{line}))")


def deploy_lines(document: dict) -> list[str]:
    """README's first section: per target, what to deploy and what it costs (fmnist.report.deploy)."""
    records = document["records"]
    found = deploy.answers(records)
    if not found:
        return []
    lines = {id(r): i for i, r in enumerate(records)}
    rows = [[(f"↳ your model {x.model}" if x.model else f"**{x.target.name}**")
             + (f" ({x.target.about})" if x.target.about and not x.model else ""),
             _pick(x.accurate, x.target.kind, lines),
             "the same" if x.fastest is x.accurate else _pick(x.fastest, x.target.kind, lines)] for x in found]
    skipped = deploy.other_precision(records)
    drop, env = f"{100 * MAX_ACCURACY_DROP:g} pt", document["environment"]
    return ["## What to deploy", "",
            table(rows, ["target", "most accurate sound row that fits", f"fastest within {drop} of it"]), "",
            f"- Sound: not flagged, and within {drop} of its own Keras model. Each pick links to its line of "
            f"benchmark.csv.",
            f"- Boards: TFLM rows whose flash and smallest arena fit the board (micro.md). No microcontroller latency "
            f"is measured, so the fastest there is the one with the fewest MACs.",
            "- NPUs: Vela's estimates (nothing ran), with the accuracy TFLM measured on the same file.",
            f"- This machine ({env['cpu']}, {env['cores']} cores) and devices: measured batch-1 p50, file size and "
            f"peak RSS. A model you brought gets its own line where it is at least as accurate as the registry's "
            f"answer.",
            *([f"- No choice reads the {len(skipped)} rows whose runtime ran the file at another precision than the "
               f"file's own (OpenVINO runs a 16x8 file in float32: `openvino.compute_precision`): their accuracy is "
               f"not the file's."] if skipped else []), ""]


def readme(document: dict, pages: dict[str, str], plots: list[str]) -> str:
    """results/README.md: the headline, own models' targets, method, and links to the pages made."""
    host = a.host_rows(document["records"])
    heads = a.headlines(host)
    edge = sorted({r["runtime"] for r in a.ok_rows(host) if a.is_edge(r)})
    lines = ["# Results: which model, in which format, on which runtime", "",
             "Written by `fmnist-bench` (`tox -e bench`) from real runs; do not edit by hand. Each row says when "
             "it was measured (`measured_on`): a run keeps the rows it was not asked for while their files are "
             "unchanged" + (", and device rows are as their machines reported them (devices.md)."
                             if len(document.get("machines", {})) > 1 else "."), "",
             *deploy_lines(document), "## Headline", "",
             table([_headline_row(h) for h in heads],
                   ["model", "README", "source acc", f"fastest edge row within {100 * MAX_ACCURACY_DROP:g} pts",
                    "its acc", "p50 µs", "speed-up vs the base float file, same runtime", "Keras call p50 µs",
                    "vs the Keras call",
                    "smallest sound artifact", "best int8-class artifact: int8, 16x8 or int8-mixed (acc, Δ vs its "
                    "Keras model, size, vs float)"]), "",
             f"Fastest edge row: the lowest batch-1 p50 on an edge runtime ({', '.join(edge) or 'none measured'}) "
             f"among rows that are not flagged, within {100 * MAX_ACCURACY_DROP:g} points of the source model's "
             f"accuracy and run at the file's own precision. Its speed-up is against the base model's float file "
             f"(tflite, onnx) on the same runtime: what the optimisation buys. The Keras call is a Python call, "
             f"mostly dispatch for a network this small: 'vs the Keras call' says what leaving Python buys, not what "
             f"the runtime does.", ""]
    estimates = a.estimate_rows(host)
    if estimates:
        targets = ", ".join(sorted({r["runtime"] for r in estimates}))
        lines += [f"Not measured, estimated: {len(estimates)} rows of {targets} (a compiler's model of an NPU: "
                  f"cycles, time, memory; nothing ran). No choice on this page reads them; micro.md shows them.", ""]
    missed = [line for h in heads for line in _missed_lines(h)]
    if missed:
        lines += ["Where a target is missed:", "", *missed, ""]
    own = own_model_lines(document)
    if own:
        lines += ["## Our own model against its targets", "", *own]
    lines += [*run_cost_lines(document), *environment_lines(document["environment"]), *method_lines(document),
              "## More", "",
              *[f"- [{name}]({name}): {what}" for name, what in pages.items()], "",
              *[f"![{p.rsplit('/', 1)[-1][:-4].replace('_', ' ')}]({p})" for p in plots], ""]
    problems = [f"- **{r['runtime']}** ({r['device']}) not measured: {r['error']}" if r["status"] == "unavailable"
                else f"- {r['model']} {r['variant']} {r['format']} on {r['runtime']}: {r['error']}"
                for r in host if r["status"] in ("unavailable", "error")]
    if problems:
        lines += ["## Not measured, and errors", "", *problems, ""]
    if document.get("not_made"):
        lines += ["## Not made (format does not apply to the variant)", "",
                  *sorted({f"- {s['format']} of {s['variant']} variants: {s['reason']}" for s in document["not_made"]}),
                  ""]
    return "\n".join(lines)


def _page(title: str, body: str, document: dict) -> str:
    return "\n".join([f"# {title}", "", "Written by `fmnist-bench` from a real run.", "", body, "",
                      *environment_lines(document["environment"]), *method_lines(document)])


ACCURACY = [field("model"), field("variant"), field("format"), field("runtime"), field("accuracy", pct),
            Column("Δ pts vs its Keras model", lambda r: 100 * r["accuracy_delta"], lambda v: f"{v:+.2f}"),
            field("agreement", pct, "top-1 agreement"), field("max_abs_diff", lambda v: f"{v:.1e}", "max |Δp|"),
            field("source_accuracy", pct, "its Keras model's acc"),
            Column("its Keras model vs base, pts", lambda r: None if r.get("base_test_accuracy") is None else
                   100 * (r["source_accuracy"] - r["base_test_accuracy"]), lambda v: f"{v:+.2f}"),
            Column("flag", lambda r: ", ".join(r["flag_reasons"]) if r["flagged"] else None, lambda v: f"⚠ {v}")]


def latency_columns(ok: list[dict]) -> list[Column]:
    keras = a.reference_rows(ok)
    speedup = lambda r: (ref := keras.get(r["model"])) and ref["latency_us"]["p50"] / r["latency_us"]["p50"]  # noqa
    return [field("model"), field("variant"), field("format"), field("runtime"),
            Column("threads", lambda r: r["threads"] or "all"), field("latency_us.p50", us, "p50 µs"),
            *(field(f"latency_us.{k}", us, k) for k in ("p90", "p99", "mean", "std")),
            field("latency_us.n", str, "calls"),
            Column("vs Keras call", speedup, lambda v: f"{v:,.0f}×"),
            field("single_thread.latency_us.p50", us, "p50 µs 1 thread"),
            field("throughput_ips", lambda v: f"{v:,.0f}", "img/s"),
            Column("img/s is", lambda r: None if r.get("throughput_scope", "measured") == "measured" else "derived"),
            field("single_thread.throughput_ips", lambda v: f"{v:,.0f}", "img/s 1 thread"),
            field("load_ms", lambda v: f"{v:.1f}", "load ms"),
            field("first_inference_ms", lambda v: f"{v:.2f}", "first call ms"),
            field("peak_rss_mb", lambda v: f"{v:.1f}", "batch-1 peak RSS MB"),
            field("model_rss_mb", lambda v: f"{v:.1f}", "batch-1 model RSS MB"),
            field("peak_rss_mb_large_batches", lambda v: f"{v:.0f}", "peak RSS MB after large batches")]


def best_per(rows: list[dict], key, better) -> list[dict]:
    """For each value of key(row), in order, the row that `better` ranks first (lowest)."""
    return [min((r for r in rows if key(r) == k), key=better) for k in sorted({key(r) for r in rows})]


def long_table(rows: list[dict], columns: list[Column], csv_name: str, folder: Path,
               best: dict[str, list[dict]]) -> str:
    """Every row to `csv_name` in `folder`; on the page, the whole table when it is short, else the
    best rows (`best`: section title -> rows) and a link to the CSV."""
    write_text(Path(folder) / csv_name, csv_of(rows, columns))
    everything = f"Every row ({len(rows):,}), sortable and searchable: [{csv_name}]({csv_name})."
    if len(rows) <= LONG:
        return "\n".join([table_of(rows, columns), "", everything])
    sections = [line for title, picked in best.items() for line in (f"## {title}", "", table_of(picked, columns), "")]
    return "\n".join([*sections, everything])


def accuracy_page(document: dict, folder: Path) -> str:
    ok = a.ok_rows(a.host_rows(document["records"]))
    rank = lambda r: (r["flagged"], -r["accuracy"], -r["agreement"], r["latency_us"]["p50"])  # noqa: E731
    flagged = sum(r["flagged"] for r in ok)
    body = long_table(ok, ACCURACY, "accuracy.csv", folder, {
        "The most accurate unflagged row of each model": best_per(ok, lambda r: r["model"], rank),
        "The most accurate unflagged row on each runtime": best_per(ok, lambda r: r["runtime"], rank)})
    return _page("Accuracy and parity", f"{body} Flagged: {flagged} of {len(ok)} rows (the csv's `flag` column).",
                 document)


def latency_page(document: dict, folder: Path) -> str:
    ok = a.ok_rows(a.host_rows(document["records"]))
    good = [r for r in ok if a.sound(r, r["source_accuracy"])]
    fastest = lambda r: r["latency_us"]["p50"]  # noqa: E731
    body = long_table(ok, latency_columns(ok), "latency.csv", folder, {
        "The fastest sound edge row of each model": best_per([r for r in good if a.is_edge(r)], lambda r: r["model"],
                                                            fastest),
        "The fastest sound row on each runtime": best_per(good, lambda r: r["runtime"], fastest)})
    return _page("Latency, throughput, cold start, memory",
                 f"{body} Sound: not flagged and within {100 * MAX_ACCURACY_DROP:g} pts of its Keras model; TFLM's "
                 f"host latency says nothing of a microcontroller's, so no model's fastest row is a TFLM one.",
                 document)


def size_page(document: dict, folder: Path) -> str:
    ok = a.ok_rows(a.host_rows(document["records"]))
    firsts = {}
    for r in ok:
        firsts.setdefault((r["model"], r["variant"], r["format"]), r)
    artifacts = list(firsts.values())
    columns = [field("model"), field("variant"), field("format"), field("size_bytes", lambda v: f"{v:,}", "bytes"),
               field("size_gzip_bytes", lambda v: f"{v:,}", "gzip bytes"),
               Column("float counterpart / this", lambda r: a.shrink(r, ok), lambda v: f"{v:.2f}×"),
               field("params", lambda v: f"{v:,}"),
               field("nonzero_params", lambda v: f"{v:,}" if v else "", "non-zero params"),
               field("macs", lambda v: f"{v:,}", "MACs/image")]
    good = [r for r in artifacts if a.sound(r, r["source_accuracy"])]
    smallest = lambda r: r["size_bytes"]  # noqa: E731
    return _page("Size", long_table(artifacts, columns, "size.csv", folder, {
        "The smallest sound artifact of each model": best_per(good, lambda r: r["model"], smallest),
        "The smallest sound artifact in each format": best_per(good, lambda r: r["format"], smallest)}), document)


def _quick_run(t: dict) -> str:
    """Says when a row is not the full recipe, so a quick run is never mistaken for a result."""
    parts = ([f"subset of {t['subset']} images"] if t["subset"] else []) + (
        [f"{t['epochs_planned']} epochs"] if t["source"] != "user" and t["epochs_planned"] != get_spec(t["model"]).recipe.epochs
        else [])
    return f" (quick run: {', '.join(parts)})" if parts else ""


def training_page(trained: list[dict], plot_links: dict) -> str | None:
    """results/training.md: one row per trained base model, with the plots copied beside it."""
    names = {"train_accuracy": "train", "validation_accuracy": "val", "test_accuracy": "test"}
    rows = []
    for t in (t for t in trained if t["variant"] == "base"):
        threads = t.get("train_threads")
        rows.append([t["model"] + _quick_run(t), t["source"], f"{t['params']:,}",
                     f"{t['epochs_run']}/{t['epochs_planned']}", t["stop_reason"],
                     f"{t['recipe']['optimizer']} lr {t['recipe']['learning_rate']:.3g}",
                     pct(t["train_accuracy"]), pct(t.get("validation_accuracy")), pct(t["test_accuracy"]),
                     ", ".join(f"{names[k]} {pct(v)}" for k, v in t.get("reported", {}).items()) or "none",
                     f"{t['train_seconds']:.0f} s" + (f" ({threads} thread{'s' * (threads > 1)})" if threads else ""),
                     " · ".join(f"[{Path(p).stem.replace('_', ' ')}]({p})" for p in plot_links.get(t["model"], []))])
    if not rows:
        return None
    return "\n".join([
        "# Training: every registered model by its README's recipe", "",
        "Written by `fmnist-train` / `fmnist-bench` from the training records; do not edit by hand. Train "
        "accuracy is the last epoch's running average (as Keras reports it and the READMEs quote it); val is the "
        "recipe's validation data (the test set for READMEs 001/002, a held-out 5,000 training images for 003); "
        "test is the 10,000 test images. Train time is wall-clock; `fmnist-bench` and `fmnist-export` train one "
        "model per core at a time, one thread each (shown), `fmnist-train` one at a time on every core.", "",
        table(rows, ["model", "README", "params", "epochs run", "stop reason", "optimizer", "train acc", "val acc",
                     "test acc", "README reports", "train time", "plots"]), "",
        *environment_lines(trained[0]["environment"])])
