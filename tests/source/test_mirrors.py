"""Default mirrors come from the machine's apt sources; explicit choices win."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.core.errors import InputError
from builder.source.mirrors import (
    MIRROR_ENV,
    choose_mirrors,
    default_mirrors,
    mirrors_by_suite,
    split_mirror,
)


@pytest.fixture
def apt_etc(tmp_path: Path) -> Path:
    etc = tmp_path / "apt"
    (etc / "sources.list.d").mkdir(parents=True)
    (etc / "sources.list").write_text(
        "# comment\n"
        "deb http://one.example.org/debian bookworm main\n"
        "deb-src http://src.example.org/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] http://two.example.org/debian/ "
        "bookworm main contrib\n"
        "deb http://sec.example.org/debian-security bookworm-security main\n"
    )
    (etc / "sources.list.d" / "b.sources").write_text(
        "Types: deb deb-src\n"
        "# a comment inside the stanza\n"
        "URIs: http://three.example.org/debian file:///srv/mirror\n"
        "Suites: bookworm bookworm-updates\n"
        "Components: main\n"
        "\n"
        "Types: deb\n"
        "URIs: http://disabled.example.org/debian\n"
        "Suites: bookworm\n"
        "Components: main\n"
        "Enabled: no\n"
        "\n"
        "Types: deb\n"
        "URIs: http://one.example.org/debian\n"
        "Suites: bookworm\n"
        "Components: main\n"
    )
    (etc / "sources.list.d" / "a.list").write_text("deb http://four.example.org/d trixie main\n")
    (etc / "sources.list.d" / "c.list.disabled").write_text(
        "deb http://no.example.org/ bookworm main\n"
    )
    return etc


def test_default_mirrors_read_both_apt_formats_in_order(apt_etc: Path) -> None:
    assert default_mirrors("bookworm", apt_etc) == [
        "http://one.example.org/debian",
        "http://two.example.org/debian",
        "http://three.example.org/debian",
        "file:///srv/mirror",
    ]
    assert default_mirrors("trixie", apt_etc) == ["http://four.example.org/d"]
    assert default_mirrors("bookworm-security", apt_etc) == [
        "http://sec.example.org/debian-security"
    ]
    assert default_mirrors("sid", apt_etc) == []


def test_no_apt_configuration_means_no_default(tmp_path: Path) -> None:
    assert default_mirrors("bookworm", tmp_path / "none") == []


def test_explicit_then_environment_then_apt(apt_etc: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MIRROR_ENV, "http://env.example.org/a /srv/b")
    assert choose_mirrors(["/srv/x"], "bookworm", apt_etc) == ["/srv/x"]
    assert choose_mirrors([], "bookworm", apt_etc) == ["http://env.example.org/a", "/srv/b"]
    monkeypatch.delenv(MIRROR_ENV)
    assert choose_mirrors([], "bookworm", apt_etc)[0] == "http://one.example.org/debian"


def test_split_mirror_tells_suite_entries_from_urls_and_paths() -> None:
    assert split_mirror("bookworm-security=http://sec.example.org/d") == (
        "bookworm-security",
        "http://sec.example.org/d",
    )
    assert split_mirror("bookworm=/srv/bundle") == ("bookworm", "/srv/bundle")
    # URLs and paths hold ':' or '/' before any '=': never a suite.
    for entry in ("http://one.example.org/d?a=b", "/srv/a=b", "file:///x=y", "./bundle"):
        assert split_mirror(entry) == (None, entry)
    with pytest.raises(InputError, match="no URL after bookworm="):
        split_mirror("bookworm=")


def test_suite_entries_apply_to_their_suite_only(
    apt_etc: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    explicit = ["/srv/bundle", "bookworm-security=http://sec.example.org/s"]
    # Every entry that applies, in the order given.
    assert choose_mirrors(explicit, "bookworm-security", apt_etc) == [
        "/srv/bundle",
        "http://sec.example.org/s",
    ]
    assert choose_mirrors(explicit, "bookworm", apt_etc) == ["/srv/bundle"]
    # Only another suite's entry: this suite falls back to the apt sources.
    only_security = ["bookworm-security=http://sec.example.org/s"]
    assert choose_mirrors(only_security, "bookworm", apt_etc)[0] == "http://one.example.org/debian"
    assert mirrors_by_suite(only_security, ["bookworm", "bookworm-security"], apt_etc) == {
        "bookworm": default_mirrors("bookworm", apt_etc),
        "bookworm-security": ["http://sec.example.org/s"],
    }


def test_environment_may_name_suites(apt_etc: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MIRROR_ENV, "bookworm=/srv/main bookworm-security=/srv/sec trixie=/srv/t")
    assert mirrors_by_suite([], ["bookworm", "bookworm-security", "bookworm-updates"], apt_etc) == {
        "bookworm": ["/srv/main"],
        "bookworm-security": ["/srv/sec"],
        # Not named in the environment: the apt sources for that suite.
        "bookworm-updates": ["http://three.example.org/debian", "file:///srv/mirror"],
    }


def test_explicit_entry_for_an_unknown_suite_is_refused(apt_etc: Path) -> None:
    with pytest.raises(InputError, match="the recipe has no suite 'bookworm-securty'"):
        mirrors_by_suite(["bookworm-securty=/srv/s"], ["bookworm", "bookworm-security"], apt_etc)
