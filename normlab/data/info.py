"""``normlab data info``: where each dataset was found, whether it is the
official release, its shapes and class counts, and how to get it if missing.

A file is

* ``verified`` when its MD5 equals the published one, or when its
  uncompressed content matches the pinned checksum of the official payload
  (Debian's re-gzipped Fashion-MNIST: same content, different ``.gz`` bytes);
* ``MISMATCH`` when a pinned checksum exists and differs (not the official
  release; it still loads if its format is valid);
* ``unverified`` when nothing is pinned for the form found (a raw MNIST file,
  a binary CIFAR batch);
* ``corrupt`` when it cannot be read at all.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import DataError
from .idx import IMAGES_MAGIC, LABELS_MAGIC, decompress, parse_idx
from .locate import fetch_hint, find, fix_hint, searched
from .registry import FileSpec, get, names

__all__ = ["FileCheck", "SplitSummary", "DatasetInfo", "verify_bytes", "dataset_info", "all_info", "format_info"]


@dataclass(frozen=True)
class FileCheck:
    name: str
    path: Path
    status: str            # 'verified' | 'MISMATCH' | 'unverified' | 'corrupt'
    detail: str


@dataclass(frozen=True)
class SplitSummary:
    split: str             # 'train' | 'test'
    shape: tuple           # (N, C, H, W)
    class_counts: tuple    # count of each label 0..K-1


@dataclass
class DatasetInfo:
    name: str
    title: str
    folder: Path | None
    files: list = field(default_factory=list)
    splits: list = field(default_factory=list)
    error: str | None = None
    hint: str = ""
    searched: str = ""

    @property
    def verified(self) -> bool:
        return bool(self.files) and self.error is None and all(f.status == "verified" for f in self.files)


def verify_bytes(raw: bytes, payload, spec: FileSpec) -> tuple[str, str]:
    """``(status, detail)`` of a file whose bytes are ``raw`` and uncompressed content
    ``payload`` (bytes-like; ``raw`` itself when the file is not compressed)."""
    md5 = hashlib.md5(raw).hexdigest()
    if spec.md5 and md5 == spec.md5:
        return "verified", f"MD5 {md5} is the published one"
    if spec.payload_size is not None and len(payload) != spec.payload_size:
        return "MISMATCH", f"{len(payload)} bytes uncompressed, the official file has {spec.payload_size}"
    if spec.payload_sha256:
        sha = hashlib.sha256(payload).hexdigest()
        if sha == spec.payload_sha256:
            how = "recompressed copy (e.g. Debian's)" if raw is not payload else "uncompressed copy"
            return "verified", f"{how}; uncompressed SHA-256 {sha[:16]}... matches the pinned official content"
        return "MISMATCH", f"uncompressed SHA-256 {sha[:16]}... is not the official {spec.payload_sha256[:16]}..."
    if raw is payload and spec.md5 and not spec.name.endswith(".gz"):
        return "MISMATCH", f"MD5 {md5} is not the official {spec.md5}"
    if spec.md5 and raw is not payload:
        return "unverified", (f".gz MD5 {md5} is not the published {spec.md5} and no checksum of the "
                              "uncompressed file is published")
    return "unverified", "no published checksum for this form of the file"


def _counts(labels, k) -> tuple:
    return tuple(int(c) for c in np.bincount(np.asarray(labels, dtype=np.int64), minlength=k)[:k])


def _idx_info(info, found, ds):
    hint = fix_hint(found)
    arrays = {}
    for spec in found.layout.files:
        path = found.path(spec.name)
        magic = IMAGES_MAGIC if "images" in spec.name else LABELS_MAGIC
        raw = path.read_bytes()                      # MD5s are of the file's own bytes
        payload = decompress(raw, path, hint, magic)  # inflated no further than its header says
        status, detail = verify_bytes(raw, payload, spec)
        info.files.append(FileCheck(spec.name, path, status, detail))
        arrays[spec.name] = parse_idx(payload, path, magic, hint)
    for split, (img, lab) in (("train", ds.train_files), ("test", ds.test_files)):
        X, y = arrays[img], arrays[lab]
        if len(X) != len(y):
            raise DataError(f"{found.path(img)} holds {len(X)} images but {found.path(lab)} {len(y)} labels")
        if y.size and int(y.max()) >= len(ds.classes):
            raise DataError(f"{found.path(lab)}: label {int(y.max())} is outside 0..{len(ds.classes) - 1}")
        info.splits.append(SplitSummary(split, (len(X), 1, *X.shape[1:]), _counts(y, len(ds.classes))))


def _cifar_info(info, found, ds):
    from .cifar import read_cifar10
    for spec in found.layout.files:
        raw = found.path(spec.name).read_bytes()
        status, detail = verify_bytes(raw, raw, spec)
        info.files.append(FileCheck(spec.name, found.path(spec.name), status, detail))
    Xtr, ytr, Xte, yte = read_cifar10(found)
    info.splits.append(SplitSummary("train", Xtr.shape, _counts(ytr, len(ds.classes))))
    info.splits.append(SplitSummary("test", Xte.shape, _counts(yte, len(ds.classes))))


def dataset_info(name, data_dir=None) -> DatasetInfo:
    """Find ``name``, verify every file and summarise its splits (reads the whole dataset)."""
    ds = get(name)
    found = find(ds, data_dir)
    info = DatasetInfo(ds.name, ds.title, found.folder if found else None,
                       searched=searched(ds, data_dir))
    if found is None:
        info.hint = fetch_hint(ds, data_dir)
        return info
    try:
        (_cifar_info if ds.archive is not None else _idx_info)(info, found, ds)
    except (DataError, OSError) as exc:
        info.error = str(exc)
        info.hint = fix_hint(found)
    return info


def _format_counts(counts) -> str:
    if len(set(counts)) == 1:
        return f"{counts[0]} per class"
    return "per class " + " ".join(map(str, counts))


def format_info(infos) -> str:
    """The text of ``normlab data info``."""
    lines = []
    for info in infos:
        if info.folder is None:
            lines.append(f"{info.name}: not found")
            lines.append(f"  looked in {info.searched}")
            lines.append(f"  to get it: {info.hint}")
            continue
        verdict = ("verified: the official release" if info.verified else
                   "CORRUPT" if info.error else
                   "loads, but MISMATCH: not the official release" if any(f.status == "MISMATCH" for f in info.files)
                   else "loads; not verified (no published checksum for these files)")
        lines.append(f"{info.name}: {info.folder}  [{verdict}]")
        width = max((len(f.name) for f in info.files), default=0)
        for f in info.files:
            lines.append(f"  {f.name:{width}s}  {f.status:10s}  {f.detail}")
        for s in info.splits:
            shape = "x".join(map(str, s.shape[1:]))
            lines.append(f"  {s.split:5s} {s.shape[0]:6d} images {shape}, labels 0..{len(s.class_counts) - 1}: "
                         f"{_format_counts(s.class_counts)}")
        if info.error:
            lines.append(f"  error: {info.error}")
    return "\n".join(lines)


def all_info(data_dir=None, which=None) -> list[DatasetInfo]:
    """:func:`dataset_info` for each dataset in ``which`` (default: all known)."""
    return [dataset_info(n, data_dir) for n in (which or names())]
