"""The published pages as a reader's renderer sees them: results/ is published from the committed
benchmark.json (a real run), every page is parsed as CommonMark with GFM tables (markdown-it-py),
and every table must come out with exactly the headers and cells it was built from."""
import csv
import json
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from fmnist.report import analysis, gfm, publish

RESULTS = Path(__file__).resolve().parent.parent / "results"
MD = MarkdownIt("commonmark").enable("table")
MAX_PAGE_LINES = 400


def text(inline) -> str:
    """What a reader sees of a cell: its inline children's text, whitespace collapsed."""
    return " ".join("".join(child.content for child in inline.children or []).split())


def parsed_tables(markdown: str) -> list[list[list[str]]]:
    """Each table on the page: its header row, then its body rows, as the cells' text."""
    tables, row, tokens = [], None, MD.parse(markdown)
    for i, token in enumerate(tokens):
        if token.type == "table_open":
            tables.append([])
        elif token.type == "tr_open":
            row = []
        elif token.type in ("th_open", "td_open"):
            row.append(text(tokens[i + 1]))
        elif token.type == "tr_close":
            tables[-1].append(row)
    return tables


def as_built(headers, rows) -> list[list[str]]:
    """A table as `gfm.table` handed it to tabulate, each cell as a lone inline would render."""
    return [[text(MD.parseInline(str(cell))[0]) for cell in line] for line in [headers, *rows]]


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """(folder, document, the tables built while publishing) for results/ published from the
    committed run, device results included."""
    document = json.loads((RESULTS / "benchmark.json").read_text())
    devices = [json.loads(p.read_text()) for p in sorted((RESULTS / publish.DEVICES_DIR).glob("*.json"))]
    built = []
    real = gfm.tabulate
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gfm, "tabulate", lambda rows, headers, **kw: built.append(as_built(headers, rows))
                      or real(rows, headers, **kw))
        folder = tmp_path_factory.mktemp("published") / "results"
        written = publish.publish_benchmark(document, folder, new_devices=devices)
    return folder, written, built


def test_every_table_of_every_page_renders_with_the_cells_it_was_built_from(published):
    folder, _, built = published
    pages = sorted(folder.glob("*.md"))
    made = {p.name for p in pages}
    assert {"README.md", "accuracy.md", "latency.md", "size.md", "quantization.md", "micro.md"} <= made
    unmatched = list(built)
    for page in pages:
        markdown = page.read_text()
        tables = parsed_tables(markdown)
        delimiter_rows = [line for line in markdown.splitlines() if line.startswith("|-")]
        assert len(tables) == len(delimiter_rows), f"{page.name}: a table does not parse as one"
        for found in tables:
            assert found in unmatched, f"{page.name}: table {found[0]} is not as built"
            unmatched.remove(found)
    assert not unmatched, f"tables built but not on any page: {[t[0] for t in unmatched]}"


def test_a_cell_with_pipes_and_line_breaks_stays_one_cell():
    rows = [["a | b", "x\ny", None], ["`c|d`", "[link](l.md)", "e\\f"]]
    parsed, = parsed_tables(gfm.table(rows, ["max |Δp|", "two", "three"]))
    assert parsed == [["max |Δp|", "two", "three"], ["a | b", "x y", ""], ["c|d", "link", "e\\f"]]


def test_pages_stay_short_and_their_csvs_hold_every_row(published):
    folder, document, _ = published
    for page in folder.glob("*.md"):
        assert len(page.read_text().splitlines()) <= MAX_PAGE_LINES, page.name
    host = analysis.host_rows(document["records"])
    ok = analysis.ok_rows(host)
    expected = {"accuracy.csv": len(ok), "latency.csv": len(ok),
                "size.csv": len({(r["model"], r["variant"], r["format"]) for r in ok}),
                "layers.csv": sum(len(e["layers"]) for e in document["layer_errors"]),
                "micro.csv": len(analysis.ok_rows(analysis.micro_rows(host))),
                "npu.csv": len(analysis.estimate_rows(host))}
    for name, count in expected.items():
        with open(folder / name, newline="") as f:
            header, *lines = list(csv.reader(f))
        assert len(lines) == count > gfm.LONG, name
        assert all(len(line) == len(header) for line in lines), name
        page = next(p for p in folder.glob("*.md") if f"]({name})" in p.read_text())
        assert sum(len(t) - 1 for t in parsed_tables(page.read_text())) < count  # the page keeps the best rows


def test_the_csv_keeps_raw_values_and_the_page_shows_the_best_rows(published):
    folder, document, _ = published
    with open(folder / "latency.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    ok = analysis.ok_rows(analysis.host_rows(document["records"]))
    assert [float(r["p50 µs"]) for r in rows] == pytest.approx([r["latency_us"]["p50"] for r in ok], rel=1e-6)
    fastest = min((r for r in ok if r["model"] == "edge_cnn" and analysis.is_edge(r)
                   and analysis.sound(r, r["source_accuracy"])), key=lambda r: r["latency_us"]["p50"])
    page = parsed_tables((folder / "latency.md").read_text())[0]
    line = next(row for row in page if row[0] == "edge_cnn")
    assert line[1:4] == [fastest["variant"], fastest["format"], fastest["runtime"]]
