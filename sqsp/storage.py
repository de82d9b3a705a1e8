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
    are created."""
    if "://" not in str(target):
        path = os.path.abspath(target)
        parent, name = os.path.split(path)
        os.makedirs(parent, exist_ok=True)
        tmp = os.path.join(parent, f".{name}.{uuid.uuid4().hex}.tmp")
        try:
            with open(tmp, "wb") as f:
                yield f
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


def write_text(target: str | os.PathLike, text: str) -> None:
    """``text`` (UTF-8) as ``target``, atomically."""
    with atomic_output(target) as f:
        f.write(text.encode())
