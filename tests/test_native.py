"""The native module: mask constants and parsing, and the Event class."""

import os

import inotifier
import pytest


def test_mask_constants_have_the_kernels_values():
    assert inotifier.IN_ACCESS == 0x1
    assert inotifier.IN_CLOSE_WRITE == 0x8
    assert inotifier.IN_CREATE == 0x100
    assert inotifier.IN_Q_OVERFLOW == 0x4000
    assert inotifier.IN_ISDIR == 0x40000000
    assert inotifier.IN_ONESHOT == 0x80000000
    assert inotifier.IN_CLOSE == inotifier.IN_CLOSE_WRITE | inotifier.IN_CLOSE_NOWRITE
    assert inotifier.IN_MOVE == inotifier.IN_MOVED_FROM | inotifier.IN_MOVED_TO
    assert inotifier.ALL_EVENTS == 0xFFF
    assert inotifier.IN_READY == 0x00100000
    assert not inotifier.ALL_EVENTS & inotifier.IN_READY


@pytest.mark.parametrize(
    "text, expected",
    [
        ("IN_CREATE|IN_DELETE", 0x300),
        ("create,delete", 0x300),
        ("ALL_EVENTS", 0xFFF),
        ("0x100", 0x100),
        ("IN_CLOSE_WRITE|IN_READY", 0x8 | 0x00100000),
    ],
)
def test_parse_mask(text, expected):
    assert inotifier.parse_mask(text) == expected


def test_parse_mask_names_the_bad_word_and_the_valid_names():
    with pytest.raises(ValueError) as raised:
        inotifier.parse_mask("IN_CREATE|IN_CRATE")
    message = str(raised.value)
    assert '"IN_CRATE"' in message
    assert "IN_CLOSE_WRITE" in message and "ALL_EVENTS" in message


def test_event_has_pyinotify_attributes_and_ours():
    event = inotifier.Event(
        id=7,
        mask=inotifier.IN_MOVED_TO | inotifier.IN_ISDIR,
        path=b"/srv/up",
        name=b"final",
        wd=3,
        cookie=42,
        src_pathname=b"/srv/up/final.part",
        origin="scan",
        time=12.5,
    )
    assert event.maskname == "IN_MOVED_TO|IN_ISDIR"
    assert event.pathname == "/srv/up/final"
    assert event.dir is True
    assert (event.wd, event.cookie, event.id, event.time) == (3, 42, 7, 12.5)
    assert event.src_pathname == "/srv/up/final.part"
    assert event.synthetic is True and event.origin == "scan"


def test_event_names_that_are_not_utf8_survive_the_round_trip():
    event = inotifier.Event(mask=inotifier.IN_CREATE, path=b"/d", name=b"caf\xe9")
    assert isinstance(event.name, str)
    assert os.fsencode(event.name) == b"caf\xe9"
    assert os.fsencode(event.pathname) == b"/d/caf\xe9"


def test_event_about_the_watched_path_itself_has_an_empty_name():
    event = inotifier.Event(mask=inotifier.IN_DELETE_SELF, path="/d")
    assert event.name == "" and event.pathname == "/d"
