"""Safe extraction of a downloaded tar archive (CIFAR-10's ``.tar.gz``).

Every member is checked before anything is written: only regular files and
directories, with relative paths that stay inside the destination (no
absolute paths, no ``..``, no drive letters); symbolic and hard links,
devices and FIFOs are refused. Files are written by normlab itself (never
``tarfile.extractall``), without modes, owners or times from the archive.
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
    return members


def safe_extract(archive, dest) -> list[Path]:
    """Extract the tar (optionally gz/bz2/xz) ``archive`` into the existing
    directory ``dest`` after checking every member; returns the files written.
    On any error the files written so far are removed."""
    archive, dest = Path(os.fspath(archive)), Path(os.fspath(dest))
    written: list[Path] = []
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = check_members(tar, archive)
            root = dest.resolve()
            for m in members:
                target = (dest / m.name).resolve()
                if target != root and root not in target.parents:
                    raise _member_error(archive, m, "a path that leaves the destination")
                if m.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(m)
                with src, open(target, "xb") as out:   # 'x': never follow or overwrite
                    written.append(target)
                    shutil.copyfileobj(src, out, 1 << 20)
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        _remove(written)
        raise DataError(f"{archive}: corrupt or truncated archive ({exc}); delete it and "
                        "download again") from None
    except BaseException:
        _remove(written)
        raise
    return written


def _remove(paths):
    for p in paths:
        try:
            p.unlink()
        except FileNotFoundError:
            pass
