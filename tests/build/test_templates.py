"""Issue 11, item 3: overlay templates run in Jinja2's sandbox, may include only files of
their own overlay, and every problem is an input error naming the file and line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from builder.build.steps.overlay_files import apply_overlay
from builder.core.errors import EXIT_BAD_INPUT, InputError

LABEL = "overlays/demo"


def render(
    tmp_path: Path, files: dict[str, str], variables: dict[str, object] | None = None
) -> Path:
    """Apply an overlay made of `files` to an empty tree; return the tree."""
    overlay = tmp_path / "overlay"
    for rel, text in files.items():
        (overlay / rel).parent.mkdir(parents=True, exist_ok=True)
        (overlay / rel).write_text(text)
    tree = tmp_path / "tree"
    tree.mkdir(exist_ok=True)
    apply_overlay(overlay, tree, variables or {"name": "booth"}, LABEL)
    return tree


def refusal(tmp_path: Path, files: dict[str, str], **variables: object) -> str:
    with pytest.raises(InputError) as caught:
        render(tmp_path, files, variables or None)
    assert caught.value.exit_code == EXIT_BAD_INPUT
    return caught.value.message


def test_lipsum_globals_cannot_run_commands(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    attack = f"{{{{ lipsum.__globals__['os'].popen('touch {marker}').read() }}}}"
    message = refusal(tmp_path, {"etc/motd.j2": f"Welcome\n{attack}\n"})
    assert message.startswith(f"{LABEL}/etc/motd.j2: line 2: ")
    assert not marker.exists()


@pytest.mark.parametrize(
    "expression",
    [
        "cycler.__init__.__globals__.os.environ",
        "joiner.__init__.__globals__['os'].environ['HOME']",
        "name.__class__.__mro__[1].__subclasses__()",
        "namespace.__init__.__globals__",
        "range.__globals__",
    ],
)
def test_the_sandbox_refuses_python_internals(tmp_path: Path, expression: str) -> None:
    message = refusal(tmp_path, {"etc/x.j2": "a\nb\n{{ " + expression + " }}\n"})
    assert message.startswith(f"{LABEL}/etc/x.j2: line 3: refused by the template sandbox: ")


def test_values_cannot_be_changed(tmp_path: Path) -> None:
    message = refusal(tmp_path, {"etc/x.j2": "{{ items.append(3) }}"}, items=[1, 2])
    assert message.startswith(f"{LABEL}/etc/x.j2: line 1: refused by the template sandbox")


@pytest.mark.parametrize("name", ["/etc/passwd", "../outside.txt", "etc/../../outside.txt"])
def test_include_outside_the_overlay_is_not_found(tmp_path: Path, name: str) -> None:
    (tmp_path / "outside.txt").write_text("host file\n")
    message = refusal(tmp_path, {"etc/x.j2": "ok\n{% include '" + name + "' %}\n"})
    assert message.startswith(f"{LABEL}/etc/x.j2: line 2: template not found: no file {name!r}")


def test_include_through_a_symlink_is_not_found(tmp_path: Path) -> None:
    (tmp_path / "overlay" / "etc").mkdir(parents=True)
    (tmp_path / "secret").write_text("host secret\n")
    os.symlink(tmp_path / "secret", tmp_path / "overlay" / "etc" / "link")
    os.symlink(tmp_path, tmp_path / "overlay" / "up")
    for name in ("etc/link", "up/secret"):
        message = refusal(tmp_path, {"etc/x.j2": "{% include '" + name + "' %}"})
        assert f"{LABEL}/etc/x.j2: line 1: template not found: no file {name!r}" in message


def test_include_of_a_cache_leftover_is_not_found(tmp_path: Path) -> None:
    # Not part of the overlay as the build (and the step id) sees it.
    message = refusal(
        tmp_path,
        {
            "usr/lib/__pycache__/x.txt": "stale\n",
            "etc/x.j2": "{% include 'usr/lib/__pycache__/x.txt' %}",
        },
    )
    assert "template not found" in message


def test_include_and_import_of_overlay_files_work(tmp_path: Path) -> None:
    tree = render(
        tmp_path,
        {
            "usr/share/booth/header.txt": "HEADER\n",
            "usr/share/booth/macros.j2": "{% macro shout(x) %}{{ x|upper }}{% endmacro %}",
            "etc/motd.j2": (
                "{% include 'usr/share/booth/header.txt' %}"
                "{% import 'usr/share/booth/macros.j2' as m %}{{ m.shout(name) }}\n"
            ),
        },
    )
    assert (tree / "etc/motd").read_text() == "HEADER\nBOOTH\n"


def test_an_error_in_an_included_file_names_that_file(tmp_path: Path) -> None:
    message = refusal(
        tmp_path,
        {
            "usr/share/part.txt.j2": "one\ntwo {{ missing }}\n",
            "etc/x.j2": "{% include 'usr/share/part.txt.j2' %}",
        },
    )
    assert message.startswith(f"{LABEL}/usr/share/part.txt.j2: line 2: undefined template variable")


def test_undefined_variable_names_file_line_and_variable(tmp_path: Path) -> None:
    message = refusal(tmp_path, {"etc/x.j2": "a\n{{ nmae }}\n"})
    assert message.startswith(f"{LABEL}/etc/x.j2: line 2: undefined template variable: ")
    assert "'nmae' is undefined" in message


@pytest.mark.parametrize(
    "text", ["{{ lipsum() }}", "{{ [1, 2, 3]|random }}", "{{ 1/0 }}", "{{ 'x' ~ }}"]
)
def test_impure_helpers_and_runtime_errors_are_input_errors(tmp_path: Path, text: str) -> None:
    message = refusal(tmp_path, {"etc/x.j2": "first\n" + text})
    assert message.startswith(f"{LABEL}/etc/x.j2: line 2: ")


def test_a_template_that_includes_itself_is_an_input_error(tmp_path: Path) -> None:
    message = refusal(tmp_path, {"etc/x.j2": "{% include 'etc/x.j2' %}"})
    assert message.startswith(f"{LABEL}/etc/x.j2: line 1: template error: RecursionError")


def test_non_utf8_include_is_named(tmp_path: Path) -> None:
    overlay = tmp_path / "overlay"
    (overlay / "etc").mkdir(parents=True)
    (overlay / "etc" / "latin1.txt").write_bytes(b"caf\xe9\n")
    message = refusal(tmp_path, {"etc/x.j2": "{% include 'etc/latin1.txt' %}"})
    assert message.startswith(f"{LABEL}/etc/latin1.txt: line 1: not UTF-8 text")
