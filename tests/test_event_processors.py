"""ProcessEvent's dispatch and the shipped processors, called in this process with real
signals and receivers."""

import inotifier
import pytest
from inotifier import signals
from inotifier.event_processors import (
    AllEventsPrinter,
    AllEventsSignaler,
    CreateSignaler,
    CreateViaChunksSignaler,
    ProcessEvent,
    ReadySignaler,
)


def event(mask, name="f", src_pathname=None):
    return inotifier.Event(mask=mask, path="/w", name=name, src_pathname=src_pathname)


class Recorder(ProcessEvent):
    def my_init(self, calls):
        self.calls = calls

    def process_IN_CLOSE_WRITE(self, event):
        self.calls.append(("close_write", event.name))

    def process_IN_MOVED(self, event):
        self.calls.append(("moved family", event.maskname))

    def process_default(self, event):
        self.calls.append(("default", event.maskname))


def test_dispatch_goes_to_the_method_then_the_family_then_the_default():
    calls = []
    processor = Recorder(calls=calls)
    processor(event(inotifier.IN_CLOSE_WRITE, name="a"))
    processor(event(inotifier.IN_MOVED_TO))
    processor(event(inotifier.IN_MOVED_FROM | inotifier.IN_ISDIR))
    processor(event(inotifier.IN_CREATE | inotifier.IN_ISDIR))
    assert calls == [
        ("close_write", "a"),
        ("moved family", "IN_MOVED_TO"),
        ("moved family", "IN_MOVED_FROM|IN_ISDIR"),
        ("default", "IN_CREATE|IN_ISDIR"),
    ]


def test_pevent_runs_first_and_stops_the_chain_when_true():
    calls = []
    processor = Recorder(pevent=lambda e: e.name == "skip", calls=calls)
    processor(event(inotifier.IN_CLOSE_WRITE, name="skip"))
    processor(event(inotifier.IN_CLOSE_WRITE, name="keep"))
    assert calls == [("close_write", "keep")]


def test_options_reach_my_init_and_unexpected_ones_are_refused():
    with pytest.raises(TypeError, match="takes no options"):
        ProcessEvent(colour="red")


@pytest.fixture
def received():
    """Every inotifier signal sent while the test runs: (signal name, sender, event)."""
    log = []
    receivers = []
    for name, signal in signals.BY_EVENT_NAME.items():

        def receive(sender, event, name=name, **kwargs):
            log.append((name, sender, event))

        signal.connect(receive, weak=False)
        receivers.append((signal, receive))
    yield log
    for signal, receive in receivers:
        signal.disconnect(receive)


def test_all_events_signaler_sends_each_events_signal_with_the_processor_as_sender(received):
    processor = AllEventsSignaler()
    create = event(inotifier.IN_CREATE | inotifier.IN_ISDIR)
    processor(create)
    processor(event(inotifier.IN_CLOSE_WRITE))
    processor(event(inotifier.IN_Q_OVERFLOW))
    assert [(name, sender) for name, sender, _ in received] == [
        ("IN_CREATE", processor),
        ("IN_CLOSE_WRITE", processor),
        ("IN_Q_OVERFLOW", processor),
    ]
    assert received[0][2] is create


def test_create_and_ready_signalers_send_only_their_signal(received):
    CreateSignaler()(event(inotifier.IN_DELETE))
    CreateSignaler()(event(inotifier.IN_CREATE))
    ReadySignaler()(event(inotifier.IN_CLOSE_WRITE))
    ReadySignaler()(event(inotifier.IN_READY))
    assert [name for name, _, _ in received] == ["IN_CREATE", "IN_READY"]


def test_create_via_chunks_signals_the_rename_of_the_part_file_not_its_creation(received):
    processor = CreateViaChunksSignaler()
    processor(event(inotifier.IN_CREATE, name="video.mp4.part"))
    rename = event(inotifier.IN_MOVED_TO, name="video.mp4", src_pathname="/w/video.mp4.part")
    processor(rename)
    processor(event(inotifier.IN_CREATE, name="direct.txt"))
    processor(event(inotifier.IN_MOVED_TO, name="other", src_pathname="/elsewhere/other"))
    assert [(name, e.name) for name, _, e in received] == [
        ("IN_CREATE", "video.mp4"),
        ("IN_CREATE", "direct.txt"),
    ]
    assert received[0][2] is rename


def test_all_events_printer_prints_each_event(capsys):
    AllEventsPrinter()(event(inotifier.IN_CLOSE_WRITE, name="notes.txt"))
    printed = capsys.readouterr().out
    assert "IN_CLOSE_WRITE" in printed and "'/w/notes.txt'" in printed
