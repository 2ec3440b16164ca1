"""Finding a dataset on disk.

Search order (the first folder holding a complete copy wins):

1. ``data_dir``, when given: the dataset folder itself or its parent. It is
   then the *only* place searched, so a mistyped path is an error rather
   than a silent fallback to another copy.
2. ``$NORMLAB_DATA/<name>``
3. the user cache ``~/.cache/normlab/<name>`` (``$XDG_CACHE_HOME/normlab``)
4. the system location ``/usr/share/datasets/<name>`` (Debian's
   ``dataset-fashion-mnist`` installs Fashion-MNIST there)

Under each parent, ``<name>`` may also be one of the dataset's aliases or
layout folders (``cifar-10-batches-py``, torchvision's ``FashionMNIST/raw``).
IDX files may be gzipped (``train-images-idx3-ubyte.gz``) or raw.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .._paths import user_cache
from .errors import DatasetNotFoundError
from .registry import Dataset, Layout, get

__all__ = ["Found", "SYSTEM_DIRS", "cache_dir", "search_dirs", "searched", "locate", "fetch_hint", "fix_hint"]

SYSTEM_DIRS: tuple[Path, ...] = (Path("/usr/share/datasets"),)


def cache_dir() -> Path:
    """The user cache root for downloads: ``$XDG_CACHE_HOME/normlab`` or ``~/.cache/normlab``."""
    return user_cache()


@dataclass(frozen=True)
class Found:
    """A complete copy of ``dataset`` in ``folder`` in the format ``layout``;
    ``files`` maps each registry file name to the path found (``.gz`` or raw)."""
    dataset: Dataset
    layout: Layout
    folder: Path
    files: dict

    @property
    def is_system(self) -> bool:
        return any(d in self.folder.parents for d in SYSTEM_DIRS)

    def path(self, name: str) -> Path:
        return self.files[name]


def _folder_names(ds: Dataset) -> list[str]:
    names = [ds.name, *ds.aliases]
    out = []
    for n in names:
        for layout in ds.layouts:
            out.append(f"{n}/{layout.folder}" if layout.folder else n)
    for layout in ds.layouts:
        if layout.folder:
            out.append(layout.folder)
    return list(dict.fromkeys(out))


def _roots(data_dir) -> list[Path]:
    if data_dir is not None:
        return [Path(os.path.expanduser(os.fspath(data_dir)))]
    roots = []
    if os.environ.get("NORMLAB_DATA"):
        roots.append(Path(os.path.expanduser(os.environ["NORMLAB_DATA"])))
    roots.append(cache_dir())
    roots.extend(SYSTEM_DIRS)
    return roots


def search_dirs(dataset, data_dir=None) -> list[Path]:
    """Every folder that :func:`locate` inspects, in order."""
    names = _folder_names(get(dataset))
    dirs = [r / n for r in _roots(data_dir) for n in names]
    return dirs if data_dir is None else [_roots(data_dir)[0], *dirs]


def searched(dataset, data_dir=None) -> str:
    """The folders :func:`locate` inspects, compactly: ``/root/{name, alias}, ...``."""
    names = "{" + ", ".join(_folder_names(get(dataset))) + "}"
    where = [f"{r}/{names}" for r in _roots(data_dir)]
    if data_dir is not None:
        where.insert(0, str(_roots(data_dir)[0]))
    return " and ".join(where)


def _match(folder: Path, layout: Layout) -> dict | None:
    files = {}
    for spec in layout.files:
        for candidate in (folder / spec.stem, folder / spec.name):
            if candidate.is_file():
                files[spec.name] = candidate
                break
        else:
            return None
    return files


def find(dataset, data_dir=None) -> Found | None:
    """The first complete copy of ``dataset`` in :func:`search_dirs`, or ``None``."""
    ds = get(dataset)
    for folder in search_dirs(ds, data_dir):
        if not folder.is_dir():
            continue
        for layout in ds.layouts:
            files = _match(folder, layout)
            if files is not None:
                return Found(ds, layout, folder, files)
    return None


def fetch_hint(dataset, data_dir=None) -> str:
    """How to get ``dataset``: the fetch command, and the Debian package if there is one."""
    ds = get(dataset)
    where = f" --dir {os.fspath(data_dir)}" if data_dir is not None else ""
    hint = f"run `normlab data fetch {ds.name}{where}` (or pass download=True)"
    if ds.debian_package:
        hint += f", or on Debian/Ubuntu `sudo apt-get install {ds.debian_package}`"
    return hint


def fix_hint(found: Found) -> str:
    """What to do about a corrupt file in ``found``."""
    if found.is_system and found.dataset.debian_package:
        return f"reinstall it: `sudo apt-get install --reinstall {found.dataset.debian_package}`"
    return f"delete it and run `normlab data fetch {found.dataset.name}`"


def locate(dataset, data_dir=None) -> Found:
    """Like :func:`find` but raises :class:`DatasetNotFoundError` listing the
    folders searched and how to get the dataset."""
    ds = get(dataset)
    found = find(ds, data_dir)
    if found is not None:
        return found
    expected = "; or ".join(f"{l.folder + '/' if l.folder else ''}{{{', '.join(f.stem for f in l.files)}}}"
                            for l in ds.layouts)
    idx = " (IDX files raw or .gz)" if any(l.format == "idx" for l in ds.layouts) else ""
    raise DatasetNotFoundError(
        f"{ds.name} not found: looked for {expected}{idx} in "
        f"{searched(ds, data_dir)}; {fetch_hint(ds, data_dir)}")
