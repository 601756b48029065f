"""The graphical booth's pages, voter state, framebuffer and input devices, on this
machine (the booted image is tested in test_booth_image.py)."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest
from booth_helpers import belgian_envelope, booth_module

gui = booth_module("gui")
election_module = booth_module("election")
raster = booth_module("raster")
screen = booth_module("screen")
inputs = booth_module("inputs")
SIZE = (1280, 800)


def _voter() -> Any:
    payload = base64.b64decode(json.loads(belgian_envelope("0001"))["payload"])
    election = election_module.parse_payload(payload)
    return gui.Voter(election.races, election.languages)


def _tap(voter: Any, action: str, font: Any) -> str:
    """Press the button doing `action` by tapping its middle, as a finger would."""
    page = voter.page()
    for button, x, y, w, h in page.layout(*SIZE, font):
        if button.action == action:
            pressed = page.press_at(x + w // 2, y + h // 2, *SIZE, font)
            assert pressed == button
            return str(voter.press(pressed))
    raise AssertionError(f"no button {action} on {page}")


def test_a_touch_voter_mixing_lists_is_refused_then_casts(tmp_path: Path) -> None:
    font = raster.load_font()
    voter = _voter()
    assert [b.label for b in voter.page().buttons] == ["Nederlands", "Français", "Deutsch"]
    _tap(voter, "lang:de", font)
    assert voter.page().heading == ("Kammer (1/2)",)
    _tap(voter, "list:1", font)
    _tap(voter, "mark:candidate:1-2", font)
    _tap(voter, "back", font)
    assert [b.selected for b in voter.page().buttons][:2] == [True, False]
    _tap(voter, "list:2", font)
    _tap(voter, "mark:candidate:2-S2", font)
    _tap(voter, "next", font)
    assert voter.page().message == (
        "Sie dürfen nur für eine Liste oder für Kandidaten einer Liste stimmen"
    )
    _tap(voter, "back", font)
    _tap(voter, "list:1", font)
    _tap(voter, "mark:candidate:1-2", font)  # unmark
    _tap(voter, "back", font)
    _tap(voter, "list:2", font)
    _tap(voter, "next", font)
    assert voter.page().heading == ("Parlament (2/2)",)
    assert "blank" not in [b.action for b in voter.page().buttons]
    _tap(voter, "list:1", font)
    _tap(voter, "mark:list:1", font)
    _tap(voter, "next", font)
    assert voter.page().lines == (
        "Kammer:",
        "  Liberale Partei: Maes, Ilse",
        "Parlament:",
        "  Groen Links: Listenstimme",
    )
    assert _tap(voter, "yes", font) == "cast"
    assert [vote.to_json() for vote in voter.votes] == [
        {"list": "2", "candidates": ["2-S2"]},
        {"list": "1"},
    ]


def test_the_keyboard_presses_the_numbered_buttons() -> None:
    voter = _voter()
    for key in ("1", "0", "2", "1", "2", "enter"):  # nl; blank; list 2: 2-1, 2-2; next
        button = voter.page().press_key(key)
        assert button is not None, key
        voter.press(button)
    assert voter.reviewing
    assert [vote.to_json() for vote in voter.votes] == [
        {"blank": True},
        {"list": "2", "candidates": ["2-1", "2-2"]},
    ]
    assert voter.page().press_key("back").action == "no"


def test_pages_render_the_same_pixels_every_time() -> None:
    font = raster.load_font()
    page = gui.poll_worker_page("Stembureau", "AAAA-BBBB-CCCC-DDDD", "EEEE-FFFF-GGGG-HHHH", "0001")
    first = page.render(*SIZE, font)
    assert first.pbm() == page.render(*SIZE, font).pbm()
    assert (first.width, first.height) == SIZE
    small = page.render(800, 600, font)
    assert small.pbm() != first.pbm()


def test_framebuffer_shows_a_picture_as_32_bit_pixels(tmp_path: Path) -> None:
    sysfs = tmp_path / "fb0"
    sysfs.mkdir()
    (sysfs / "virtual_size").write_text("4,2\n")
    (sysfs / "bits_per_pixel").write_text("32\n")
    (sysfs / "stride").write_text("20\n")
    device = tmp_path / "fb"
    device.write_bytes(b"\x55" * 40)
    framebuffer = screen.Framebuffer(device, sysfs)
    picture = raster.Bitmap(3, 1)
    picture.fill(1, 0, 1, 1)
    framebuffer.show(picture)
    framebuffer.close()
    white, black = b"\xff" * 4, b"\x00" * 4
    assert device.read_bytes() == (
        white + black + white + white + b"\x55" * 4 + white * 4 + b"\x55" * 4
    )
    (sysfs / "bits_per_pixel").write_text("8\n")
    with pytest.raises(screen.ScreenError, match="8 bits per pixel"):
        screen.Framebuffer(device, sysfs)


def test_inputs_turn_events_into_keys_and_taps(tmp_path: Path) -> None:
    fifo = tmp_path / "event0"
    os.mkfifo(fifo)
    reader = inputs.Inputs(100, 50, tmp_path)
    writer = os.open(fifo, os.O_RDWR)
    try:
        event = inputs.EVENT
        os.write(writer, event.pack(0, 0, inputs.EV_KEY, 3, 1))  # KEY_2 down
        assert reader.next_press(timeout=5) == inputs.Press("2")
        os.write(writer, event.pack(0, 0, inputs.EV_KEY, 28, 0))  # Enter up: nothing
        assert reader.next_press(timeout=0.1) is None
        # No axis ranges on a pipe: positions are taken as given, within the screen.
        os.write(
            writer,
            event.pack(0, 0, inputs.EV_ABS, inputs.ABS_X, 0)
            + event.pack(0, 0, inputs.EV_ABS, inputs.ABS_Y, 0)
            + event.pack(0, 0, inputs.EV_KEY, inputs.BTN_LEFT, 1),
        )
        assert reader.next_press(timeout=5) == inputs.Press("tap", 0, 0)
    finally:
        os.close(writer)


def test_a_device_plugged_in_later_is_found(tmp_path: Path) -> None:
    reader = inputs.Inputs(100, 50, tmp_path)
    assert reader.next_press(timeout=0.2) is None
    fifo = tmp_path / "event3"
    os.mkfifo(fifo)
    writer = os.open(fifo, os.O_RDWR)
    try:
        os.write(writer, inputs.EVENT.pack(0, 0, inputs.EV_KEY, 1, 1))  # Escape down
        assert reader.next_press(timeout=5) == inputs.Press("back")
    finally:
        os.close(writer)
