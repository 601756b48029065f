"""The package's layers stay one-way: each part of builder imports only the parts below
it (see each subpackage's __init__ docstring and docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BUILDER = Path(__file__).resolve().parent.parent / "builder"
# Lowest first. A part may import itself, anything listed before it, and the package
# root (only its __version__).
LAYERS = (
    "core",
    "formats",
    "trust",
    "transparency",
    "source",
    "build",
    "station",
    "release",
    "observe",
    "commands",
)
TOP_MODULES = {"cli": "commands"}  # builder/cli.py sits with the commands


def part_of(module: str) -> str:
    """ "builder.source.recipe" -> "source"; "builder" -> "" (the root)."""
    parts = module.split(".")
    if parts[0] != "builder":
        raise ValueError(module)
    if len(parts) == 1:
        return ""
    return TOP_MODULES.get(parts[1], parts[1])


def module_name(path: Path) -> str:
    parts = path.relative_to(BUILDER.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def builder_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every builder module that `path` imports."""
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                raise AssertionError(f"{path}:{node.lineno}: relative import; use builder.<part>")
            if node.module and node.module.split(".")[0] == "builder":
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("builder")]
    return found


MODULES = sorted(BUILDER.rglob("*.py"))


def test_every_module_belongs_to_a_layer() -> None:
    parts = {part_of(module_name(path)) for path in MODULES}
    assert parts - {""} == set(LAYERS), "a new part of builder needs a place in LAYERS"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(BUILDER)))
def test_imports_only_go_down(path: Path) -> None:
    here = part_of(module_name(path))
    if here == "":
        assert builder_imports(path) == [], "builder/__init__.py imports nothing of builder"
        return
    rank = LAYERS.index(here)
    upward = [
        f"{path.relative_to(BUILDER.parent)}:{line} imports {module} ({part_of(module)})"
        for line, module in builder_imports(path)
        if part_of(module) and LAYERS.index(part_of(module)) > rank
    ]
    assert not upward, f"{here} may import only {LAYERS[: rank + 1]}:\n" + "\n".join(upward)


def test_the_layer_rule_itself_catches_an_upward_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from builder.observe.verify import measure\n")
    assert builder_imports(bad) == [(1, "builder.observe.verify")]
    assert LAYERS.index(part_of("builder.observe.verify")) > LAYERS.index("core")


def test_tests_mirror_the_parts() -> None:
    # tests/<part>/ holds the tests of builder/<part>/; booth/ the booth payload's, golden/
    # the committed image digests; whole-product tests stay at the top.
    tests = Path(__file__).resolve().parent
    directories = {p.name for p in tests.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert directories - {"booth", "golden"} <= set(LAYERS)
