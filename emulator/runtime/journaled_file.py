"""A file object for uproot whose writes become durable atomically, through a redo journal.

uproot's ``extend`` appends baskets and then patches the TTree metadata in place with many small
writes; a process killed in between leaves a segment whose branches disagree (unreadable). Here
every write is staged in memory; :meth:`JournaledFile.commit` first writes all staged writes to
``<file>.journal`` with a checksum and fsyncs it, then applies them to the file and fsyncs it. A
crash before the journal is complete leaves the file untouched (the torn journal is discarded); a
crash after it leaves a complete journal that :func:`recover` replays (replaying is idempotent).
So at every instant the file is, after recovery, exactly the state of some completed commit.

Only the writer (the sink, holding the recording's lock) applies a journal in place (:func:`recover`).
Readers use :func:`open_replayed`: the file opened read-only, the journal's writes overlaid in memory.
Both refuse symlinks (``O_NOFOLLOW``) and a journal whose writes reach beyond the end the commit could
have given the file (its size plus the journal's data): a crafted journal cannot write elsewhere.
"""

from __future__ import annotations

import contextlib
import os
import stat
import struct
import zlib
from pathlib import Path

MAGIC = b"AETRIGJ1"
_ENTRY = struct.Struct("<QQ")
_TRAILER = struct.Struct("<QI8s")  # entry count, crc32 of everything before, magic again
JOURNAL_SUFFIX = ".journal"


def journal_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + JOURNAL_SUFFIX)


def _serialise(writes: list[tuple[int, bytes]]) -> bytes:
    parts = [MAGIC]
    for pos, data in writes:
        parts.append(_ENTRY.pack(pos, len(data)))
        parts.append(data)
    body = b"".join(parts)
    return body + _TRAILER.pack(len(writes), zlib.crc32(body), MAGIC)


def parse_journal(blob: bytes) -> list[tuple[int, bytes]] | None:
    """The writes of a complete journal, or None when it is torn (incomplete or corrupt)."""
    if len(blob) < len(MAGIC) + _TRAILER.size or not blob.startswith(MAGIC):
        return None
    body, trailer = blob[:-_TRAILER.size], blob[-_TRAILER.size:]
    count, crc, magic = _TRAILER.unpack(trailer)
    if magic != MAGIC or zlib.crc32(body) != crc:
        return None
    writes, offset = [], len(MAGIC)
    for _ in range(count):
        pos, size = _ENTRY.unpack_from(body, offset)
        offset += _ENTRY.size
        writes.append((pos, body[offset:offset + size]))
        offset += size
    return writes if offset == len(body) else None


#: room a commit may leave between the file's end and what it appends (uproot allocates, then fills)
GAP_SLACK = 16 << 20


class JournalError(OSError):
    """A journal that no commit can have written (writes beyond the file's possible end)."""


def _checked(writes: list[tuple[int, bytes]], file_size: int, path: str | Path) -> list[tuple[int, bytes]]:
    """``writes`` when every one lands within ``file_size`` plus the journal's data plus GAP_SLACK (a commit
    appends and patches; it never writes far past what it appends), else JournalError."""
    limit = file_size + sum(len(data) for _, data in writes) + GAP_SLACK
    for pos, data in writes:
        if pos + len(data) > limit:
            raise JournalError(f"{journal_path(path)}: a write at offset {pos} of {len(data)} bytes reaches "
                               f"beyond the {limit} bytes a commit can give {Path(path).name}: not a journal "
                               "of this segment; left as it is")
    return writes


def _open_nofollow(path: str | Path, flags: int) -> int:
    """``os.open`` that refuses a symlink (OSError ELOOP) and anything but a regular file."""
    fd = os.open(path, flags | os.O_NOFOLLOW)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(f"{path} is not a regular file")
    return fd


def read_journal(path: str | Path, file_size: int) -> list[tuple[int, bytes]] | None:
    """The checked writes of the complete journal of ``path``; None when there is none or it is torn."""
    jpath = journal_path(path)
    try:
        fd = _open_nofollow(jpath, os.O_RDONLY)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as f:
        blob = f.read()
    writes = parse_journal(blob) if blob else None
    return _checked(writes, file_size, path) if writes is not None else None


def journal_state(path: str | Path) -> str:
    """'clean' (no journal, or an empty one), 'torn' (a reader ignores it) or 'complete' (a reader overlays it)."""
    jpath = journal_path(path)
    if jpath.is_symlink():
        raise JournalError(f"{jpath} is a symlink")
    if not jpath.exists() or jpath.stat().st_size == 0:
        return "clean"
    return "complete" if parse_journal(jpath.read_bytes()) is not None else "torn"


class _Cursor:
    """The half of the file protocol the reading and the writing file share: ``size`` and ``pos``, and reading
    the file ``fd`` with the writes of :meth:`_overlay` laid over it."""

    fd: int
    pos: int
    size: int

    def _overlay(self) -> list[tuple[int, bytes]]:
        """The (offset, data) writes not in the file yet, laid over its bytes in order when reading."""
        raise NotImplementedError

    def read(self, n: int = -1) -> bytes:
        end = self.size if n is None or n < 0 else min(self.size, self.pos + n)
        if end <= self.pos:
            return b""
        buf = bytearray(os.pread(self.fd, end - self.pos, self.pos).ljust(end - self.pos, b"\0"))
        for pos, data in self._overlay():
            lo, hi = max(pos, self.pos), min(pos + len(data), end)
            if lo < hi:
                buf[lo - self.pos:hi - self.pos] = data[lo - pos:hi - pos]
        self.pos = end
        return bytes(buf)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self.pos, os.SEEK_END: self.size}[whence]
        self.pos = base + offset
        return self.pos

    def tell(self) -> int:
        return self.pos


class ReplayedFile(_Cursor):
    """A read-only file object (read, seek, tell) of a segment as its complete journal leaves it: the file
    opened read-only and without following symlinks, the journal's writes overlaid in memory. A journal
    that writes beyond what a commit can is ignored (``refused`` says why), like a torn one."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.fd = _open_nofollow(self.path, os.O_RDONLY)
        file_size = os.fstat(self.fd).st_size
        self.refused: str | None = None  # why the journal was refused (then ignored, like a torn one)
        try:
            self.writes = read_journal(self.path, file_size) or []
        except JournalError as exc:
            self.writes, self.refused = [], str(exc)
        except BaseException:
            os.close(self.fd)
            raise
        self.size = max([file_size, *(pos + len(data) for pos, data in self.writes)])
        self.pos = 0
        self.closed = False

    def _overlay(self) -> list[tuple[int, bytes]]:
        return self.writes

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self.fd)

    def __enter__(self) -> ReplayedFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_replayed(path: str | Path) -> ReplayedFile:
    """Open a segment for reading, read-only, its unfinished commit (if its journal is complete) in memory."""
    return ReplayedFile(path)


def _apply(fd: int, writes: list[tuple[int, bytes]]) -> None:
    for pos, data in writes:
        view = memoryview(data)
        while view:
            written = os.pwrite(fd, view, pos)
            view, pos = view[written:], pos + written
    os.fsync(fd)


def recover(path: str | Path) -> str:
    """Finish or discard the last commit of ``path`` in place (the writer only: the sink at start-up, holding
    the recording's lock); returns 'clean', 'replayed' or 'discarded'. Refuses symlinks and journals that
    write beyond what a commit can (JournalError, an OSError): nothing is written then."""
    jpath = journal_path(path)
    if jpath.is_symlink():
        raise JournalError(f"{jpath} is a symlink")
    if not jpath.exists() or jpath.stat().st_size == 0:
        with contextlib.suppress(FileNotFoundError):
            jpath.unlink()
        return "clean"
    fd = _open_nofollow(path, os.O_RDWR)
    try:
        writes = read_journal(path, os.fstat(fd).st_size)
        if writes is None:
            jpath.unlink()  # torn journal: the file was never touched by that commit
            return "discarded"
        _apply(fd, writes)
    finally:
        os.close(fd)
    jpath.unlink()
    return "replayed"


class JournaledFile(_Cursor):
    """The minimal file-like object uproot's sink needs (read, write, seek, tell, flush, truncate)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        self.jfd = os.open(journal_path(self.path), os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        self.pos = 0
        self.size = 0
        self.staged: list[tuple[int, bytes]] = []
        self.closed = False

    # -- file protocol ---------------------------------------------------------------------
    def writable(self) -> bool:
        return True

    def write(self, data: object) -> int:
        raw = data.tobytes() if hasattr(data, "tobytes") else bytes(data)  # type: ignore[arg-type]
        self.staged.append((self.pos, raw))
        self.pos += len(raw)
        self.size = max(self.size, self.pos)
        return len(raw)

    def _overlay(self) -> list[tuple[int, bytes]]:
        return self.staged

    def flush(self) -> None:
        """Nothing: data reaches the file only in :meth:`commit`."""

    def truncate(self, size: int | None = None) -> int:
        size = self.pos if size is None else size
        if size != 0 or self.size != 0:
            raise OSError("JournaledFile only truncates an empty file")
        return 0

    # -- durability ------------------------------------------------------------------------
    def commit(self) -> None:
        """Journal, fsync, apply, fsync: after this returns every staged write is durable."""
        if not self.staged:
            return
        writes, self.staged = self.staged, []
        blob = _serialise(writes)
        os.ftruncate(self.jfd, 0)
        view, offset = memoryview(blob), 0
        while offset < len(blob):
            offset += os.pwrite(self.jfd, view[offset:], offset)
        os.fsync(self.jfd)
        _apply(self.fd, writes)
        os.ftruncate(self.jfd, 0)  # replaying a stale journal would be harmless (idempotent)

    def close(self) -> None:
        """uproot calls this when its file closes: commit what is staged, drop the journal."""
        if self.closed:
            return
        try:
            self.commit()
        finally:
            self.closed = True
            os.close(self.fd)
            os.close(self.jfd)
        with contextlib.suppress(FileNotFoundError):
            journal_path(self.path).unlink()

    def abandon(self) -> None:
        """Drop staged writes and close without touching the file again (after a failed commit)."""
        self.staged = []
        if not self.closed:
            self.closed = True
            with contextlib.suppress(OSError):
                os.close(self.fd)
            with contextlib.suppress(OSError):
                os.close(self.jfd)
