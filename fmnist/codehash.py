"""Digests of the code that makes a thing, for cache keys: a code change redoes what it can change
and nothing else.

The digest of a class or function covers its own definition and, found by reading the source
(`ast`, nothing imported or run), every definition of this package it names, transitively:
module-level names of its own module, names imported from other fmnist modules (at the top or
inside a function), and `module.name` through an imported module. So editing LiteRT's session
class changes the digest of LiteRT's measurements and not ONNX Runtime's, and editing the ONNX
converter re-exports ONNX and no TFLite file. Comments, docstrings and formatting do not count:
the definitions are compared as syntax trees.

What cannot be seen statically (a runtime picked by name at run time, a method called on a
parameter) the caller names explicitly: `code_digest(measure, type(runtime))`.
"""
from __future__ import annotations

import ast
import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "fmnist"
ROOT = Path(__file__).parent


def _module_file(module: str) -> Path | None:
    parts = module.split(".")[1:]
    base = ROOT.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _resolve_import(node: ast.ImportFrom | ast.Import, module: str) -> dict:
    """Local name -> (module, attribute or None for a whole module), for fmnist imports only."""
    found = {}
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name.split(".")[0] == PACKAGE:
                found[alias.asname or alias.name.split(".")[0]] = (alias.asname and alias.name or PACKAGE, None)
        return found
    source = node.module or ""
    if node.level:  # relative: from the module's package
        package = module.split(".")[:-node.level] if not module.endswith("__init__") else module.split(".")
        source = ".".join([*package, *([source] if source else [])])
    if source.split(".")[0] != PACKAGE:
        return found
    for alias in node.names:
        submodule = f"{source}.{alias.name}"
        found[alias.asname or alias.name] = (submodule, None) if _module_file(submodule) else (source, alias.name)
    return found


def _canonical(node: ast.AST) -> str:
    """The definition as a syntax tree, without docstrings (a reworded docstring changes nothing)."""
    node = ast.parse(ast.unparse(node))  # a copy
    for inner in ast.walk(node):
        body = getattr(inner, "body", None)
        if (isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            inner.body = body[1:] or [ast.Pass()]
    return ast.dump(node)


@dataclass
class _Module:
    definitions: dict = field(default_factory=dict)   # name -> top-level statement defining it
    aliases: dict = field(default_factory=dict)       # name -> (module, attribute | None)


@functools.lru_cache(maxsize=None)
def _parse(module: str) -> _Module:
    path = _module_file(module)
    parsed = _Module()
    if path is None:
        return parsed
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            parsed.aliases.update(_resolve_import(node, module))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            parsed.definitions[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        parsed.definitions[name.id] = node
    return parsed


def _walk(node: ast.AST):
    """ast.walk without type annotations: an annotation changes no result."""
    todo = [node]
    while todo:
        node = todo.pop()
        yield node
        skip = {id(getattr(node, "annotation", None)), id(getattr(node, "returns", None))}
        todo += [child for child in ast.iter_child_nodes(node) if id(child) not in skip]


def _references(node: ast.AST, module: str) -> set[tuple[str, str]]:
    """(module, name) of every fmnist definition the statement names (annotations aside)."""
    parsed = _parse(module)
    aliases = dict(parsed.aliases)
    refs = set()
    for inner in _walk(node):
        if isinstance(inner, (ast.Import, ast.ImportFrom)):  # imports inside a function
            local = _resolve_import(inner, module)
            aliases.update(local)
            refs |= {target for target in local.values() if target[1] is not None}
    for inner in _walk(node):
        if isinstance(inner, ast.Attribute) and isinstance(inner.value, ast.Name):
            target = aliases.get(inner.value.id)
            if target and target[1] is None:
                refs.add((target[0], inner.attr))
        elif isinstance(inner, ast.Name):
            if inner.id in parsed.definitions:
                refs.add((module, inner.id))
            elif inner.id in aliases and aliases[inner.id][1] is not None:
                refs.add(aliases[inner.id])
    return refs


def _definition(module: str, name: str, seen: frozenset = frozenset()):
    """The statement defining `name` in `module`, following re-exports; None when not ours."""
    parsed = _parse(module)
    if name in parsed.definitions:
        return module, parsed.definitions[name]
    target = parsed.aliases.get(name)
    if target and target[1] is not None and (module, name) not in seen:
        return _definition(*target, seen | {(module, name)})
    return None


@functools.lru_cache(maxsize=None)
def _digest(roots: tuple[tuple[str, str], ...], exclude: tuple[str, ...]) -> str:
    todo, done, parts = list(roots), set(), []
    while todo:
        module, name = todo.pop()
        if (module, name) in done or module in exclude or module == __name__:  # keys, not what they key
            continue
        done.add((module, name))
        found = _definition(module, name)
        if found is None:
            continue
        where, node = found
        parts.append(f"{where}:{name}:{_canonical(node)}")
        todo += sorted(_references(node, where))
    return hashlib.sha256("\n".join(sorted(set(parts))).encode()).hexdigest()


def _root(obj) -> tuple[str, str]:
    obj = obj if isinstance(obj, type) or callable(obj) and hasattr(obj, "__qualname__") else type(obj)
    return obj.__module__, obj.__qualname__.split(".")[0]


def code_digest(*objects, exclude: tuple[str, ...] = ()) -> str:
    """SHA-256 over the definitions of `objects` (classes, functions, or instances: their class)
    and of every fmnist definition they reach; modules in `exclude` are not followed."""
    return _digest(tuple(sorted(_root(o) for o in objects)), tuple(exclude))
