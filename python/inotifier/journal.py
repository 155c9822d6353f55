"""The journal as the operator's tools reach it, ``manage.py inotifier_journal`` and the admin
page alike: where the settings put it, and its bytes made printable."""

import unicodedata

from django.core.exceptions import ImproperlyConfigured

from inotifier import settings as inotifier_settings


class Unavailable(Exception):
    """The settings name no journal to read: the message says why and what to do."""


def path():
    """The journal's path from ``INOTIFIER_JOURNAL``; :class:`Unavailable` when the settings
    are wrong or the journal is disabled."""
    try:
        settings = inotifier_settings.journal()
    except inotifier_settings.Problem as problem:
        raise Unavailable(f"{problem.msg} {problem.hint}") from None
    except ImproperlyConfigured as error:
        raise Unavailable(str(error)) from None
    if settings["path"] is None:
        raise Unavailable(
            "the journal is disabled (INOTIFIER_JOURNAL['enabled'] is False): there is "
            "nothing to inspect"
        )
    return settings["path"]


def printable(raw):
    """Bytes on one printable line, as ``inotifier journal list`` prints them: control
    characters and bytes that are not UTF-8 as ``\\xNN``, a backslash doubled."""
    out = []
    for char in raw.decode("utf-8", "surrogateescape"):
        code = ord(char)
        if char == "\\":
            out.append("\\\\")
        elif 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        elif unicodedata.category(char) == "Cc":
            out.append(f"\\x{code:02x}")
        else:
            out.append(char)
    return "".join(out)
