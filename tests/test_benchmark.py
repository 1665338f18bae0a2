"""The whole pipeline (benchmark.run) end to end on two models the session trained, in a folder of
the test's own: results/ written whole, reuse on a warm run, a subset run that keeps the rest, and
the results contract (docs/results.md) checked against the one row definition."""
import csv
import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from fmnist import benchmark, rows
from fmnist.config import RunConfig
from fmnist.storage import model_dir

from conftest import QUICK, SUBSET

MODELS = ["mlp4x2", "micro_cnn"]
FORMATS = ["keras", "tflite", "tflite-int8", "tflm"]
RUNTIMES = ["keras", "litert", "tflm"]


def links(folder: Path) -> list[str]:
    return [target for page in folder.glob("*.md") for target in re.findall(r"\]\(([^)#]+)", page.read_text())]


@pytest.fixture(scope="module")
def runs(exported, session_exports, tmp_path_factory):
    exports, results = tmp_path_factory.mktemp("exports"), tmp_path_factory.mktemp("run") / "results"
    for model in MODELS:
        shutil.copytree(model_dir(session_exports, model), exports / model)
    config, settings = RunConfig(epochs=1, subset=SUBSET), replace(QUICK, reuse_figures=True)

    def run(models=MODELS, runtimes=RUNTIMES):
        document = benchmark.run(models, FORMATS, runtimes, [], exports, results, config, settings, progress=False)
        return document, json.loads((results / "benchmark.json").read_text()), sorted(p.name for p in results.iterdir())
    return run, results


def test_a_run_publishes_every_page_it_links_and_the_same_rows_in_json_and_csv(runs):
    run, results = runs
    document, written, files = run()
    assert {"README.md", "accuracy.md", "latency.md", "size.md", "micro.md", "training.md",
            "benchmark.json", "benchmark.csv"} <= set(files)
    assert all((results / target).exists() for target in links(results))
    assert len(list(csv.DictReader((results / "benchmark.csv").open()))) == len(written["records"]) > 0
    ok = [r for r in written["records"] if r["status"] == "ok"]
    assert {(r["model"], r["runtime"]) for r in ok} == {(m, r) for m in MODELS for r in RUNTIMES}
    tflm = [r for r in ok if r["runtime"] == "tflm"]
    assert all(r["tflm"]["agreement_with_litert"] >= 0.95 for r in tflm)
    readme = (results / "README.md").read_text()
    assert all(f"| {m} " in readme for m in MODELS) and "micro_cnn" in (results / "micro.md").read_text()


def test_a_warm_run_reuses_every_row_with_the_same_figures(runs):
    run, _ = runs
    _, first, _ = run()
    _, second, _ = run()
    ok = [r for r in second["records"] if r["status"] == "ok"]
    assert ok and all(r["reused"] for r in ok)
    assert [r["latency_us"] for r in ok] == [r["latency_us"] for r in first["records"] if r["status"] == "ok"]


def test_a_subset_run_updates_its_rows_and_keeps_every_other_with_its_date(runs):
    run, results = runs
    _, full, _ = run()
    _, written, files = run(models=["mlp4x2"], runtimes=["litert"])
    key = lambda r: (r.get("model"), r.get("variant"), r.get("format"), r["runtime"])  # noqa: E731
    assert sorted(map(key, written["records"])) == sorted(map(key, full["records"]))
    fresh = [r for r in written["records"] if r["measured_on"] == written["environment"]["date"]]
    assert {(r["model"], r["runtime"]) for r in fresh} == {("mlp4x2", "litert")}
    assert all(r["measured_on"] == full["environment"]["date"] for r in written["records"] if r not in fresh)
    assert "micro.md" in files and "micro.md" in (results / "README.md").read_text()  # no page lost
    assert all((results / target).exists() for target in links(results))


def test_the_results_doc_documents_exactly_the_fields_of_a_row():
    doc = (Path(__file__).parent.parent / "docs" / "results.md").read_text()
    section = doc.split("fields\nof a record are defined once")[1].split("| field | meaning |")[1].split("\n\n")[0]
    documented = {name for line in section.splitlines()[2:] for name in re.findall(r"`([a-z0-9_]+)`", line.split("|")[1])}
    assert documented == set(rows.FIELDS)
