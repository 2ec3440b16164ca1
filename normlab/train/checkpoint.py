"""Checkpoint files that cannot lie: an ``.npz`` of arrays plus a ``.json`` sidecar.

A checkpoint named ``STEM`` is the pair ``STEM.npz`` (every array, saved with
``np.savez``; loaded with ``allow_pickle=False``) and ``STEM.json`` (scalars,
histories, hyperparameters, RNG states, counters). Nothing is ever pickled.

Both files are written atomically: to a temporary file in the same directory,
flushed and fsynced, then ``os.replace``-d into place, so a crash leaves either
the old file or the new one, never half a file. The npz is written first and
the sidecar records its SHA-256, so a sidecar paired with an npz from another
write (a crash between the two renames) is detected on load.

Sidecar layout (``format_version`` 1)::

    {"format": "normlab-checkpoint", "format_version": 1,
     "npz": "STEM.npz", "npz_sha256": "<hex>", "arrays": [<npz keys>],
     "meta": {...caller's JSON-able content...}}

Arrays are stored under string keys; nested ``{group: {name: array}}``
dicts are flattened with :func:`flatten` and rebuilt with :func:`unflatten`.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from .._io import atomic_write

__all__ = ["CheckpointError", "FORMAT", "FORMAT_VERSION", "checkpoint_paths",
           "save_checkpoint", "load_checkpoint", "flatten", "unflatten"]

FORMAT = "normlab-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file is corrupt, incomplete, of another format, or does not
    match the model/solver it is loaded into. The message names the file."""


def checkpoint_paths(path) -> tuple[Path, Path]:
    """``(STEM.npz, STEM.json)`` for ``path`` given as the stem, the npz or the json."""
    p = Path(os.fspath(path))
    if p.suffix in (".npz", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".npz"), p.with_name(p.name + ".json")


def flatten(groups: dict[str, dict[str, np.ndarray]], sep: str = "/") -> dict[str, np.ndarray]:
    """``{"params": {"W1": a}} -> {"params/W1": a}``; raises on ambiguous keys."""
    flat: dict[str, np.ndarray] = {}
    for group, arrays in groups.items():
        for name, arr in arrays.items():
            key = f"{group}{sep}{name}"
            if sep in group or key in flat:
                raise ValueError(f"cannot store array {name!r} of group {group!r}: key {key!r} is ambiguous")
            flat[key] = arr
    return flat


def unflatten(flat: dict[str, np.ndarray], sep: str = "/") -> dict[str, dict[str, np.ndarray]]:
    """Inverse of :func:`flatten` (splits at the first separator)."""
    groups: dict[str, dict[str, np.ndarray]] = {}
    for key, arr in flat.items():
        group, _, name = key.partition(sep)
        groups.setdefault(group, {})[name] = arr
    return groups


def save_checkpoint(path, arrays: dict[str, np.ndarray], meta: dict) -> tuple[Path, Path]:
    """Write ``arrays`` to ``STEM.npz`` and ``meta`` to ``STEM.json``, atomically.

    Inputs:
    - path: the stem (``run_epoch_3``), or the ``.npz``/``.json`` path.
    - arrays: str -> ndarray of a non-object dtype (object arrays would need pickle).
    - meta: JSON-serialisable dict; NaN/inf are refused (strict JSON).

    Returns the ``(npz_path, json_path)`` written.
    """
    npz_path, json_path = checkpoint_paths(path)
    for key, arr in arrays.items():
        if not isinstance(arr, np.ndarray) or arr.dtype.hasobject:
            raise TypeError(f"checkpoint array {key!r} must be an ndarray of a numeric dtype, "
                            f"got {type(arr).__name__}" + (f" of dtype {arr.dtype}" if isinstance(arr, np.ndarray) else ""))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    payload = buf.getvalue()
    sidecar = {"format": FORMAT, "format_version": FORMAT_VERSION, "npz": npz_path.name,
               "npz_sha256": hashlib.sha256(payload).hexdigest(),
               "arrays": sorted(arrays), "meta": meta}
    # Serialise before writing anything, so a bad meta leaves no orphan npz.
    text = json.dumps(sidecar, indent=1, allow_nan=False, sort_keys=False)
    atomic_write(npz_path, lambda f: f.write(payload))
    atomic_write(json_path, lambda f: f.write(text.encode("utf-8")))
    return npz_path, json_path


def load_checkpoint(path) -> tuple[dict[str, np.ndarray], dict]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Returns ``(arrays, meta)``. Raises ``FileNotFoundError`` when either file
    is missing and :class:`CheckpointError` when a file is corrupt, of an
    unknown format/version, or the npz does not belong to the sidecar; every
    message names the file.
    """
    npz_path, json_path = checkpoint_paths(path)
    for p in (json_path, npz_path):
        if not p.is_file():
            raise FileNotFoundError(f"checkpoint file {str(p)!r} not found (a checkpoint is the "
                                    f"pair {npz_path.name} + {json_path.name})")
    try:
        sidecar = json.loads(json_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"checkpoint sidecar {str(json_path)!r} is not valid JSON "
                              f"(truncated or corrupt): {e}") from None
    if not isinstance(sidecar, dict) or sidecar.get("format") != FORMAT:
        raise CheckpointError(f"{str(json_path)!r} is not a normlab checkpoint sidecar")
    if sidecar.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{str(json_path)!r} has checkpoint format version "
                              f"{sidecar.get('format_version')!r}; this normlab reads version {FORMAT_VERSION}")
    payload = npz_path.read_bytes()
    if hashlib.sha256(payload).hexdigest() != sidecar.get("npz_sha256"):
        raise CheckpointError(f"checkpoint arrays {str(npz_path)!r} do not match the checksum recorded "
                              f"in {str(json_path)!r}: the file is corrupt or from another write")
    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"checkpoint arrays {str(npz_path)!r} cannot be read: {e}") from None
    if sorted(arrays) != sidecar.get("arrays"):
        raise CheckpointError(f"checkpoint arrays {str(npz_path)!r} hold keys {sorted(arrays)}, "
                              f"but {str(json_path)!r} lists {sidecar.get('arrays')}")
    meta = sidecar.get("meta")
    if not isinstance(meta, dict):
        raise CheckpointError(f"{str(json_path)!r} has no 'meta' object")
    return arrays, meta
