"""Where a command may write, and how: one output guard and the atomic writers.

Every command that writes goes through :func:`check_output` before any work, then
writes through :func:`atomic_file` / :func:`write_bytes_atomic` (a file) or
:func:`atomic_directory` (a directory replaced whole). The rules (docs/GUARANTEES.md):

1. An output never equals, contains or lies inside an input of the same command (its
   config, the scene and the files it references, a run, estimate or dataset).
2. An existing output is replaced only with ``--overwrite``, and only when it is what
   that command writes (an :class:`Artifact`, recognised by its own metadata: a run
   file's ``/config``, an estimate file's kind, the stamp twin puts in its PNG and HTML
   maps, a report directory's ``metrics.json`` with nothing else of the user's inside, a
   DAUN checkpoint's format) or an empty file. Anything else stays, with one line.
3. A directory replaced whole is never ``/``, the home directory, the working
   directory or a directory above one of them.
4. A file is written beside its target under a temporary name, flushed to disk and
   renamed into place; a directory too, and the old one is removed only once the new
   one is complete. A kill leaves the old output (or none) and at most a hidden
   ``.NAME.*.tmp`` beside it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import stat
import struct
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from twin.errors import TwinInputError

#: The keyword and text prefix of the stamp in twin's PNG and HTML outputs.
STAMP_KEYWORD = "Software"
STAMP_PREFIX = "mmwave-twin "
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_HTML_STAMP = re.compile(rb'<meta name="generator" content="mmwave-twin ([^"]*)">')
#: Bytes of an HTML page searched for its stamp (it sits right after ``<head>``).
_HTML_HEAD_BYTES = 4096


@dataclass(frozen=True)
class Artifact:
    """What a command writes: a file or a directory it may replace with ``--overwrite``.

    Attributes
    ----------
    label : what it is, for messages ("run file").
    command : the command that writes it ("twin simulate").
    recognise : whether an existing path is one (reads only its metadata; never raises).
    directory : a directory (else a file).
    in_place : a directory filled in place, never removed (a dataset); else a directory
        is replaced whole.
    """

    label: str
    command: str
    recognise: Callable[[Path], bool]
    directory: bool = False
    in_place: bool = False


def _protected_directories() -> set[Path]:
    """``/``, the home and working directories and every directory above them."""
    out: set[Path] = set()
    for start in (Path.home(), Path.cwd()):
        with contextlib.suppress(OSError, RuntimeError):
            resolved = start.resolve()
            out.update([resolved, *resolved.parents])
    return out


def _relation(output: Path, source: Path) -> str | None:
    """How ``output`` (resolved) collides with the input ``source``, or None."""
    try:
        target = source.resolve()
    except (OSError, RuntimeError):
        return None
    if output == target or (output.exists() and target.exists()
                            and output.samefile(target)):
        return "is"
    if target.is_relative_to(output):
        return "contains"
    if target.is_dir() and output.is_relative_to(target):
        return "lies inside"
    return None


def check_output(
    path: Path, artifact: Artifact, *, overwrite: bool, inputs: Iterable[Path] = (),
    what: str = "output",
) -> None:
    """Refuse, with one line, an output path that the rules of this module forbid.

    Run before any work; creates nothing (missing parent directories are made when the
    output is written).

    Parameters
    ----------
    path : the output the user named.
    artifact : what the command writes there.
    overwrite : ``--overwrite`` was given.
    inputs : the command's input files and directories.
    what : how messages name the output ("output", "demo output").

    Raises
    ------
    TwinInputError
        The output is, contains or lies inside an input; it exists and ``overwrite`` is
        off, or it is not a ``artifact`` this command wrote; a directory to replace is a
        protected one; its directory cannot be written.
    """
    path = Path(path)
    try:
        output = path.resolve()
    except (OSError, RuntimeError) as exc:
        raise TwinInputError(f"{what}: {path}: cannot resolve the path ({exc})") from None
    for source in inputs:
        relation = _relation(output, Path(source))
        if relation is not None:
            kind = "input directory" if relation == "lies inside" else "input"
            raise TwinInputError(f"{what}: {path} {relation} the {kind} {source}; "
                                 "write it elsewhere")
    if artifact.directory and not artifact.in_place and output in _protected_directories():
        raise TwinInputError(f"{what}: {path} is the home or working directory or one above "
                             f"them; {artifact.command} replaces its output directory "
                             "whole, so give a new or report directory")
    if path.is_symlink() and artifact.directory:
        raise TwinInputError(f"{what}: {path} is a symbolic link; give the directory itself")
    if os.path.lexists(path):
        _check_existing(path, artifact, overwrite, what)
    # A directory filled in place is written into; anything else is renamed into its parent.
    _check_writable(path if artifact.in_place and path.is_dir() else path.parent, what)


def _check_existing(path: Path, artifact: Artifact, overwrite: bool, what: str) -> None:
    if artifact.directory:
        if not path.is_dir():
            raise TwinInputError(f"{what}: {path} exists and is not a directory")
        if not any(path.iterdir()):
            return  # an empty directory holds nothing to lose
    elif path.is_dir():
        raise TwinInputError(f"{what}: {path} is a directory")
    if not overwrite:
        exists = "is not empty" if artifact.directory else "already exists"
        raise TwinInputError(f"{what}: {path} {exists} (use --overwrite to replace it)")
    empty_file = path.is_file() and path.stat().st_size == 0
    if not (empty_file or artifact.recognise(path)):
        raise TwinInputError(
            f"{what}: {path} exists and is not a {artifact.label}; --overwrite replaces only "
            f"what {artifact.command} wrote, so move it away or choose another output")


def _check_writable(directory: Path, what: str) -> None:
    parent = directory
    while not parent.exists():
        if os.path.lexists(parent):  # a dangling symbolic link
            raise TwinInputError(f"{what}: {parent} is a broken symbolic link")
        parent = parent.parent
    if not parent.is_dir():
        raise TwinInputError(f"{what}: {parent} is not a directory")
    try:
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".twin-probe-"):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise TwinInputError(f"{what}: directory {parent} is not writable ({reason})") from None


def regular_file(path: Path, what: str, max_bytes: int | None = None) -> int:
    """The size [bytes] of an input that must be a regular file (not a device, pipe or
    directory; a symbolic link to a regular file is fine), at most ``max_bytes``."""
    try:
        info = path.stat()
    except OSError:
        raise TwinInputError(f"{what}: {path}: file not found") from None
    if not stat.S_ISREG(info.st_mode):
        raise TwinInputError(f"{what}: {path} is not a regular file")
    if max_bytes is not None and info.st_size > max_bytes:
        raise TwinInputError(f"{what}: {path} is {info.st_size / 2**20:.0f} MiB, more than "
                             f"the {max_bytes / 2**20:.0f} MiB accepted")
    return info.st_size


# ----------------------------------------------------------------------- writers


def _temporary_sibling(path: Path, directory: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    umask = os.umask(0)
    os.umask(umask)
    if directory:
        made = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
        made.chmod(0o777 & ~umask)  # mkdtemp makes 0700: as readable as any folder
        return made
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    Path(name).chmod(0o666 & ~umask)  # mkstemp makes 0600; outputs are as readable as any file
    return Path(name)


def _fsync(path: Path) -> None:
    with path.open("rb") as f:
        os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write; on success it is flushed to disk
    and renamed onto ``path``, on an exception removed (``path`` is left as it was)."""
    tmp = _temporary_sibling(Path(path), directory=False)
    try:
        yield tmp
        _fsync(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """``data`` to ``path`` through :func:`atomic_file`."""
    with atomic_file(path) as tmp:
        tmp.write_bytes(data)


@contextlib.contextmanager
def atomic_directory(path: Path) -> Iterator[Path]:
    """Yield a temporary directory beside ``path`` to fill; on success it takes the place
    of ``path``, whose old content is removed only after that, on an exception it is
    removed (``path`` is left as it was)."""
    path = Path(path)
    tmp = _temporary_sibling(path, directory=True)
    try:
        yield tmp
        for child in tmp.rglob("*"):
            if child.is_file():
                _fsync(child)
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
            path.replace(old / path.name)
        try:
            tmp.replace(path)
        except OSError:
            if old is not None:
                (old / path.name).replace(path)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------------ stamps


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes (hex), read a MiB at a time."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def stamp(path: Path, name: str) -> None:
    """Mark the PNG or HTML file ``path`` as twin's ``name`` (read by :func:`stamp_of`):
    a PNG ``tEXt`` chunk, an HTML ``<meta name="generator">``, both ``mmwave-twin NAME``."""
    data = path.read_bytes()
    text = (STAMP_PREFIX + name).encode("latin-1")
    if data.startswith(_PNG_SIGNATURE):
        header_end = len(_PNG_SIGNATURE) + 8 + 13 + 4  # the IHDR chunk comes first
        chunk = _png_chunk(b"tEXt", STAMP_KEYWORD.encode() + b"\0" + text)
        path.write_bytes(data[:header_end] + chunk + data[header_end:])
        return
    head = re.search(rb"<head[^>]*>", data[:_HTML_HEAD_BYTES], flags=re.IGNORECASE)
    if head is None:
        raise ValueError(f"{path}: neither a PNG nor an HTML page with a <head>")
    meta = b'<meta name="generator" content="' + text + b'">'
    path.write_bytes(data[:head.end()] + meta + data[head.end():])


def stamp_of(path: Path) -> str | None:
    """The ``name`` a PNG or HTML file was stamped with by :func:`stamp`, else None."""
    try:
        with path.open("rb") as f:
            start = f.read(_HTML_HEAD_BYTES)
            if not start.startswith(_PNG_SIGNATURE):
                found = _HTML_STAMP.search(start)
                return found.group(1).decode("latin-1") if found else None
            f.seek(len(_PNG_SIGNATURE))
            while header := f.read(8):
                if len(header) < 8:
                    return None
                length, kind = struct.unpack(">I", header[:4])[0], header[4:]
                if kind in (b"IDAT", b"IEND"):
                    return None
                body = f.read(length)
                f.seek(4, os.SEEK_CUR)
                keyword, _, text = body.partition(b"\0")
                if kind == b"tEXt" and keyword == STAMP_KEYWORD.encode():
                    value = text.decode("latin-1")
                    if value.startswith(STAMP_PREFIX):
                        return value.removeprefix(STAMP_PREFIX)
    except OSError:
        return None
    return None


def stamped(name: str) -> Callable[[Path], bool]:
    """A :attr:`Artifact.recognise` for files stamped ``name``."""
    return lambda path: path.is_file() and stamp_of(path) == name


__all__ = ["Artifact", "atomic_directory", "atomic_file", "check_output", "regular_file",
           "stamp", "stamp_of", "stamped", "write_bytes_atomic"]
