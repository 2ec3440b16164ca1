"""``normlab data info``: verification against pinned checksums, shapes, class counts, hints."""
import gzip
import hashlib
import os
import pickle

import numpy as np
import pytest

from normlab.cli import main
from normlab.data.info import dataset_info, format_info, verify_bytes
from normlab.data.registry import FileSpec
from normlab.data.writers import idx_bytes, write_cifar_bin_batch, write_idx


pytestmark = pytest.mark.usefixtures("isolated_data_dirs")


def h(b, algo="md5"):
    return hashlib.new(algo, b).hexdigest()


PAYLOAD = idx_bytes(np.arange(20, dtype=np.uint8) % 10)
GZ = gzip.compress(PAYLOAD, mtime=0)
REGZ = gzip.compress(PAYLOAD, compresslevel=1, mtime=12345)   # same content, other .gz bytes


@pytest.mark.parametrize("raw,payload,spec,status,detail", [
    (GZ, PAYLOAD, FileSpec("l.gz", h(GZ)), "verified", "is the published one"),
    (REGZ, PAYLOAD, FileSpec("l.gz", h(GZ), h(PAYLOAD), h(PAYLOAD, "sha256"), len(PAYLOAD)),
     "verified", "recompressed copy"),
    (PAYLOAD, PAYLOAD, FileSpec("l.gz", h(GZ), h(PAYLOAD), h(PAYLOAD, "sha256"), len(PAYLOAD)),
     "verified", "uncompressed copy"),
    (REGZ, PAYLOAD, FileSpec("l.gz", h(GZ), payload_sha256="0" * 64), "MISMATCH", "not the official"),
    (REGZ, PAYLOAD, FileSpec("l.gz", h(GZ), payload_size=99), "MISMATCH", "the official file has 99"),
    (REGZ, PAYLOAD, FileSpec("l.gz", h(GZ)), "unverified", "no checksum of the uncompressed file is published"),
    (PAYLOAD, PAYLOAD, FileSpec("data_batch_1", "0" * 32), "MISMATCH", "is not the official"),
    (PAYLOAD, PAYLOAD, FileSpec("data_batch_1.bin"), "unverified", "no published checksum"),
])
def test_verify_statuses(raw, payload, spec, status, detail):
    got_status, got_detail = verify_bytes(raw, payload, spec)
    assert got_status == status and detail in got_detail


def write_mnist(folder, n=30):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    write_idx(folder / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
    write_idx(folder / "train-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8))
    write_idx(folder / "t10k-images-idx3-ubyte", rng.integers(0, 256, (10, 28, 28), dtype=np.uint8))
    write_idx(folder / "t10k-labels-idx1-ubyte", np.array([0, 0, 1, 2, 3, 4, 5, 6, 7, 9], np.uint8))


def test_info_of_a_user_mnist_copy(tmp_path):
    write_mnist(tmp_path / "mnist")
    info = dataset_info("mnist", tmp_path)
    assert info.folder == tmp_path / "mnist" and not info.verified and info.error is None
    assert [s.shape for s in info.splits] == [(30, 1, 28, 28), (10, 1, 28, 28)]
    assert info.splits[0].class_counts == (3,) * 10
    assert info.splits[1].class_counts == (2, 1, 1, 1, 1, 1, 1, 1, 0, 1)
    text = format_info([info])
    assert f"mnist: {tmp_path / 'mnist'}  [loads, but MISMATCH: not the official release]" in text
    assert "train     30 images 1x28x28, labels 0..9: 3 per class" in text
    assert "test      10 images 1x28x28, labels 0..9: per class 2 1 1 1 1 1 1 1 0 1" in text


def test_info_of_corrupt_and_missing_copies(tmp_path):
    write_mnist(tmp_path / "mnist")
    p = tmp_path / "mnist" / "train-labels-idx1-ubyte.gz"
    p.write_bytes(p.read_bytes()[:12])
    info = dataset_info("mnist", tmp_path)
    assert info.error and "truncated or corrupt gzip" in info.error and "normlab data fetch mnist" in info.hint
    assert "[CORRUPT]" in format_info([info])
    assert main(["data", "info", "mnist", "--dir", str(tmp_path)]) == 1
    missing = dataset_info("cifar-10")
    text = format_info([missing])
    assert text.startswith("cifar-10: not found") and "normlab data fetch cifar-10" in text
    assert str(tmp_path / "cache" / "normlab") in text


def test_info_of_cifar_copies(tmp_path):
    rng = np.random.default_rng(0)
    py, binf = tmp_path / "a" / "cifar-10-batches-py", tmp_path / "b" / "cifar-10-batches-bin"
    py.mkdir(parents=True)
    binf.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        X = rng.integers(0, 256, (3, 3, 32, 32), dtype=np.uint8)
        (py / name).write_bytes(pickle.dumps({"data": X.reshape(3, -1), "labels": [1, 2, 3]}, protocol=2))
        write_cifar_bin_batch(binf / f"{name}.bin", X, [1, 2, 3])
    a, b = dataset_info("cifar-10", tmp_path / "a"), dataset_info("cifar-10", tmp_path / "b")
    assert {f.status for f in a.files} == {"MISMATCH"} and {f.status for f in b.files} == {"unverified"}
    assert a.splits[0].shape == b.splits[0].shape == (15, 3, 32, 32)
    assert a.splits[1].class_counts == (0, 1, 1, 1, 0, 0, 0, 0, 0, 0)
    assert "not verified (no published checksum" in format_info([b])


def test_cli_data_info(tmp_path, capsys):
    write_mnist(tmp_path / "mnist")
    assert main(["data", "info", "mnist", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"mnist: {tmp_path / 'mnist'}") and "t10k-labels-idx1-ubyte.gz" in out
    assert main(["data", "info", "nope"]) == 1
    assert capsys.readouterr().err == "normlab: error: unknown dataset 'nope'; known: fashion-mnist, mnist, cifar-10\n"


def test_real_debian_fashion_mnist_is_verified(monkeypatch):
    folder = "/usr/share/datasets/fashion-mnist"
    if not os.path.isdir(folder):
        pytest.skip(f"{folder} absent: install Debian's dataset-fashion-mnist (scripts/setup does)")
    info = dataset_info("fashion-mnist", folder)
    assert info.verified, format_info([info])
    assert [s.shape for s in info.splits] == [(60000, 1, 28, 28), (10000, 1, 28, 28)]
    assert info.splits[0].class_counts == (6000,) * 10 and info.splits[1].class_counts == (1000,) * 10
