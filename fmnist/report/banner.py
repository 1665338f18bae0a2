"""The banner of an incomplete run: a refresh in the middle of a run writes the pages of what it has
so far, and a run that is stopped leaves them, so each page it refreshed says so on its first line."""
from __future__ import annotations

import html
from pathlib import Path

from fmnist.atomic import write_text


def incomplete_banner(document: dict) -> str | None:
    """The line, or None for a complete run."""
    if document.get("complete", True):
        return None
    return (f"⚠ Incomplete run: written at {document['environment']['date']} while a run was still going "
            f"({len(document['records']):,} rows so far); if no run is going now, it stopped before the end and "
            f"rows and pages are missing (benchmark.json: \"complete\": false).")


def mark_incomplete(folder: Path, document: dict, carried) -> None:
    """The banner at the top of every page in `folder` but the `carried` ones (not this run's)."""
    banner = incomplete_banner(document)
    if not banner:
        return
    for page in sorted(Path(folder).glob("*.md")):
        if page.name not in carried:
            write_text(page, f"> {banner}\n\n{page.read_text()}")
    explorer = Path(folder) / "explorer.html"
    if explorer.exists():
        write_text(explorer, explorer.read_text().replace("<body>", f"<body><p><strong>{html.escape(banner)}"
                                                                    f"</strong></p>", 1))
