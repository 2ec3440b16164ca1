"""Safe extraction of a downloaded tar archive (CIFAR-10's ``.tar.gz``).

Every member is checked before anything is written: only regular files and
directories, with relative paths that stay inside the destination (no
absolute paths, no ``..``, no drive letters), each file path once and never
inside another file; symbolic and hard links, devices and FIFOs are refused.
Files are written by normlab itself (never ``tarfile.extractall``), without
modes, owners or times from the archive.
"""
from __future__ import annotations

import os
import shutil
import tarfile
import zlib
from pathlib import Path, PurePosixPath

from .errors import DataError

__all__ = ["check_members", "safe_extract"]


def _member_error(archive, member, why):
    return DataError(f"{archive}: refusing member {member.name!r}: {why}; the archive is not a "
                     "plain dataset archive (delete it and download again)")


def check_members(tar: tarfile.TarFile, archive) -> list[tarfile.TarInfo]:
    """The members of ``tar``, all checked; raises :class:`DataError` at the first unsafe one."""
    members = tar.getmembers()
    for m in members:
        if not (m.isfile() or m.isdir()):
            kind = ("symbolic link" if m.issym() else "hard link" if m.islnk() else
                    "device" if (m.ischr() or m.isblk()) else "FIFO" if m.isfifo() else "special file")
            raise _member_error(archive, m, f"a {kind}")
        p = PurePosixPath(m.name)
        if m.name.startswith(("/", "\\")) or p.is_absolute() or (len(m.name) > 1 and m.name[1] == ":"):
            raise _member_error(archive, m, "an absolute path")
        if ".." in p.parts or "\\" in m.name:
            raise _member_error(archive, m, "a path that leaves the destination")
        if "\x00" in m.name:
            raise _member_error(archive, m, "a NUL in its name")
        if m.isfile() and not p.parts:
            raise _member_error(archive, m, "a file without a name")
    _check_unique(members, archive)
    return members


def _check_unique(members, archive) -> None:
    """Each file path once, and never as another member's folder ('a/./x' is 'a/x');
    a folder may repeat."""
    kinds: dict = {}
    for m in members:
        key = PurePosixPath(m.name).parts
        if key in kinds and (m.isfile() or kinds[key]):
            raise _member_error(archive, m, "a second member of the same name")
        kinds[key] = m.isfile()
    for m in members:
        key = PurePosixPath(m.name).parts
        for i in range(1, len(key)):
            if kinds.get(key[:i]):
                raise _member_error(archive, m, f"a path inside the file {'/'.join(key[:i])!r}")


def safe_extract(archive, dest) -> list[Path]:
    """Extract the tar (optionally gz/bz2/xz) ``archive`` into the existing
    directory ``dest`` after checking every member; returns the files written.
    On any error the files written so far, and the directories this call
    created, are removed (directories that were there before are kept)."""
    archive, dest = Path(os.fspath(archive)), Path(os.fspath(dest))
    written: list[Path] = []
    created: list[Path] = []
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = check_members(tar, archive)
            root = dest.resolve()
            for m in members:
                target = (dest / m.name).resolve()
                if target != root and root not in target.parents:
                    raise _member_error(archive, m, "a path that leaves the destination")
                if m.isdir():
                    _make_dirs(target, created)
                    continue
                _make_dirs(target.parent, created)
                src = tar.extractfile(m)
                with src, open(target, "xb") as out:   # 'x': never follow or overwrite
                    written.append(target)
                    shutil.copyfileobj(src, out, 1 << 20)
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        _remove(written, created)
        raise DataError(f"{archive}: corrupt or truncated archive ({exc}); delete it and "
                        "download again") from None
    except BaseException:
        _remove(written, created)
        raise
    return written


def _make_dirs(path: Path, created: list) -> None:
    """``mkdir -p path``, appending each directory it makes to ``created`` (parents first)."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for d in reversed(missing):
        d.mkdir()
        created.append(d)


def _remove(files, dirs):
    for p in files:
        try:
            p.unlink()
        except FileNotFoundError:
            pass
    for d in reversed(dirs):                # deepest first
        try:
            d.rmdir()
        except OSError:
            pass
