"""Downloading a dataset: official sources first, then mirrors; MD5 before use.

Each file is streamed into a temporary file in its destination folder while
its MD5 is computed; only a file whose MD5 equals the published one is
renamed into place. A network error or a mismatch removes the temporary file
and moves on to the next source; when every source fails,
:class:`DownloadError` lists them all and nothing is cached. Archives
(CIFAR-10) are verified, extracted with :func:`~normlab.data.archive.safe_extract`
into a temporary folder, their members checked against the pinned MD5s, and
only then renamed into place.

Progress goes to stderr: a bar when stderr is a terminal, one line per file otherwise.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from .archive import safe_extract
from .errors import DataError, DownloadError
from .locate import _match, cache_dir
from .registry import Dataset, get

__all__ = ["download_file", "fetch", "target_dir", "md5_file"]

_CHUNK = 1 << 20
_USER_AGENT = "normlab (https://github.com/normlab; dataset fetch)"


def md5_file(path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


class _Progress:
    """A dependency-free progress display on ``stream``."""

    def __init__(self, label: str, total: int | None, stream, enabled: bool):
        self.label, self.total, self.stream, self.enabled = label, total, stream, enabled
        self.tty = enabled and hasattr(stream, "isatty") and stream.isatty()
        self.last = 0.0
        if enabled and not self.tty:
            size = f" ({total / 1e6:.1f} MB)" if total else ""
            print(f"downloading {label}{size}", file=stream, flush=True)

    def update(self, done: int, final: bool = False):
        if not self.tty or (not final and time.monotonic() - self.last < 0.1):
            return
        self.last = time.monotonic()
        if self.total:
            frac = min(done / self.total, 1.0)
            bar = "#" * int(30 * frac) + "." * (30 - int(30 * frac))
            text = f"\r{self.label[-40:]:40s} [{bar}] {100 * frac:5.1f}% {done / 1e6:7.1f}/{self.total / 1e6:.1f} MB"
        else:
            text = f"\r{self.label[-40:]:40s} {done / 1e6:7.1f} MB"
        self.stream.write(text + ("\n" if final else ""))
        self.stream.flush()


def _fetch_one(url, tmp_fd, timeout, max_bytes, progress) -> str:
    scheme = urlsplit(url).scheme
    if scheme not in ("http", "https"):
        raise DownloadError(f"unsupported URL scheme {scheme!r} (http and https only)")
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    h = hashlib.md5()
    with urllib.request.urlopen(request, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        if total is not None and total > max_bytes:
            raise DownloadError(f"{total} bytes announced, more than the {max_bytes} allowed")
        bar = _Progress(url, total, progress, progress is not None)
        done = 0
        with os.fdopen(os.dup(tmp_fd), "wb") as out:
            while block := response.read(_CHUNK):
                done += len(block)
                if done > max_bytes:
                    raise DownloadError(f"more than the {max_bytes} bytes allowed")
                h.update(block)
                out.write(block)
                bar.update(done)
            out.flush()
            os.fsync(out.fileno())
        if total is not None and done != total:
            raise DownloadError(f"connection closed after {done} of {total} bytes")
        bar.update(done, final=True)
    return h.hexdigest()


def _stream(progress):
    return sys.stderr if progress is True else None if progress is False else progress


def _make_dirs(path: Path) -> list[Path]:
    """``mkdir -p path``; returns the directories created, deepest first."""
    created = []
    p = path
    while not p.exists():
        created.append(p)
        p = p.parent
    path.mkdir(parents=True, exist_ok=True)
    return created


def download_file(urls, dest, md5: str, *, timeout: float = 60.0, max_bytes: int = 1 << 30,
                  progress=True) -> Path:
    """Download the first of ``urls`` whose content has MD5 ``md5`` to ``dest``.

    Streams into a temporary file next to ``dest``, checks the MD5 and renames
    it onto ``dest``; on failure tries the next URL. ``progress``: a text
    stream, ``True`` for stderr (resolved at call time), ``None``/``False`` for
    silence. Raises :class:`DownloadError` listing every URL and its failure;
    then no temporary file remains and ``dest`` is as it was."""
    dest = Path(os.fspath(dest))
    progress = _stream(progress)
    failures = []
    for url in urls:
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        try:
            got = _fetch_one(url, fd, timeout, max_bytes, progress)
            if got != md5:
                raise DownloadError(f"MD5 {got} does not match the published {md5}")
            os.close(fd)
            fd = None
            os.replace(tmp, dest)
            return dest
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", None) if isinstance(exc, urllib.error.URLError) \
                and not isinstance(exc, urllib.error.HTTPError) else None
            failures.append(f"{url}: {reason or exc}")
            if progress is not None:
                print(f"  failed: {reason or exc}", file=progress, flush=True)
        finally:
            if fd is not None:
                os.close(fd)
            if os.path.exists(tmp):
                os.unlink(tmp)
    raise DownloadError(f"could not download {dest.name}: " + "; ".join(failures)
                        + ". Nothing was saved")


def target_dir(dataset, data_dir=None) -> Path:
    """Where a download of ``dataset`` goes: ``data_dir`` itself when its name is
    the dataset's (or an alias or layout folder), else ``data_dir/<name>``;
    without ``data_dir``, ``$NORMLAB_DATA/<name>`` or ``~/.cache/normlab/<name>``."""
    ds = get(dataset)
    if data_dir is not None:
        d = Path(os.path.expanduser(os.fspath(data_dir)))
        if d.name in {l.folder for l in ds.layouts if l.folder}:
            return d.parent                       # the archive extracts this folder itself
        if d.name == ds.name or any(d.as_posix().endswith("/" + a) for a in ds.aliases):
            return d
        return d / ds.name
    root = os.environ.get("NORMLAB_DATA")
    return (Path(os.path.expanduser(root)) if root else cache_dir()) / ds.name


def fetch(dataset, data_dir=None, mirrors=None, *, progress=True, timeout: float = 60.0) -> Path:
    """Download ``dataset`` (name or :class:`Dataset`) into :func:`target_dir`
    and return the folder holding its files. ``mirrors`` replaces the
    registry's base URLs (IDX sets) or archive URLs (CIFAR-10). Files already
    present with the published MD5 are kept."""
    ds = get(dataset)
    dest = target_dir(ds, data_dir)
    progress = _stream(progress)
    created = _make_dirs(dest)
    try:
        if ds.archive is not None:
            return _fetch_archive(ds, dest, mirrors, progress, timeout)
        return _fetch_files(ds, dest, mirrors, progress, timeout)
    except BaseException:
        for d in created:                 # only the empty folders this call made
            try:
                d.rmdir()
            except OSError:
                break
        raise


def _fetch_files(ds: Dataset, dest: Path, mirrors, progress, timeout) -> Path:
    bases = list(mirrors) if mirrors else list(ds.mirrors)
    for spec in ds.layouts[0].files:
        target = dest / spec.name
        if target.is_file() and md5_file(target) == spec.md5:
            continue
        urls = [b if b.endswith(spec.name) else b.rstrip("/") + "/" + spec.name for b in bases]
        download_file(urls, target, spec.md5, timeout=timeout, progress=progress)
    return dest


def _fetch_archive(ds: Dataset, dest: Path, mirrors, progress, timeout) -> Path:
    arc = ds.archive
    layout = next(l for l in ds.layouts if l.folder == arc.layout_folder)
    final = dest / layout.folder
    if final.is_dir() and _match(final, layout) is not None:
        return final
    if final.exists():
        raise DataError(f"{final} exists but is incomplete; remove it (or pick another --dir) "
                        "and fetch again")
    urls = list(mirrors) if mirrors else list(arc.urls)
    staging = Path(tempfile.mkdtemp(dir=dest, prefix=".fetch-"))
    try:
        archive = download_file(urls, staging / arc.filename, arc.md5, timeout=timeout,
                                progress=progress, max_bytes=1 << 30)
        extracted = staging / "x"
        extracted.mkdir()
        safe_extract(archive, extracted)
        folder = extracted / layout.folder
        for spec in layout.files:
            path = folder / spec.name
            if not path.is_file():
                raise DataError(f"{archive}: has no {layout.folder}/{spec.name}; it is not the "
                                f"{ds.name} archive")
            if spec.md5 and md5_file(path) != spec.md5:
                raise DataError(f"{archive}: {layout.folder}/{spec.name} has MD5 {md5_file(path)}, "
                                f"not the official {spec.md5}; nothing was saved")
        os.replace(folder, final)
        return final
    finally:
        shutil.rmtree(staging, ignore_errors=True)
