"""Exceptions of :mod:`normlab.data`. Every message names the file or the
folders involved and says what to do about it."""
from __future__ import annotations

__all__ = ["DataError", "DatasetNotFoundError", "DownloadError"]


class DataError(ValueError):
    """A data file exists but is not what it claims to be: truncated or corrupt
    gzip, wrong IDX magic number, payload shorter or longer than its header,
    labels out of range, a pickle that asks for anything but plain containers
    and NumPy arrays, an archive member that would escape its folder."""


class DatasetNotFoundError(FileNotFoundError):
    """No complete copy of a dataset in any searched folder (the message lists
    them and the command that fetches the dataset)."""


class DownloadError(OSError):
    """Every source of a file failed (network error or checksum mismatch); the
    message lists each URL tried and why it was rejected. Nothing is cached."""
