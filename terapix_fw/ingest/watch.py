"""Watch mode: ingest what arrives in a directory (snooppix's download directory, an FTP drop...).

Files are taken when they are complete: renamed into the directory (snooppix and every atomic writer
write ``.<name>.part`` then rename) or closed after writing (a copy by hand).  The wait is on filesystem
events (watchdog: inotify on Linux), never a sleep-and-poll loop, and it is bounded: by an idle timeout,
a number of files, or a stop event.
"""
from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Callable, Iterator

from .session import is_candidate

__all__ = ["watch_directory"]


def watch_directory(directory: str | Path, *, idle_timeout: float | None = None, max_files: int | None = None,
                    stop: threading.Event | None = None, existing: bool = True,
                    ready: Callable[[], None] | None = None) -> Iterator[Path]:
    """Yield each FITS file that arrives in ``directory`` once it is complete.

    Parameters
    ----------
    directory : the folder watched.
    existing : first yield the files already there (sorted), so nothing delivered before the watch
        started is missed.
    idle_timeout : stop after this many seconds without a new file (None: never).
    max_files : stop after yielding this many files.
    stop : an Event that ends the watch when set (checked at least every 0.5 s).
    ready : called once the watcher is installed (tests deliver files only after it).

    Yields
    ------
    Path
        Each complete FITS file.

    Raises
    ------
    NotADirectoryError
        If ``directory`` is not a directory.
    """
    import time

    from watchdog.events import FileSystemEventHandler
    from watchdog.observers import Observer

    directory = Path(directory).resolve()
    if not directory.is_dir():
        raise NotADirectoryError(f"watch: {directory} is not a directory")
    arrivals: "queue.Queue[Path]" = queue.Queue()

    class Handler(FileSystemEventHandler):
        def on_moved(self, event):
            if not event.is_directory:
                arrivals.put(Path(event.dest_path))

        def on_closed(self, event):
            if not event.is_directory:
                arrivals.put(Path(event.src_path))

    observer = Observer()
    observer.schedule(Handler(), str(directory), recursive=False)
    observer.start()
    seen: set[Path] = set()
    count = 0
    try:
        if ready is not None:
            ready()
        if existing:
            for path in sorted(p for p in directory.iterdir() if p.is_file() and is_candidate(p)):
                seen.add(path)
                yield path
                count += 1
                if max_files is not None and count >= max_files:
                    return
        last = time.monotonic()
        while not (stop is not None and stop.is_set()):
            wait = 0.5 if idle_timeout is None else min(0.5, max(0.0, idle_timeout - (time.monotonic() - last)))
            try:
                path = arrivals.get(timeout=wait)
            except queue.Empty:
                if idle_timeout is not None and time.monotonic() - last >= idle_timeout:
                    return
                continue
            if path.parent != directory or path in seen or not is_candidate(path) or not path.is_file():
                continue
            seen.add(path)
            last = time.monotonic()
            yield path
            if not path.exists():
                seen.discard(path)  # moved away: the same name may arrive again (a new version)
            count += 1
            if max_files is not None and count >= max_files:
                return
    finally:
        observer.stop()
        observer.join(timeout=5)
