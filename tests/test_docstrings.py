"""The public API keeps numpy-style docstrings: every parameter named, a Returns section where it returns.

Walks every public module of ssmctl (names not starting with ``_``) and each name in its ``__all__`` that is a
function or class defined there (re-exports are checked where they are defined), and the public methods and
properties those classes define themselves (an override may inherit its docstring, as ``inspect.getdoc`` does).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import pytest

import ssmctl

_SECTION_RULE = re.compile(r"^\s*-{3,}\s*$")


def _public_objects():
    found = []
    for info in pkgutil.walk_packages(ssmctl.__path__, "ssmctl."):
        if info.name.split(".")[-1].startswith("_"):
            continue
        module = importlib.import_module(info.name)
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name, None)
            if obj is None or not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            if obj.__module__ != module.__name__:
                continue
            found.append((f"{info.name}.{name}", obj))
    return found


def _public_members(classes):
    """(qualified name, function, docstring) of the public methods and properties each class defines."""
    found = []
    for qual, cls in classes:
        for name, raw in vars(cls).items():
            if name.startswith("_"):
                continue
            if isinstance(raw, property):
                func, doc = raw.fget, inspect.getdoc(raw)
            elif isinstance(raw, (staticmethod, classmethod)):
                func, doc = raw.__func__, inspect.getdoc(getattr(cls, name))
            elif inspect.isfunction(raw):
                func, doc = raw, inspect.getdoc(getattr(cls, name))
            else:
                continue
            found.append((f"{qual}.{name}", func, doc or "", isinstance(raw, property)))
    return found


PUBLIC = _public_objects()
FUNCTIONS = [(qual, obj, inspect.getdoc(obj) or "") for qual, obj in PUBLIC if inspect.isfunction(obj)]
MEMBERS = _public_members([(qual, obj) for qual, obj in PUBLIC if inspect.isclass(obj)])
CALLABLES = FUNCTIONS + [(qual, func, doc) for qual, func, doc, is_property in MEMBERS if not is_property]


def sections(doc: str) -> dict[str, list[str]]:
    """Split a numpy-style docstring into its sections: header line followed by a dashed rule."""
    lines = doc.splitlines()
    out: dict[str, list[str]] = {}
    current = None
    i = 0
    while i < len(lines):
        if i + 1 < len(lines) and lines[i].strip() and _SECTION_RULE.match(lines[i + 1]):
            current = lines[i].strip()
            out[current] = []
            i += 2
            continue
        if current is not None:
            out[current].append(lines[i])
        i += 1
    return out


def documented_parameters(lines: list[str]) -> set[str]:
    """Names declared in a Parameters section: unindented lines ``name : type`` (``a, b : type`` names both)."""
    indent = min((len(ln) - len(ln.lstrip()) for ln in lines if ln.strip()), default=0)
    names: set[str] = set()
    for line in lines:
        if not line.strip() or len(line) - len(line.lstrip()) != indent:
            continue
        head = line.split(" : ", 1)[0] if " : " in line else line
        for part in head.split(","):
            name = part.strip().replace("\\", "").lstrip("*")
            if name.isidentifier():
                names.add(name)
    return names


def signature_parameters(func) -> list[str]:
    return [name for name in inspect.signature(func).parameters if name not in ("self", "cls")]


def test_walk_finds_the_api():
    names = {qual for qual, _ in PUBLIC}
    # a few names from different corners of the package, so an empty walk cannot pass
    for expected in ("ssmctl.systems.lti.DiagonalLTI", "ssmctl.analysis.response.impulse_response",
                     "ssmctl.cli.app.main", "ssmctl.models.base.init"):
        assert expected in names
    assert len(FUNCTIONS) > 100
    members = {qual for qual, *_ in MEMBERS}
    assert "ssmctl.systems.lti.DiagonalLTI.augmented" in members and "ssmctl.models.base.Layer.kind" in members


def test_sections_parser_on_a_sample():
    doc = "Summary.\n\nParameters\n----------\nx, y : array_like, shape (N,)\n    Data.\n*args : int\n" \
          "    Extra.\n\\*\\*kw : dict\n    More.\n\nReturns\n-------\nfloat\n    Sum.\n"
    parsed = sections(doc)
    assert set(parsed) == {"Parameters", "Returns"}
    assert documented_parameters(parsed["Parameters"]) == {"x", "y", "args", "kw"}


@pytest.mark.parametrize("qual,obj", PUBLIC, ids=[qual for qual, _ in PUBLIC])
def test_has_docstring(qual, obj):
    assert (inspect.getdoc(obj) or "").strip(), f"{qual} has no docstring"


@pytest.mark.parametrize("qual,doc", [(q, d) for q, _, d, _ in MEMBERS], ids=[q for q, *_ in MEMBERS])
def test_member_has_docstring(qual, doc):
    assert doc.strip(), f"{qual} has no docstring"


@pytest.mark.parametrize("qual,func,doc", CALLABLES, ids=[qual for qual, *_ in CALLABLES])
def test_function_docstring_is_numpy_style(qual, func, doc):
    params = signature_parameters(func)
    if not params:
        return
    parsed = sections(doc)
    assert "Parameters" in parsed, f"{qual}: no Parameters section"
    missing = [p for p in params if p not in documented_parameters(parsed["Parameters"])]
    assert not missing, f"{qual}: Parameters section does not name {missing}"
    returns_none = inspect.signature(func).return_annotation in (None, "None")
    if not returns_none:
        assert "Returns" in parsed or "Yields" in parsed, f"{qual}: no Returns/Yields section"
