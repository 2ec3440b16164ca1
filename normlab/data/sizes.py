"""Do the runs' sizes fit the dataset? Answered from file headers, before any run starts.

A run asks for ``num_train`` training images, the next ``num_val`` for
validation and the first ``num_test`` test images (``None``: the loader's
default: 59,000 / 1,000 / 10,000 for the IDX sets, 49,000 / 1,000 / 1,000 for
CIFAR-10). The counts available come without decoding the data:

* IDX: the count in each images file's header (a gzip is inflated only for
  its first bytes);
* CIFAR-10 binary: the file size over the 3073-byte record;
* CIFAR-10 python: an upper bound, the file size over the 3072 pixel bytes
  every image needs (unpickling 180 MB to count exactly is what the run does).
"""
from __future__ import annotations

import inspect
import os

from .idx import IMAGES_MAGIC, read_idx_header
from .locate import Found, fix_hint

__all__ = ["dataset_counts", "check_run_sizes"]

_PIXELS = 3 * 32 * 32
_FIELDS = (("num_train", "num_training"), ("num_val", "num_validation"), ("num_test", "num_test"))


def _batch_count(found: Found, name: str) -> int:
    if found.layout.format == "cifar-bin":
        return os.path.getsize(found.path(name + ".bin")) // (1 + _PIXELS)
    return os.path.getsize(found.path(name)) // _PIXELS


def dataset_counts(found: Found) -> tuple[int, int]:
    """``(n_train, n_test)`` images of a located dataset, from headers and file
    sizes only (an upper bound for CIFAR-10's python batches)."""
    ds = found.dataset
    if found.layout.format == "idx":
        hint = fix_hint(found)
        return tuple(read_idx_header(found.path(files[0]), IMAGES_MAGIC, hint)[0]
                     for files in (ds.train_files, ds.test_files))
    return (sum(_batch_count(found, n) for n in ds.train_files),
            sum(_batch_count(found, n) for n in ds.test_files))


def _defaults(found: Found) -> dict:
    """The loader's default sizes, read from its signature so they cannot drift."""
    if found.layout.format == "idx":
        from .mnist import load_idx_dataset as loader
    else:
        from .cifar import get_CIFAR10_data as loader
    params = inspect.signature(loader).parameters
    return {field: params[arg].default for field, arg in _FIELDS}


def _sizes(spec, defaults: dict, label: str) -> dict:
    sizes = {}
    for field, _ in _FIELDS:
        v = getattr(spec, field, None)
        v = defaults[field] if v is None else v
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"{label}: {field} must be a non-negative integer, got {v!r}")
        sizes[field] = v
    if sizes["num_train"] == 0:
        raise ValueError(f"{label}: num_train must be at least 1 (the mean image is taken over it)")
    return sizes


def check_run_sizes(found: Found, specs) -> None:
    """Raise ``ValueError`` (one line, naming the run, the numbers, the dataset
    and its folder) at the first spec whose sizes exceed what ``found`` holds.

    ``specs``: objects with ``name``, ``num_train``, ``num_val`` and ``num_test``
    (and optionally ``experiment``). Raises :class:`DataError` for an unreadable header."""
    specs = list(specs)
    if not specs:
        return
    n_train, n_test = dataset_counts(found)
    defaults = _defaults(found)
    bound = "at most " if found.layout.format == "cifar-py" else ""
    where = f"{found.dataset.name} in {found.folder}"
    for spec in specs:
        experiment = getattr(spec, "experiment", None)
        label = f"run {experiment}/{spec.name}" if experiment else f"run {spec.name}"
        s = _sizes(spec, defaults, label)
        if s["num_train"] + s["num_val"] > n_train:
            raise ValueError(f"{label}: num_train + num_val = {s['num_train']} + {s['num_val']} exceeds the "
                             f"{bound}{n_train} training images of {where}; lower --num-train")
        if s["num_test"] > n_test:
            fix = ("lower its num_test" if getattr(spec, "num_test", None) is not None else
                   "that is the loader's default; use a copy with that many test images")
            raise ValueError(f"{label}: num_test = {s['num_test']} exceeds the {bound}{n_test} test images "
                             f"of {where}; {fix}")
