"""Django signals sent by the shipped processors, one per event, with ``event=`` the
:class:`inotifier.Event` and the processor instance as sender. Receivers run in the daemon's
process, on its worker threads: connect them in an app's ``ready()``."""

from django.dispatch import Signal

in_access = Signal()
in_attrib = Signal()
in_close_nowrite = Signal()
in_close_write = Signal()
in_create = Signal()
in_delete = Signal()
in_delete_self = Signal()
in_ignored = Signal()
in_modify = Signal()
in_move_self = Signal()
in_moved_from = Signal()
in_moved_to = Signal()
in_open = Signal()
in_q_overflow = Signal()
in_unmount = Signal()
#: A file is completely written (inotifier's ``IN_READY``).
in_ready = Signal()

#: The signal of each event name, as ``Event.maskname`` writes it without ``|IN_ISDIR``.
BY_EVENT_NAME = {
    "IN_ACCESS": in_access,
    "IN_ATTRIB": in_attrib,
    "IN_CLOSE_NOWRITE": in_close_nowrite,
    "IN_CLOSE_WRITE": in_close_write,
    "IN_CREATE": in_create,
    "IN_DELETE": in_delete,
    "IN_DELETE_SELF": in_delete_self,
    "IN_IGNORED": in_ignored,
    "IN_MODIFY": in_modify,
    "IN_MOVE_SELF": in_move_self,
    "IN_MOVED_FROM": in_moved_from,
    "IN_MOVED_TO": in_moved_to,
    "IN_OPEN": in_open,
    "IN_Q_OVERFLOW": in_q_overflow,
    "IN_UNMOUNT": in_unmount,
    "IN_READY": in_ready,
}
