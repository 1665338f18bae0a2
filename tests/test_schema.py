"""What a publish says about the document itself: benchmark.schema.json (generated from rows.Row) that
every committed and freshly published record validates against, and the banner an incomplete run puts
at the top of every page it refreshed."""
import json
from pathlib import Path

import jsonschema
import pytest

from fmnist.report import publish, schema

RESULTS = Path(__file__).resolve().parent.parent / "results"
MODELS = {"mlp4x2", "micro_cnn"}  # a small slice of the committed run: every status, runtime and estimate


@pytest.fixture(scope="module")
def committed():
    return json.loads((RESULTS / "benchmark.json").read_text())


@pytest.fixture(scope="module")
def validator():
    return jsonschema.Draft202012Validator(schema.document_schema())


@pytest.fixture(scope="module")
def republished(committed, tmp_path_factory):
    """(folder, written document, pages of the complete publish): a slice of the committed run
    published whole, then refreshed by an incomplete run with an ablation page (another command's)
    in the folder."""
    folder = tmp_path_factory.mktemp("schema") / "results"
    part = {**committed, "records": [r for r in committed["records"] if r.get("model", "") in MODELS
                                     or r["status"] == "unavailable"]}
    publish.publish_benchmark(part, folder)
    complete = {p.name: p.read_text() for p in [*folder.glob("*.md"), folder / "explorer.html"]}
    (folder / "ablation-micro_cnn.md").write_text("# What each choice buys\n")
    return folder, publish.publish_benchmark({**part, "complete": False}, folder), complete


def test_the_schema_is_valid_json_schema_and_covers_every_row_field():
    jsonschema.Draft202012Validator.check_schema(schema.document_schema())
    record = schema.document_schema()["$defs"]["record"]
    assert set(record["properties"]) == set(schema.Row.__annotations__)
    assert record["properties"]["threads"]["type"] == ["integer", "null"]


def test_every_committed_record_validates(committed, validator):
    assert not [e.message for e in validator.iter_errors(committed)]


def test_every_freshly_published_record_validates_against_the_published_schema(republished):
    folder, written, _ = republished
    published = json.loads((folder / "benchmark.schema.json").read_text())
    assert published == schema.document_schema()
    document = json.loads((folder / "benchmark.json").read_text())
    assert document["records"] and len(document["records"]) == len(written["records"])
    assert not [e.message for e in jsonschema.Draft202012Validator(published).iter_errors(document)]
    assert "benchmark.schema.json" in (folder / "README.md").read_text()


@pytest.mark.parametrize("change, complaint", [
    (lambda r: {**r, "latency": 1.0}, "Additional properties"),             # a field Row does not define
    (lambda r: {k: v for k, v in r.items() if k != "latency_us"}, "'latency_us' is a required property"),
    (lambda r: {**r, "size_bytes": "1 KB"}, "is not of type 'integer'"),
    (lambda r: {**r, "accuracy": 91.2}, "is greater than the maximum"),     # a percentage, not a fraction
    (lambda r: {**r, "status": "fine"}, "is not one of"),
])
def test_a_record_that_breaks_the_contract_fails(committed, validator, change, complaint):
    ok = next(r for r in committed["records"] if r["status"] == "ok")
    errors = [e.message for e in validator.iter_errors({**committed, "records": [change(ok)]})]
    assert any(complaint in e for e in errors), errors


def test_an_incomplete_run_says_so_at_the_top_of_every_page_it_refreshed(republished):
    folder, _, _ = republished
    pages = sorted(folder.glob("*.md"))
    assert len(pages) >= 5
    for page in pages:
        first = page.read_text().split("\n", 1)[0]
        if page.name == "ablation-micro_cnn.md":  # not this run's: carried as it was
            assert first == "# What each choice buys"
        else:
            assert first.startswith("> ⚠ Incomplete run") and '"complete": false' in first, page.name
    assert "<body><p><strong>⚠ Incomplete run" in (folder / "explorer.html").read_text()


def test_a_complete_run_has_no_banner(republished):
    _, _, complete = republished
    assert len(complete) >= 5 and not [name for name, text in complete.items() if "Incomplete run" in text]
