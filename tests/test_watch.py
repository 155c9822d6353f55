"""inotifier.watch and inotifier.awatch: the engine without Django, on real inotify and real
files. Every wait has a deadline: a watch ends after ``QUIET`` seconds without an event."""

import asyncio
import contextlib
import errno
import os
import signal
import threading
import time
from pathlib import Path

import inotifier
import pytest
from conftest import inotify_limit
from inotifier._native import Watcher

# A watch that saw no event for this long has nothing more to say: the test fails.
QUIET = 5.0


def inotify_fds():
    """How many inotify instances this process holds."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:inotify":
                count += 1
        except FileNotFoundError:
            pass  # the descriptor listdir itself used
    return count


def reader_threads():
    """How many engine reader threads run in this process (names are cut at 15 bytes)."""
    count = 0
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/comm") as comm:
                count += comm.read().startswith("inotifier-read")
        except FileNotFoundError:
            pass  # the thread ended meanwhile
    return count


def events_until(events, condition, what):
    """Events of ``events`` up to the first for which ``condition(seen)`` holds."""
    seen = []
    for event in events:
        seen.append(event)
        if condition(seen):
            return seen
    pytest.fail(f"no event for {QUIET}s before {what}; got {seen}")


def has(mask, pathname):
    return lambda seen: any(e.mask & mask and e.pathname == str(pathname) for e in seen)


def write(path, data=b"x"):
    with open(path, "wb") as file:
        file.write(data)


def test_create_modify_delete_with_their_attributes(tmp_path):
    started = time.time()
    with inotifier.watch(tmp_path, timeout=QUIET) as events:
        target = tmp_path / "report.csv"
        write(target)
        target.unlink()
        seen = events_until(events, has(inotifier.IN_DELETE, target), "the delete")
    kinds = [e.maskname for e in seen]
    for expected in ("IN_CREATE", "IN_MODIFY", "IN_CLOSE_WRITE", "IN_DELETE"):
        assert expected in kinds
    assert kinds.index("IN_CREATE") < kinds.index("IN_CLOSE_WRITE") < kinds.index("IN_DELETE")
    create = seen[kinds.index("IN_CREATE")]
    assert create.mask == inotifier.IN_CREATE
    assert (create.path, create.name) == (str(tmp_path), "report.csv")
    assert create.pathname == str(target)
    assert create.dir is False and create.synthetic is False and create.origin == "kernel"
    assert create.wd > 0 and create.cookie == 0 and create.src_pathname is None
    assert started - 1 <= create.time <= time.time() + 1
    ids = [e.id for e in seen]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_mask_as_str_list_and_int(tmp_path):
    for mask in ("create,delete", ["IN_CREATE", inotifier.IN_DELETE], 0x300):
        with inotifier.watch(tmp_path, mask=mask, timeout=QUIET) as events:
            target = tmp_path / "file"
            write(target)
            target.unlink()
            seen = events_until(events, has(inotifier.IN_DELETE, target), "the delete")
        assert [e.maskname for e in seen] == ["IN_CREATE", "IN_DELETE"]


def test_recursive_new_tree_reports_every_entry_once(tmp_path):
    files = [f"new/f{i}" for i in range(50)] + [f"new/sub/g{i}" for i in range(20)]
    with inotifier.watch(
        tmp_path, mask="IN_CREATE|IN_CLOSE_WRITE", recursive=True, timeout=QUIET
    ) as events:
        # Written as fast as possible: most exist before the new directories are watched.
        (tmp_path / "new" / "sub").mkdir(parents=True)
        for name in files:
            write(tmp_path / name)
        # Made last: whatever the kernel still had queued for the tree came before it.
        marker = tmp_path / "zz-marker"
        write(marker)
        seen = events_until(events, has(inotifier.IN_CLOSE_WRITE, marker), "the marker")
    created = [e.pathname for e in seen if e.mask & inotifier.IN_CREATE]
    expected = [str(tmp_path / name) for name in files + ["new", "new/sub", "zz-marker"]]
    assert sorted(created) == sorted(expected)
    closed = {e.pathname for e in seen if e.mask & inotifier.IN_CLOSE_WRITE}
    assert closed == {str(tmp_path / name) for name in files + ["zz-marker"]}
    directories = {e.pathname for e in seen if e.dir}
    assert directories == {str(tmp_path / "new"), str(tmp_path / "new" / "sub")}


def test_moves_are_paired(tmp_path):
    write(tmp_path / "draft")
    with inotifier.watch(tmp_path, mask=inotifier.IN_MOVE, timeout=QUIET) as events:
        os.rename(tmp_path / "draft", tmp_path / "final")
        seen = events_until(events, has(inotifier.IN_MOVED_TO, tmp_path / "final"), "the move")
    moved_from, moved_to = seen
    assert moved_from.mask == inotifier.IN_MOVED_FROM and moved_from.name == "draft"
    assert moved_to.mask == inotifier.IN_MOVED_TO and moved_to.name == "final"
    assert moved_from.cookie == moved_to.cookie != 0
    assert moved_to.src_pathname == str(tmp_path / "draft")


def test_non_utf8_names_round_trip(tmp_path):
    name = b"caf\xe9-\xff.bin"
    directory = os.fsencode(tmp_path)
    with inotifier.watch(directory, mask=inotifier.IN_CLOSE_WRITE, timeout=QUIET) as events:
        write(os.path.join(directory, name))
        (event,) = events_until(events, lambda seen: seen, "the write")
    assert os.fsencode(event.name) == name
    assert os.fsencode(event.pathname) == os.path.join(directory, name)
    with open(event.pathname, "rb") as file:
        assert file.read() == b"x"


def test_ready_for_a_part_file_renamed_into_place(tmp_path):
    with inotifier.watch(
        tmp_path, mask=inotifier.IN_READY, settle=0.05, recursive=True, timeout=QUIET
    ) as events:
        write(tmp_path / "upload.csv.part", b"a,b\n" * 1000)
        os.rename(tmp_path / "upload.csv.part", tmp_path / "upload.csv")
        write(tmp_path / "plain.txt")
        seen = events_until(
            events,
            lambda seen: {e.name for e in seen} >= {"upload.csv", "plain.txt"},
            "both files ready",
        )
    assert all(e.mask == inotifier.IN_READY for e in seen)
    assert sorted(e.name for e in seen) == ["plain.txt", "upload.csv"]
    renamed = next(e for e in seen if e.name == "upload.csv")
    assert renamed.src_pathname == str(tmp_path / "upload.csv.part")
    assert [e.id for e in seen] == sorted(e.id for e in seen)


def create_all_and_collect(directory, count):
    """Creates ``count`` files before reading the first event; the names of the creations seen,
    and whether the kernel queue overflowed meanwhile."""
    with inotifier.watch(directory, mask=inotifier.IN_CREATE, timeout=QUIET) as events:
        for index in range(count):
            os.close(os.open(directory / f"f{index:06}", os.O_CREAT | os.O_WRONLY, 0o644))
        names = set()
        overflowed = False

        def all_seen(seen):
            nonlocal overflowed
            overflowed |= bool(seen[-1].mask & inotifier.IN_Q_OVERFLOW)
            if seen[-1].mask & inotifier.IN_CREATE:
                names.add(seen[-1].name)
            return len(names) == count

        events_until(events, all_seen, f"all {count} creations")
    assert names == {f"f{index:06}" for index in range(count)}
    return overflowed


def test_a_burst_of_10000_files_is_seen_entirely(tmp_path):
    create_all_and_collect(tmp_path, 10_000)


def test_a_burst_past_the_kernel_queue_is_seen_entirely(tmp_path):
    with open("/proc/sys/fs/inotify/max_queued_events") as limit:
        queue = int(limit.read())
    if queue > 100_000:
        pytest.skip(f"fs.inotify.max_queued_events is {queue}: too many files to overflow it")
    # More creations than the kernel queue holds, none read meanwhile: it overflows unless the
    # reader thread kept up with small reads (its channel holds 16 of them). Dropped creations
    # come from the engine's rescan (origin "rescan"); whether it overflowed is not asserted,
    # since a reader scheduled late reads fewer, larger batches.
    create_all_and_collect(tmp_path, queue + 5_000)


def test_break_closes_the_engine(tmp_path):
    before = (inotify_fds(), reader_threads())
    done = threading.Event()

    def keep_writing():
        # Until the loop has seen an event: the watch is in place at some point of this.
        while not done.is_set():
            write(tmp_path / "trigger")
            done.wait(0.01)

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        for event in inotifier.watch(tmp_path, timeout=QUIET):
            assert (inotify_fds(), reader_threads()) == (before[0] + 1, before[1] + 1)
            assert event.name == "trigger"
            break
    finally:
        done.set()
        writer.join()
    assert (inotify_fds(), reader_threads()) == before


def test_break_closes_the_engine_with_an_event_pending(tmp_path):
    before = (inotify_fds(), reader_threads())
    iterator = inotifier.watch(tmp_path, timeout=QUIET)
    write(tmp_path / "trigger")
    for _event in iterator:
        break
    del iterator
    assert (inotify_fds(), reader_threads()) == before


def test_leaving_the_with_block_or_close_stops_it(tmp_path):
    before = inotify_fds()
    with inotifier.watch(tmp_path) as events:
        assert inotify_fds() == before + 1
        assert not events.closed
    assert events.closed and inotify_fds() == before
    assert list(events) == []
    events.close()  # idempotent


def test_dropping_the_native_watcher_stops_its_engine(tmp_path):
    before = (inotify_fds(), reader_threads())
    watcher = Watcher([os.fsencode(tmp_path)], "IN_CREATE")
    assert watcher.watch_count() == 1
    write(tmp_path / "x")
    assert [e.name for e in watcher.next_batch(int(QUIET * 1000))] == ["x"]
    assert watcher.next_batch(0) == []
    del watcher
    assert (inotify_fds(), reader_threads()) == before


def test_a_closed_native_watcher_returns_none(tmp_path):
    watcher = Watcher([os.fsencode(tmp_path)], inotifier.ALL_EVENTS)
    watcher.close()
    watcher.close()
    assert watcher.closed and watcher.next_batch(10) is None and watcher.watch_count() == 0


def test_next_batch_lets_other_threads_run_while_it_waits(tmp_path):
    watcher = Watcher([os.fsencode(tmp_path)], "IN_CREATE")
    # The writer needs the GIL: its file is seen only if next_batch waits without holding it.
    writer = threading.Timer(0.05, write, (tmp_path / "from-thread",))
    writer.start()
    batch = watcher.next_batch(int(QUIET * 1000))
    writer.join()
    assert [e.name for e in batch] == ["from-thread"]
    watcher.close()


def test_several_paths_in_one_watcher(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    with inotifier.watch(first, second, mask="IN_CREATE", timeout=QUIET) as events:
        write(first / "a")
        write(second / "b")
        seen = events_until(events, lambda seen: len(seen) == 2, "both creations")
    assert sorted(e.pathname for e in seen) == [str(first / "a"), str(second / "b")]


def test_stop_event_ends_the_iteration(tmp_path):
    stop = threading.Event()
    seen = []
    iterator = inotifier.watch(tmp_path, stop_event=stop)

    def consume():
        for event in iterator:
            seen.append(event)
            stop.set()

    consumer = threading.Thread(target=consume)
    consumer.start()
    write(tmp_path / "one")
    consumer.join(QUIET)
    assert not consumer.is_alive(), "the iteration did not end on stop_event"
    assert seen and seen[0].name == "one"
    assert iterator.closed


def test_ctrl_c_interrupts_the_wait(tmp_path):
    interrupt = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt), inotifier.watch(tmp_path) as events:
        interrupt.start()
        next(events)
    interrupt.join()
    assert time.monotonic() - started < QUIET
    assert events.closed


def test_awatch_yields_events_and_cancellation_closes_it(tmp_path):
    before = (inotify_fds(), reader_threads())

    async def main():
        seen = []
        iterator = inotifier.awatch(tmp_path, mask=inotifier.IN_CLOSE_WRITE)

        async def consume():
            async for event in iterator:
                seen.append(event)

        task = asyncio.create_task(consume())
        write(tmp_path / "async.txt")
        deadline = time.monotonic() + QUIET
        while not seen:
            assert time.monotonic() < deadline, "no event from awatch"
            await asyncio.sleep(0.01)
        assert (inotify_fds(), reader_threads()) == (before[0] + 1, before[1] + 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert iterator.closed
        return seen

    seen = asyncio.run(main())
    assert [(e.maskname, e.name) for e in seen] == [("IN_CLOSE_WRITE", "async.txt")]
    assert (inotify_fds(), reader_threads()) == before


def test_awatch_with_stop_event_and_async_with(tmp_path):
    async def main():
        stop = asyncio.Event()
        names = []
        async with inotifier.awatch(
            tmp_path, mask="IN_CREATE", stop_event=stop, timeout=QUIET
        ) as events:
            write(tmp_path / "first")
            async for event in events:
                names.append(event.name)
                stop.set()
        assert events.closed
        return names

    assert asyncio.run(main()) == ["first"]


def test_a_missing_path_is_a_file_not_found_error(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError) as raised:
        inotifier.watch(tmp_path, missing)
    assert raised.value.errno == errno.ENOENT
    assert str(missing) in str(raised.value)
    assert "no such file or directory" in str(raised.value)


def inotify_watches_in_use():
    """Every process's inotify watches, from /proc/*/fdinfo: what a lowered limit must allow."""
    watches = 0
    for info in Path("/proc").glob("[0-9]*/fdinfo/*"):
        with contextlib.suppress(OSError):
            watches += info.read_text().count("inotify wd:")
    return watches


@pytest.mark.needs_root("lowers fs.inotify.max_user_watches")
def test_out_of_watches_is_an_os_error_with_enospc(tmp_path):
    for index in range(10):
        (tmp_path / f"d{index}").mkdir()
    with (
        inotify_limit("max_user_watches", lambda _: inotify_watches_in_use() + 3),
        pytest.raises(OSError) as raised,
    ):
        inotifier.watch(tmp_path, recursive=True)
    assert raised.value.errno == errno.ENOSPC
    assert "fs.inotify.max_user_watches" in str(raised.value)
    assert "11 watches" in str(raised.value)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"mask": "IN_CREATE|IN_CRATE"}, '"IN_CRATE"'),
        ({"mask": 0}, "asks for no event"),
        ({"mask": inotifier.IN_ISDIR}, "asks for no event"),
        ({"mask": -1}, "32-bit"),
        ({"exclude": ["[unclosed"]}, "invalid glob"),
        ({"settle": 1.0}, "only apply to IN_READY"),
        ({"mask": "IN_READY", "temp_patterns": ["a/*.part"]}, "contains /"),
    ],
)
def test_bad_options_are_value_errors(tmp_path, options, message):
    with pytest.raises(ValueError, match=message):
        inotifier.watch(tmp_path, **options)


def test_a_mask_of_the_wrong_type_is_a_type_error(tmp_path):
    with pytest.raises(TypeError, match="float"):
        inotifier.watch(tmp_path, mask=[inotifier.IN_CREATE, 1.5])
    with pytest.raises(TypeError, match="at least one path"):
        inotifier.watch()


def test_timeout_ends_a_quiet_watch(tmp_path):
    started = time.monotonic()
    with inotifier.watch(tmp_path, timeout=0.2) as events:
        assert list(events) == []
        assert events.closed
    assert time.monotonic() - started < QUIET


def test_events_queued_before_the_first_next_are_not_lost_to_the_timeout(tmp_path):
    events = inotifier.watch(tmp_path, mask=inotifier.IN_CREATE, timeout=0.05)
    write(tmp_path / "early")
    # Longer than the timeout: the event waits in the engine, and is still delivered.
    threading.Event().wait(0.1)
    assert [e.name for e in events] == ["early"]
