"""Recipe loading: defaults, and every problem reported at once with its file and path."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.cli import main
from builder.core.errors import EXIT_BAD_INPUT, InputError, ValidationErrors
from builder.source.recipe import DEFAULT_BOOT_PACKAGES, DEFAULT_KEYRING, load_recipe

MINIMAL = 'name: mini\nversion: "1"\ndistribution: {suite: bookworm}\npackages: [busybox-static]\n'


def write(tmp_path: Path, text: str, name: str = "mini") -> Path:
    recipes = tmp_path / "recipes"
    recipes.mkdir(exist_ok=True)
    path = recipes / f"{name}.yaml"
    path.write_text(text)
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ValidationErrors) as info:
        load_recipe(path)
    return info.value.problems


def test_minimal_recipe_gets_documented_defaults(tmp_path: Path) -> None:
    recipe = load_recipe(write(tmp_path, MINIMAL))
    assert recipe.name == "mini"
    assert recipe.kernel == "linux-image-amd64"
    assert recipe.packages == ("busybox-static",)
    assert recipe.distribution.architecture == "amd64"
    assert recipe.distribution.components == ("main",)
    assert recipe.distribution.keyring == DEFAULT_KEYRING
    assert recipe.rootfs.variant == "essential"
    assert recipe.rootfs.format == "squashfs"
    assert recipe.boot.packages == DEFAULT_BOOT_PACKAGES
    assert recipe.source_date_epoch is None
    assert recipe.data_partition is None
    assert recipe.project_dir == tmp_path
    assert recipe.lock_path == tmp_path / "recipes" / "mini.lock.json"


def test_every_problem_is_reported_at_once_with_its_path(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "name: Bad_Name\n"
        "version: 2026.1\n"
        "colour: blue\n"
        "distribution:\n"
        "  suite: bookworm\n"
        "  architecture: i386\n"
        "  keyring: keys/missing.gpg\n"
        "  mirror: http://example.org/\n"
        "packages: [python3, PyThOn, python3]\n"
        "overlays: [overlays/nothing]\n"
        "variables: {ok: 1, 'bad-name': 2}\n"
        "files:\n"
        "  - {path: relative/x, mode: '999'}\n"
        "rootfs: {format: ext4, variant: minbase}\n"
        "boot:\n"
        "  cmdline: [quiet, 'boothkey.roothash=00']\n"
        "  init: sbin/init\n"
        "source_date_epoch: -5\n"
        "data_partition: {size_mib: 0}\n",
    )
    found = problems_of(path)
    shown = str(path)
    expected_places = [
        "name: invalid value 'Bad_Name'",
        "version: write the version as a quoted string",
        "colour: unknown key",
        "distribution.architecture: 'i386' is not one of: amd64",
        "distribution.keyring: no such file 'keys/missing.gpg'",
        "distribution.mirror: unknown key",
        "packages[1]: invalid value 'PyThOn'",
        "packages[2]: duplicate entry 'python3'",
        "overlays[0]: no such directory 'overlays/nothing'",
        "variables.bad-name: variable names are letters, digits and _",
        "files[0].path: 'relative/x' must be absolute",
        "files[0].mode: expected an octal string",
        "rootfs.format: 'ext4' is not one of: squashfs, erofs",
        "rootfs.variant: 'minbase' is not one of: essential, extract, custom",
        "boot.cmdline[1]: 'boothkey.roothash=00': not for a recipe: boothkey.* parameters are the build's",
        "boot.init: 'sbin/init' must be an absolute path",
        "source_date_epoch: expected a non-negative integer",
        "data_partition.size_mib: expected 1..1024 MiB, got 0",
    ]
    for place in expected_places:
        assert any(p.startswith(f"{shown}: {place}") for p in found), place
    assert len(found) == len(expected_places)


def test_missing_required_keys_are_named(tmp_path: Path) -> None:
    found = problems_of(write(tmp_path, "distribution: {}\n"))
    shown = str(tmp_path / "recipes" / "mini.yaml")
    for key in ("name", "version", "packages", "distribution.suite"):
        assert f"{shown}: {key}: missing required key" in found


def test_compression_must_suit_the_format(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "rootfs: {format: erofs, compression: zstd}\n")
    assert problems_of(path) == [
        f"{path}: rootfs.compression: 'zstd' is not available for erofs (choose: lz4, lz4hc, none)"
    ]


def test_data_partition_and_epoch_are_read(tmp_path: Path) -> None:
    recipe = load_recipe(
        write(tmp_path, MINIMAL + "data_partition: {size_mib: 4}\nsource_date_epoch: 1700000000\n")
    )
    assert recipe.data_partition is not None and recipe.data_partition.size_mib == 4
    assert recipe.source_date_epoch == 1700000000


def test_supplier_is_one_line_of_plain_text(tmp_path: Path) -> None:
    assert load_recipe(write(tmp_path, MINIMAL)).supplier is None
    recipe = load_recipe(write(tmp_path, MINIMAL + "supplier: Ville de Liège\n"))
    assert recipe.supplier == "Ville de Liège"
    for bad in ('"a\\u202eb"', '"x (y@example.org)"', '"a\\nb"', "x" * 201, "[1]"):
        found = problems_of(write(tmp_path, MINIMAL + f"supplier: {bad}\n"))
        assert len(found) == 1 and ": supplier: " in found[0], (bad, found)


def test_supplier_contact_is_an_email_address_or_a_url(tmp_path: Path) -> None:
    supplier = MINIMAL + "supplier: Ville de Liège\n"
    assert load_recipe(write(tmp_path, supplier)).supplier_contact is None
    for good in ("sbom@example.org", "https://example.org/sbom", "http://example.org"):
        recipe = load_recipe(write(tmp_path, supplier + f"supplier_contact: {good}\n"))
        assert recipe.supplier_contact == good
    for bad in ("example.org", '"a b@example.org"', '"x@example.org\u200b"', "ftp://example.org",
                '"(x@example.org)"', '"mailto:x@example.org)"', "x" * 190 + "@example.org"):  # fmt: skip
        found = problems_of(write(tmp_path, supplier + f"supplier_contact: {bad}\n"))
        assert len(found) == 1 and ": supplier_contact: " in found[0], (bad, found)
    # A contact says how to reach the supplier: without one it means nothing.
    found = problems_of(write(tmp_path, MINIMAL + "supplier_contact: x@example.org\n"))
    assert len(found) == 1 and "without a supplier" in found[0], found


def test_the_recipes_own_licence_and_copyright(tmp_path: Path) -> None:
    """What the recipe adds (its overlays): an SPDX expression of licence-list ids and
    one line of text, the image's own entry in the SBOMs."""
    recipe = load_recipe(write(tmp_path, MINIMAL))
    assert (recipe.licence, recipe.copyright) == (None, None) or (
        recipe.licence is None and recipe.copyright is None
    )
    for good in ("EUPL-1.2", '"GPL-2.0-or-later WITH Classpath-exception-2.0 OR MIT"',
                 '"(MIT OR Apache-2.0) AND BSD-3-Clause"'):  # fmt: skip
        recipe = load_recipe(write(tmp_path, MINIMAL + f"licence: {good}\ncopyright: 2026 X\n"))
        assert recipe.licence == good.strip('"') and recipe.copyright == "2026 X"
    for bad, why in (
        ('"MIT OR"', "incomplete"),
        ('"AND MIT"', "where a licence id belongs"),
        ('"MIT Apache-2.0"', "'Apache-2.0' where"),
        ('"(MIT"', "incomplete"),
        ('"MIT)"', "unbalanced"),
        ("LicenseRef-booth", "only SPDX licence-list ids"),
        ('"MIT; rm -rf"', "'MIT;' where"),
    ):
        found = problems_of(write(tmp_path, MINIMAL + f"licence: {bad}\n"))
        assert len(found) == 1 and ": licence: " in found[0] and why in found[0], (bad, found)
    found = problems_of(write(tmp_path, MINIMAL + 'copyright: "2026 \\u202eX"\n'))
    assert len(found) == 1 and ": copyright: " in found[0], found


def test_the_example_recipes_licence_ids_are_on_the_spdx_list() -> None:
    from license_expression import get_spdx_licensing

    recipe = load_recipe(Path(__file__).resolve().parents[2] / "recipes" / "booth.yaml")
    assert recipe.licence is not None
    assert get_spdx_licensing().validate(recipe.licence).errors == []


def test_not_yaml_not_a_mapping_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not valid YAML"):
        load_recipe(write(tmp_path, "name: [unclosed\n"))
    found = problems_of(write(tmp_path, "- just\n- a list\n"))
    # Only the top-level problem: no "missing required key" for what could not be read.
    assert found == [f"{tmp_path / 'recipes' / 'mini.yaml'}: expected a mapping, got a list"]
    with pytest.raises(InputError, match="cannot read recipe"):
        load_recipe(tmp_path / "recipes" / "absent.yaml")


def test_package_set_digest_follows_only_package_choices(tmp_path: Path) -> None:
    base = load_recipe(write(tmp_path, MINIMAL)).package_set_digest()
    renamed = MINIMAL.replace('version: "1"', 'version: "2"') + "variables: {a: 1}\n"
    assert load_recipe(write(tmp_path, renamed)).package_set_digest() == base
    more = MINIMAL.replace("[busybox-static]", "[busybox-static, python3]")
    assert load_recipe(write(tmp_path, more)).package_set_digest() != base
    variant = MINIMAL + "rootfs: {variant: extract}\n"
    assert load_recipe(write(tmp_path, variant)).package_set_digest() != base


def test_cli_exits_2_and_prints_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "name: x\nversion: 1\ndistribution: {suite: bookworm}\npackages: 3\nbogus: 1\n")
    monkeypatch.chdir(tmp_path)
    assert main(["lock", "recipes/mini.yaml", "--mirror", str(tmp_path / "no-mirror")]) == (
        EXIT_BAD_INPUT
    )
    err = capsys.readouterr().err
    assert err.startswith("boothkey: recipes/mini.yaml: ")
    for place in ("version:", "packages: expected a list", "bogus: unknown key"):
        assert f"recipes/mini.yaml: {place}" in err


def test_update_suites_are_read_and_validated(tmp_path: Path) -> None:
    assert load_recipe(write(tmp_path, MINIMAL)).distribution.updates == ()
    text = MINIMAL.replace(
        "distribution: {suite: bookworm}",
        "distribution: {suite: bookworm, updates: [bookworm-updates, bookworm-security]}",
    )
    distribution = load_recipe(write(tmp_path, text)).distribution
    assert distribution.updates == ("bookworm-updates", "bookworm-security")
    assert distribution.suites == ("bookworm", "bookworm-updates", "bookworm-security")
    bad = MINIMAL.replace(
        "distribution: {suite: bookworm}",
        "distribution: {suite: bookworm, updates: [bookworm, Bookworm-Security, bookworm]}",
    )
    path = write(tmp_path, bad)
    assert problems_of(path) == [
        f"{path}: distribution.updates[1]: invalid value 'Bookworm-Security'",
        f"{path}: distribution.updates[2]: duplicate entry 'bookworm'",
        f"{path}: distribution.updates[0]: 'bookworm' is already the base suite",
        f"{path}: distribution.updates[2]: 'bookworm' is already the base suite",
    ]
    not_a_list = MINIMAL.replace(
        "distribution: {suite: bookworm}", "distribution: {suite: bookworm, updates: bookworm-x}"
    )
    path = write(tmp_path, not_a_list)
    assert problems_of(path) == [f"{path}: distribution.updates: expected a list, got a string"]


def test_update_suites_are_part_of_the_package_set(tmp_path: Path) -> None:
    base = load_recipe(write(tmp_path, MINIMAL)).package_set_digest()
    with_updates = MINIMAL.replace(
        "distribution: {suite: bookworm}",
        "distribution: {suite: bookworm, updates: [bookworm-security]}",
    )
    assert load_recipe(write(tmp_path, with_updates)).package_set_digest() != base


def test_compression_level_is_checked_against_the_compressor(tmp_path: Path) -> None:
    good = load_recipe(
        write(tmp_path, MINIMAL + "rootfs: {compression: zstd, compression_level: 9}\n")
    )
    assert good.rootfs.compression_level == 9
    assert load_recipe(write(tmp_path, MINIMAL)).rootfs.compression_level is None
    cases = {
        "rootfs: {compression: xz, compression_level: 5}\n": "squashfs xz has no level to choose",
        "rootfs: {compression: zstd, compression_level: 23}\n": "23 is outside 1..22",
        "rootfs: {compression: zstd, compression_level: '9'}\n": "expected an integer",
        "rootfs: {format: erofs, compression: lz4hc, compression_level: 13}\n": "outside 0..12",
    }
    for extra, message in cases.items():
        (problem,) = problems_of(write(tmp_path, MINIMAL + extra))
        assert problem.startswith("recipes/mini.yaml: rootfs.compression_level: ") or (
            "rootfs.compression_level: " in problem
        )
        assert message in problem
