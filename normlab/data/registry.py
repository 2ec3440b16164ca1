"""The datasets normlab knows: file layouts, download sources and pinned checksums.

Provenance of every pinned value (so ``normlab data info`` can say whether a
copy is the official release):

Fashion-MNIST
    ``.gz`` MD5s: published in the README of zalandoresearch/fashion-mnist (and
    pinned by torchvision's ``FashionMNIST``). Debian's ``dataset-fashion-mnist``
    (0.0~git20200523.55506a9-1) packages that repository but re-gzipped the
    files, so its ``.gz`` MD5s differ; the MD5/SHA-256/size of the *uncompressed*
    payloads below were computed here from Debian's files. Upstream publishes no
    uncompressed checksums, so these identify "the content Debian ships", which
    is the upstream content recompressed.
MNIST
    ``.gz`` MD5s and the two mirrors: torchvision ``torchvision/datasets/mnist.py``.
    The Google mirror (``storage.googleapis.com/cvdf-datasets/mnist``) is the one
    TensorFlow's datasets use, with the same files. No source publishes checksums
    of the uncompressed MNIST files and none could be computed here (no copy,
    no network), so only their sizes (fixed by the IDX format) are pinned: a raw
    MNIST copy is reported "unverified", never "verified".
CIFAR-10
    Archive MD5s (python ``c58f3010...``, binary ``c32a1d4a...``) and URLs: the
    dataset page https://www.cs.toronto.edu/~kriz/cifar.html. MD5s of the
    extracted python batches: torchvision ``torchvision/datasets/cifar.py``.
    No source publishes MD5s of the extracted binary batches; they are unpinned.
"""
from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["FileSpec", "Layout", "ArchiveSpec", "Dataset", "DATASETS", "get", "names"]


@dataclass(frozen=True)
class FileSpec:
    """One file of a dataset folder.

    ``md5`` is the checksum of the file as published (the ``.gz``, or the
    extracted archive member); ``payload_*`` describe the uncompressed content
    of a ``.gz`` (``None`` where no trustworthy value exists)."""
    name: str
    md5: str | None = None
    payload_md5: str | None = None
    payload_sha256: str | None = None
    payload_size: int | None = None

    @property
    def stem(self) -> str:
        """The name without ``.gz`` (the raw file a user may have instead)."""
        return self.name[:-3] if self.name.endswith(".gz") else self.name


@dataclass(frozen=True)
class Layout:
    """One on-disk format of a dataset: ``format`` is ``'idx'``, ``'cifar-py'``
    or ``'cifar-bin'``; ``folder`` the conventional folder name (``''`` when the
    files sit directly in the dataset folder)."""
    format: str
    folder: str
    files: tuple[FileSpec, ...]


@dataclass(frozen=True)
class ArchiveSpec:
    """A downloadable archive that extracts to ``layout_folder``."""
    filename: str
    md5: str
    urls: tuple[str, ...]
    layout_folder: str


@dataclass(frozen=True)
class Dataset:
    """A dataset: ``name`` is what users type (``normlab data fetch NAME``) and
    the folder it gets under ``NORMLAB_DATA``, the cache and ``/usr/share/datasets``;
    ``aliases`` are other folder names accepted under a parent directory."""
    name: str
    title: str
    layouts: tuple[Layout, ...]
    classes: tuple[str, ...]
    mirrors: tuple[str, ...] = ()          # base URLs for per-file downloads (IDX sets)
    archive: ArchiveSpec | None = None     # single-archive download (CIFAR-10)
    aliases: tuple[str, ...] = ()
    debian_package: str | None = None
    train_files: tuple[str, ...] = field(default=())
    test_files: tuple[str, ...] = field(default=())


def _idx_files(md5s: dict, payloads: dict | None = None) -> tuple[FileSpec, ...]:
    payloads = payloads or {}
    return tuple(FileSpec(name, md5, *payloads.get(name, (None, None, None))) for name, md5 in md5s.items())


_IDX_NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
              "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")

FASHION_MNIST = Dataset(
    name="fashion-mnist",
    title="Fashion-MNIST (Zalando, 70,000 28x28 grayscale clothing images, 10 classes)",
    layouts=(Layout("idx", "", _idx_files(
        dict(zip(_IDX_NAMES, ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
                              "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310"))),
        {  # (md5, sha256, size) of the uncompressed payload, computed from Debian's copies
            "train-images-idx3-ubyte.gz": (
                "f4a8712d7a061bf5bd6d2ca38dc4d50a",
                "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888", 47040016),
            "train-labels-idx1-ubyte.gz": (
                "9018921c3c673c538a1fc5bad174d6f9",
                "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9", 60008),
            "t10k-images-idx3-ubyte.gz": (
                "8181f5470baa50b63fa0f6fddb340f0a",
                "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b", 7840016),
            "t10k-labels-idx1-ubyte.gz": (
                "15d484375f8d13e6eb1aabb0c3f46965",
                "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34", 10008),
        })),),
    classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
             "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
             "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/"),
    aliases=("fashion_mnist", "FashionMNIST/raw"),
    debian_package="dataset-fashion-mnist",
    train_files=("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    test_files=("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
)

MNIST = Dataset(
    name="mnist",
    title="MNIST (LeCun, Cortes & Burges, 70,000 28x28 grayscale digits, 10 classes)",
    layouts=(Layout("idx", "", _idx_files(
        dict(zip(_IDX_NAMES, ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
                              "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c"))),
        # Uncompressed checksums unpublished (see module docstring); sizes follow from the IDX headers.
        {"train-images-idx3-ubyte.gz": (None, None, 47040016),
         "train-labels-idx1-ubyte.gz": (None, None, 60008),
         "t10k-images-idx3-ubyte.gz": (None, None, 7840016),
         "t10k-labels-idx1-ubyte.gz": (None, None, 10008)})),),
    classes=tuple(str(d) for d in range(10)),
    mirrors=("http://yann.lecun.com/exdb/mnist/",
             "https://ossci-datasets.s3.amazonaws.com/mnist/",
             "https://storage.googleapis.com/cvdf-datasets/mnist/"),
    aliases=("MNIST/raw",),
    train_files=("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    test_files=("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
)

_CIFAR_PY_MD5 = {  # torchvision/datasets/cifar.py
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}

CIFAR10_BINARY_ARCHIVE = ArchiveSpec(
    "cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530",
    ("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",), "cifar-10-batches-bin")

CIFAR10 = Dataset(
    name="cifar-10",
    title="CIFAR-10 (Krizhevsky, 60,000 32x32 colour images, 10 classes)",
    layouts=(
        Layout("cifar-py", "cifar-10-batches-py",
               tuple(FileSpec(n, m) for n, m in _CIFAR_PY_MD5.items())),
        Layout("cifar-bin", "cifar-10-batches-bin",
               tuple(FileSpec(f"{n}.bin") for n in _CIFAR_PY_MD5)),
    ),
    classes=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
    archive=ArchiveSpec("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a",
                        ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
                        "cifar-10-batches-py"),
    aliases=("cifar10",),
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test_files=("test_batch",),
)

DATASETS: dict[str, Dataset] = {d.name: d for d in (FASHION_MNIST, MNIST, CIFAR10)}
_SPELLINGS = {"fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist",
              "cifar10": "cifar-10", "cifar": "cifar-10"}


def names() -> tuple[str, ...]:
    return tuple(DATASETS)


def get(name: str | Dataset) -> Dataset:
    """The :class:`Dataset` called ``name`` (``fashion-mnist``, ``mnist``, ``cifar-10``;
    ``fashion_mnist`` and ``cifar10`` also accepted); a ``Dataset`` is returned as is."""
    if isinstance(name, Dataset):
        return name
    key = _SPELLINGS.get(str(name).lower(), str(name).lower())
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[key]
