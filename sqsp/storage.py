"""Where sqsp writes files: a local path or a URI, and always atomically.

Every file sqsp writes (study results, study.json, training checkpoints, zoo weights,
manifests and sample grids) goes through ``atomic_output``: the bytes go to a temporary name
beside the target and replace it only once they are all written (``os.replace`` after an
fsync locally; a move of the finished object on a ``pyarrow.fs`` URI), so a reader sees the
old file or the new one and a crash never leaves a half-written file under the final name.
Hand-written because neither the standard library nor pyarrow offers a replace-on-success
stream for both kinds of location. fsspec's transactions would, but only for fsspec
filesystems, and sqsp reads and writes through ``pyarrow.fs`` (Parquet, Ray's storage); a
second filesystem layer for 40 lines is not worth a dependency.
"""
from __future__ import annotations

import contextlib
import os
import uuid
from typing import IO, Iterator


def join(location: str | os.PathLike, *parts: str) -> str:
    """Join path parts onto a local path or a URI."""
    loc = str(location)
    if "://" in loc:
        return "/".join([loc.rstrip("/"), *parts])
    return os.path.join(loc, *parts)


def filesystem(location: str | os.PathLike):
    """``(pyarrow FileSystem, path within it)`` of a local path (made absolute) or a URI."""
    import pyarrow.fs as pafs
    if "://" in str(location):
        return pafs.FileSystem.from_uri(str(location))
    return pafs.LocalFileSystem(), os.path.abspath(location)


@contextlib.contextmanager
def atomic_output(target: str | os.PathLike) -> Iterator[IO[bytes]]:
    """A binary stream whose bytes become ``target`` (a local path or a URI) only when the
    block ends without an error; the temporary file is removed either way. Parent folders
    are created.

    Locally, a reserve beside the target (``reserve_path``: space a study set aside for its
    Parquet files, sqsp/tune/watch.py) becomes the temporary file and is written over, not
    allocated anew, so the file can still be written once the disk is full (if it fits)."""
    if "://" not in str(target):
        path = os.path.abspath(target)
        parent, name = os.path.split(path)
        os.makedirs(parent, exist_ok=True)
        tmp = os.path.join(parent, f".{name}.{uuid.uuid4().hex}.tmp")
        try:
            try:
                os.replace(reserve_path(path), tmp)
                stream = open(tmp, "r+b")
            except FileNotFoundError:
                stream = open(tmp, "wb")
            with stream as f:
                yield f
                f.truncate()  # at the end of what was written: the rest of a reserve goes
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return
    import pyarrow.fs as pafs
    fs, path = filesystem(target)
    parent, name = path.rsplit("/", 1) if "/" in path else ("", path)
    tmp = f"{parent}/.{name}.{uuid.uuid4().hex}.tmp" if parent else f".{name}.{uuid.uuid4().hex}.tmp"
    if parent:
        fs.create_dir(parent, recursive=True)
    try:
        with fs.open_output_stream(tmp) as f:
            yield f
        fs.move(tmp, path)  # a rename where the store has one; object stores copy the finished object
    finally:
        if fs.get_file_info(tmp).type != pafs.FileType.NotFound:
            fs.delete_file(tmp)


def reserve_path(target: str | os.PathLike) -> str:
    """Where space set aside for the local file ``target`` lies (``.<name>.reserve`` beside it)."""
    parent, name = os.path.split(os.path.abspath(target))
    return os.path.join(parent, f".{name}.reserve")


def remove_leftovers(target: str | os.PathLike) -> None:
    """Remove the temporaries of ``target`` (``.<name>.<hex>.tmp`` beside it) that a writer
    killed in the middle (SIGKILL, a lost node) left behind. Only where one writer holds the
    folder (a study's lock): another writer's temporary would vanish under it."""
    import pyarrow.fs as pafs
    fs, path = filesystem(target)
    parent, name = path.rsplit("/", 1) if "/" in path else ("", path)
    try:
        found = fs.get_file_info(pafs.FileSelector(parent or ".", allow_not_found=True))
    except OSError:  # the folder cannot be listed: nothing sqsp could clean there either
        return
    for info in found:
        base = info.path.rsplit("/", 1)[-1]
        if info.type == pafs.FileType.File and base.startswith(f".{name}.") and base.endswith(".tmp"):
            fs.delete_file(info.path)


def write_text(target: str | os.PathLike, text: str) -> None:
    """``text`` (UTF-8) as ``target``, atomically."""
    with atomic_output(target) as f:
        f.write(text.encode())
