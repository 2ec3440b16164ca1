"""IDX reader and the Fashion-MNIST / MNIST loaders, on small files the tests write."""
import gzip
import os
import time

import numpy as np
import pytest

from normlab.data import DataError, DatasetNotFoundError, load_fashion_mnist, load_mnist
from normlab.data import locate as locate_mod
from normlab.data.idx import read_idx_images, read_idx_labels, read_idx_pair
from normlab.data.writers import idx_bytes, write_idx


pytestmark = pytest.mark.usefixtures("isolated_data_dirs")


def write_idx_dataset(folder, n_train=60, n_test=20, size=(28, 28), gz=True, seed=0):
    """An MNIST-format folder; returns the arrays written."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, *size), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, *size), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test)[::-1] % 10).astype(np.uint8),
    }
    for name, a in arrays.items():
        write_idx(folder / (name + (".gz" if gz else "")), a)
    return arrays


# ---------------------------------------------------------------- the reader

@pytest.mark.parametrize("gz", [True, False])
def test_reader_round_trip(tmp_path, gz):
    a = write_idx_dataset(tmp_path / "d", gz=gz)
    sfx = ".gz" if gz else ""
    X, y = read_idx_pair(tmp_path / "d" / f"train-images-idx3-ubyte{sfx}", tmp_path / "d" / f"train-labels-idx1-ubyte{sfx}")
    np.testing.assert_array_equal(X, a["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(y, a["train-labels-idx1-ubyte"])


def test_header_is_big_endian_magic_and_sizes():
    b = idx_bytes(np.zeros((2, 3, 4), np.uint8))
    assert b[:16] == bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4]) and len(b) == 16 + 24


def test_wrong_magic(tmp_path):
    p = tmp_path / "labels"
    p.write_bytes(idx_bytes(np.zeros(5, np.uint8)))
    with pytest.raises(DataError, match=r"labels: magic number 2049 .*expected 2051"):
        read_idx_images(p)


def test_truncated_gzip(tmp_path):
    p = tmp_path / "train-images-idx3-ubyte.gz"
    whole = gzip.compress(idx_bytes(np.ones((50, 28, 28), np.uint8)))
    p.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz: truncated or corrupt gzip"):
        read_idx_images(p)


def test_payload_shorter_than_header_says(tmp_path):
    p = tmp_path / "imgs"
    p.write_bytes(idx_bytes(np.ones((4, 28, 28), np.uint8))[:-10])
    with pytest.raises(DataError, match=r"imgs: payload is 3126 bytes but .*needs 3136: the file is truncated"):
        read_idx_images(p)


def test_payload_longer_than_header_says(tmp_path):
    p = tmp_path / "imgs.gz"
    p.write_bytes(gzip.compress(idx_bytes(np.ones((4, 28, 28), np.uint8)) + b"\0" * 7))
    with pytest.raises(DataError, match=r"7 more than the header"):
        read_idx_images(p)


def test_label_out_of_range(tmp_path):
    p = tmp_path / "labels"
    p.write_bytes(idx_bytes(np.array([0, 9, 10, 3, 200], np.uint8)))
    with pytest.raises(DataError, match=r"labels: label 10 at index 2 is outside 0..9 \(2 such labels\)"):
        read_idx_labels(p)


def test_images_and_labels_of_different_counts(tmp_path):
    write_idx(tmp_path / "i", np.zeros((5, 28, 28), np.uint8))
    write_idx(tmp_path / "l", np.zeros(4, np.uint8))
    with pytest.raises(DataError, match=r"holds 5 images but .* holds 4 labels"):
        read_idx_pair(tmp_path / "i", tmp_path / "l")


def test_short_and_empty_files(tmp_path):
    (tmp_path / "e").write_bytes(b"")
    (tmp_path / "h").write_bytes(bytes([0, 0, 8, 3, 0, 0]))
    with pytest.raises(DataError, match="too short for an IDX header"):
        read_idx_images(tmp_path / "e")
    with pytest.raises(DataError, match="header truncated"):
        read_idx_images(tmp_path / "h")


# ---------------------------------------------------------------- the loaders

def test_loader_split_scaling_mean_and_shapes(tmp_path):
    a = write_idx_dataset(tmp_path / "mnist")
    d = load_mnist(data_dir=tmp_path / "mnist", num_training=50, num_validation=10, num_test=20)
    assert d["X_train"].shape == (50, 1, 28, 28) and d["X_val"].shape == (10, 1, 28, 28)
    assert d["X_test"].shape == (20, 1, 28, 28)
    assert all(d[k].dtype == np.float32 for k in ("X_train", "X_val", "X_test"))
    assert all(d[k].dtype == np.int64 for k in ("y_train", "y_val", "y_test"))
    train = a["train-images-idx3-ubyte"].astype(np.float64) / 255
    mean = train[:50].mean(axis=0)
    np.testing.assert_allclose(d["X_train"][:, 0], train[:50] - mean, atol=1e-6)
    np.testing.assert_allclose(d["X_val"][:, 0], train[50:60] - mean, atol=1e-6)
    np.testing.assert_allclose(d["X_test"][:, 0], a["t10k-images-idx3-ubyte"] / 255 - mean, atol=1e-6)
    np.testing.assert_array_equal(d["y_val"], a["train-labels-idx1-ubyte"][50:60])
    assert abs(d["X_train"].mean()) < 1e-6


def test_loader_options_raw_files_flatten_dtype_no_mean(tmp_path):
    a = write_idx_dataset(tmp_path / "fashion-mnist", gz=False)
    d = load_fashion_mnist(data_dir=tmp_path, num_training=30, num_validation=5, num_test=7,
                           subtract_mean=False, flatten=True, dtype=np.float64)
    assert d["X_train"].shape == (30, 784) and d["X_test"].shape == (7, 784) and d["X_val"].dtype == np.float64
    np.testing.assert_array_equal(d["X_train"], a["train-images-idx3-ubyte"][:30].reshape(30, -1) / 255.0)
    assert d["X_train"].min() >= 0 and d["X_train"].max() <= 1


def test_loader_is_deterministic(tmp_path):
    write_idx_dataset(tmp_path / "mnist")
    a = load_mnist(tmp_path, num_training=40, num_validation=10, num_test=10)
    b = load_mnist(tmp_path, num_training=40, num_validation=10, num_test=10)
    for k in a:
        assert a[k].tobytes() == b[k].tobytes()


def test_loader_sizes_that_do_not_fit(tmp_path):
    write_idx_dataset(tmp_path / "mnist")
    with pytest.raises(ValueError, match=r"num_training \+ num_validation = 59000 \+ 1000 exceeds the 60 "):
        load_mnist(tmp_path)
    with pytest.raises(ValueError, match="num_test = 21 exceeds the 20 test images"):
        load_mnist(tmp_path, num_training=10, num_validation=5, num_test=21)
    with pytest.raises(ValueError, match="num_validation must be a non-negative integer"):
        load_mnist(tmp_path, num_training=10, num_validation=-1)
    with pytest.raises(ValueError, match="dtype must be a floating type"):
        load_mnist(tmp_path, num_training=10, num_validation=0, num_test=1, dtype=np.int32)


def test_missing_directory_names_paths_and_fetch_command(tmp_path):
    with pytest.raises(DatasetNotFoundError) as e:
        load_mnist(data_dir=tmp_path / "nowhere")
    msg = str(e.value)
    assert str(tmp_path / "nowhere") in msg and "normlab data fetch mnist --dir" in msg
    assert isinstance(e.value, FileNotFoundError)


def test_missing_file_names_every_searched_root(tmp_path, monkeypatch):
    monkeypatch.setenv("NORMLAB_DATA", str(tmp_path / "env"))
    write_idx_dataset(tmp_path / "env" / "fashion-mnist")
    os.remove(tmp_path / "env" / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(DatasetNotFoundError) as e:
        load_fashion_mnist()
    msg = str(e.value)
    for root in (tmp_path / "env", tmp_path / "cache" / "normlab", tmp_path / "system"):
        assert f"{root}/{{fashion-mnist" in msg
    assert "t10k-labels-idx1-ubyte" in msg and "normlab data fetch fashion-mnist" in msg
    assert "apt-get install dataset-fashion-mnist" in msg


def test_search_order_env_then_cache_then_system(tmp_path, monkeypatch):
    write_idx_dataset(tmp_path / "system" / "fashion-mnist", seed=1)
    assert locate_mod.locate("fashion-mnist").folder == tmp_path / "system" / "fashion-mnist"
    write_idx_dataset(tmp_path / "cache" / "normlab" / "fashion-mnist", seed=2)
    assert locate_mod.locate("fashion-mnist").folder == tmp_path / "cache" / "normlab" / "fashion-mnist"
    monkeypatch.setenv("NORMLAB_DATA", str(tmp_path / "env"))
    write_idx_dataset(tmp_path / "env" / "fashion-mnist", seed=3)
    assert locate_mod.locate("fashion-mnist").folder == tmp_path / "env" / "fashion-mnist"
    # an explicit data_dir is the only place looked at
    with pytest.raises(DatasetNotFoundError):
        locate_mod.locate("fashion-mnist", tmp_path / "empty")


def test_mnist_does_not_pick_up_fashion_mnist(tmp_path, monkeypatch):
    monkeypatch.setenv("NORMLAB_DATA", str(tmp_path / "env"))
    write_idx_dataset(tmp_path / "env" / "fashion-mnist")
    with pytest.raises(DatasetNotFoundError):
        load_mnist()


def test_corrupt_file_error_names_file_and_fix(tmp_path):
    write_idx_dataset(tmp_path / "mnist")
    p = tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:100])
    with pytest.raises(DataError, match=rf"{p}: truncated .*normlab data fetch mnist"):
        load_mnist(tmp_path, num_training=10)


def test_real_fashion_mnist_from_debian(monkeypatch):
    """The real 70,000 images from Debian's dataset-fashion-mnist, no network."""
    folder = "/usr/share/datasets/fashion-mnist"
    if not os.path.isdir(folder):
        pytest.skip(f"{folder} absent: install Debian's dataset-fashion-mnist (scripts/setup does)")
    monkeypatch.setattr(locate_mod, "SYSTEM_DIRS", (locate_mod.Path("/usr/share/datasets"),))
    t = time.perf_counter()
    d = load_fashion_mnist(data_dir=folder)
    elapsed = time.perf_counter() - t
    assert d["X_train"].shape == (59000, 1, 28, 28) and d["X_val"].shape == (1000, 1, 28, 28)
    assert d["X_test"].shape == (10000, 1, 28, 28)
    assert np.bincount(np.concatenate([d["y_train"], d["y_val"]])).tolist() == [6000] * 10
    assert np.bincount(d["y_test"]).tolist() == [1000] * 10
    assert abs(float(d["X_train"].mean(dtype=np.float64))) < 1e-6
    assert elapsed < 10
