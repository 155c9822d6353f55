"""Code a project writes against inotifier's public API; ``mypy --strict`` must pass on it
(tests/test_typing.py), so that the annotations and ``_native.pyi`` say what the API does."""

import asyncio
import threading
from pathlib import Path

import inotifier
from django.dispatch import receiver
from inotifier import signals
from inotifier.event_processors import ProcessEvent
from inotifier.tasks import TaskProcessor, event_dict


class Thumbnails(ProcessEvent):
    """A pyinotify-style processor with an option."""

    def my_init(self, size: int = 128, **kwargs: object) -> None:
        self.size = size

    def process_IN_CLOSE_WRITE(self, event: inotifier.Event) -> None:
        print(event.pathname, event.maskname, event.id, event.origin, event.synthetic)

    def process_default(self, event: inotifier.Event) -> None:
        if event.src_pathname is not None:
            print("moved from", event.src_pathname)


@receiver(signals.in_ready)
def on_ready(sender: object, event: inotifier.Event, **kwargs: object) -> None:
    print(event.path, event.name, event.dir, event.time)


def first_events(root: Path, count: int) -> list[inotifier.Event]:
    stop = threading.Event()
    events: list[inotifier.Event] = []
    with inotifier.watch(
        root, mask=inotifier.IN_CLOSE_WRITE | inotifier.IN_READY, recursive=True, stop_event=stop
    ) as watching:
        for event in watching:
            events.append(event)
            if len(events) == count:
                break
    return events


async def first_async(root: Path) -> inotifier.Event | None:
    async for event in inotifier.awatch(str(root), mask="IN_CREATE|IN_DELETE", timeout=1.0):
        return event
    return None


def describe(mask: int) -> str:
    names: list[str] = inotifier.valid_mask_names()
    return f"{inotifier.mask_name(mask)} of {len(names)}: {inotifier.parse_mask('create')}"


def as_task_argument(event: inotifier.Event) -> dict[str, object]:
    return event_dict(event)


def build(options: dict[str, object]) -> TaskProcessor:
    return TaskProcessor(**options)


if __name__ == "__main__":
    print(describe(inotifier.IN_CREATE), asyncio.run(first_async(Path("/tmp"))))
