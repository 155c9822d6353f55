"""The event handed to processors: pyinotify's attributes, and inotifier's own.

``Event`` is implemented natively (``inotifier._native.Event``): the daemon makes one per event,
and a native class costs a fraction of a Python ``__init__``. See its docstring for the
attributes.
"""

from inotifier._native import Event

__all__ = ["Event"]
