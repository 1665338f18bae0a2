"""The documentation runs as written: every `fmnist-train`, `fmnist-export` and `fmnist-bench`
command (`pack` and `merge` included, and `tox -e bench -- ARGS`, which is `fmnist-bench ARGS`) in
a fenced shell block of README.md and docs/*.md parses with the command's own argparse parser, and
names only models, formats, runtimes and variants that exist. Nothing is run: the parser is stopped
right after parsing. Also: the README stays a short user guide, and its links and docs/' resolve."""
from __future__ import annotations

import argparse
import importlib
import re
import shlex
import tomllib
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

ROOT = Path(__file__).parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMANDS = ("fmnist-train", "fmnist-export", "fmnist-bench")
SHELLS = {"sh", "bash", "shell", "console", "zsh"}
OPERATORS = {";", "&&", "||", "|", "&"}
TOX_ENVS = {"bench": "fmnist-bench"}  # tox.ini: [testenv:bench] commands = fmnist-bench {posargs}
README_MAX_LINES = 160


def shell_blocks(path: Path):
    """(first line number, text) of each fenced shell block of a Markdown file."""
    for token in MarkdownIt("commonmark").parse(path.read_text()):
        if token.type == "fence" and token.info.strip().split(" ")[0].lower() in SHELLS:
            yield token.map[0] + 2, token.content


def simple_commands(text: str):
    """Each simple command of a shell block (continuations joined, comments, prompts and operators
    split off) as its words."""
    for line in text.replace("\\\n", " ").splitlines():
        line = re.sub(r"^\s*\$ ", "", line)
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words = []
        for word in [*lexer, ";"]:
            if word in OPERATORS:
                while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):  # VAR=value prefixes
                    words.pop(0)
                if words:
                    yield words
                words = []
            else:
                words.append(word)


def fmnist_command(words: list[str]) -> list[str] | None:
    """The fmnist command line these words run, or None."""
    if words[0] in COMMANDS:
        return words
    if words[:2] == ["tox", "-e"] and len(words) > 2 and words[2] in TOX_ENVS:
        rest = words[3:]
        return [TOX_ENVS[words[2]], *(rest[rest.index("--") + 1:] if "--" in rest else [])]
    return None


def documented():
    found = []
    for path in DOCS:
        for line, text in shell_blocks(path):
            for words in simple_commands(text):
                command = fmnist_command(words)
                if command:
                    found.append(pytest.param(command, id=f"{path.relative_to(ROOT)}:{line}:{shlex.join(command)}"))
    return found


COMMAND_LINES = documented()


def entry_point(command: str):
    """The main function pyproject.toml installs as `command`."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, function = scripts[command].split(":")
    return getattr(importlib.import_module(module), function)


class Parsed(BaseException):
    """Raised right after a parser has parsed its arguments. A BaseException, so the commands'
    error handling (which turns an Exception into a one-line message and exit code) lets it by."""

    def __init__(self, prog: str, namespace: argparse.Namespace):
        super().__init__(prog)
        self.prog, self.namespace = prog, namespace


@pytest.fixture
def stop_after_parsing(monkeypatch, tmp_path):
    """Every parser raises Parsed once it has parsed; a usage error still exits 2 as it would. As a
    second guard, should a command get past its parser all the same, it would find no data and
    write nothing here: the current folder, exports and data folder are the test's own, empty."""
    from fmnist import arguments
    patched = {argparse.ArgumentParser}
    patched |= {arguments.OneLineParser} if "parse_args" in vars(arguments.OneLineParser) else set()
    for cls in patched:
        original = cls.parse_args

        def parse_args(self, args=None, namespace=None, _original=original):
            raise Parsed(self.prog, _original(self, args, namespace))
        monkeypatch.setattr(cls, "parse_args", parse_args)
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("FMNIST_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FMNIST_EXPORTS", str(tmp_path / "exports"))
    monkeypatch.chdir(tmp_path)


def unknown_names(namespace: argparse.Namespace) -> list[str]:
    """The names a parsed command line gives that no registry knows (checked after parsing by the
    commands themselves, so a command can parse and still be refused)."""
    from fmnist import user, variants
    from fmnist.export import list_formats
    from fmnist.jobs import NATIVE_FORMAT
    from fmnist.models import list_models
    from fmnist.runtimes import list_runtimes
    from fmnist.registry import UnknownName

    def variant(name):
        try:
            return bool(variants.get_variant(name))
        except UnknownName:
            return False
    models = set(list_models())
    known = {"model": lambda n: n in models or user.is_reference(n), "models": lambda n: n in models or user.is_reference(n),
             "format": {NATIVE_FORMAT, "all", *list_formats()}.__contains__, "runtime": set(list_runtimes()).__contains__,
             "variant": variant}
    unknown = []
    for option, is_known in known.items():
        given = getattr(namespace, option, None) or []
        unknown += [f"--{option} {name}" for name in ([given] if isinstance(given, str) else given) if not is_known(name)]
    return unknown


def test_the_docs_hold_the_commands_a_user_needs():
    readme = [shlex.join(p.values[0]) for p in COMMAND_LINES if p.id.startswith("README.md:")]
    for expected in ("fmnist-bench --model mlp128 --no-qat --no-prune", "fmnist-bench pack", "fmnist-bench merge",
                     "fmnist-bench --cluster", "fmnist-bench --model path/to/model.keras"):
        assert any(line.startswith(expected) for line in readme), expected
    assert {p.values[0][0] for p in COMMAND_LINES} == set(COMMANDS)


@pytest.mark.parametrize("command", COMMAND_LINES)
def test_a_documented_command_parses_with_its_own_parser(command, stop_after_parsing):
    main = entry_point(command[0])
    with pytest.raises(Parsed) as parsed:
        main(command[1:])  # a usage error is SystemExit(2), and fails the test
    assert parsed.value.prog.startswith(command[0])
    if command[1:2] in (["pack"], ["merge"]) and parsed.value.prog != command[0]:
        assert parsed.value.prog == f"{command[0]} {command[1]}"
    assert unknown_names(parsed.value.namespace) == []


def test_the_tox_environments_the_docs_map_run_what_they_say():
    tox = (ROOT / "tox.ini").read_text()
    for env, command in TOX_ENVS.items():
        section = tox.split(f"[testenv:{env}]")[1].split("\n[")[0]
        assert f"{command} {{posargs}}" in section


def test_the_readme_is_a_short_user_guide():
    assert len((ROOT / "README.md").read_text().splitlines()) <= README_MAX_LINES


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_to_the_docs_resolve(path):
    """Links to files of the repository outside results/ (written by a run, not by hand) exist, and
    an anchor into README.md or docs/ names a heading there."""
    text = path.read_text()
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"^[a-z]+://", target):
            continue
        file, _, anchor = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        if ROOT / "results" in linked.parents:
            continue
        assert linked.exists(), f"{path.name}: {target}"
        if anchor and linked.suffix == ".md":
            assert anchor in anchors(linked), f"{path.name}: {target}"


def anchors(path: Path) -> set[str]:
    """GitHub's anchors for the headings of a Markdown file."""
    found = set()
    for heading in re.findall(r"^#{1,6} (.+)$", path.read_text(), flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found
