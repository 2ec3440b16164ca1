"""CIFAR-10 readers (python pickles through the allow-list unpickler, binary
records), get_CIFAR10_data, and safe archive extraction."""
import io
import os
import pickle
import tarfile

import numpy as np
import pytest

from normlab.data import DataError, get_CIFAR10_data, load_CIFAR10
from normlab.data.archive import safe_extract
from normlab.data.cifar import read_cifar_bin_batch, read_cifar_py_batch
from normlab.data.safe_pickle import safe_loads
from normlab.data.writers import write_cifar_bin_batch


TRAIN = [f"data_batch_{i}" for i in range(1, 6)]


pytestmark = pytest.mark.usefixtures("isolated_data_dirs")


def py_batch_bytes(images, labels, protocol=2, bytes_keys=False):
    """A batch as CIFAR-10 ships it: a pickled dict, data (N, 3072) uint8, labels a list."""
    d = {"batch_label": "training batch", "data": images.reshape(len(images), -1),
         "labels": [int(v) for v in labels], "filenames": [f"img_{i}.png" for i in range(len(images))]}
    if bytes_keys:
        d = {k.encode(): v for k, v in d.items()}
    return pickle.dumps(d, protocol=protocol)


def write_cifar_dir(folder, n=20, fmt="py", seed=0):
    """A cifar-10-batches-{py,bin} folder with n images per batch; returns (Xtr, ytr, Xte, yte) uint8 NCHW."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name in TRAIN + ["test_batch"]:
        X = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        y = rng.integers(0, 10, n)
        if fmt == "py":
            (folder / name).write_bytes(py_batch_bytes(X, y))
        else:
            write_cifar_bin_batch(folder / f"{name}.bin", X, y)
        out.append((X, y))
    return (np.concatenate([x for x, _ in out[:5]]), np.concatenate([y for _, y in out[:5]]), *out[5])


class _Marker:
    """Unpickling this runs code: ``open(path, 'w')`` creates the marker file."""
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


class _System:
    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


# ------------------------------------------------------------ safe unpickling

@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize("bytes_keys", [False, True])
def test_python_batch_round_trip(tmp_path, protocol, bytes_keys):
    X = np.random.default_rng(1).integers(0, 256, (7, 3, 32, 32), dtype=np.uint8)
    y = np.arange(7) % 10
    (tmp_path / "b").write_bytes(py_batch_bytes(X, y, protocol, bytes_keys))
    X2, y2 = read_cifar_py_batch(tmp_path / "b")
    np.testing.assert_array_equal(X2, X)
    np.testing.assert_array_equal(y2, y)
    assert y2.dtype == np.int64


def test_code_running_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"data": _Marker(str(marker)), "labels": [0]}, protocol=2)
    # control: the plain unpickler really would run it
    pickle.loads(payload)["data"].close()
    assert marker.exists()
    marker.unlink()
    (tmp_path / "data_batch_1").write_bytes(payload)
    with pytest.raises(DataError, match=r"data_batch_1: not a safe pickle .*refusing to load global (io|builtins)\.open"):
        read_cifar_py_batch(tmp_path / "data_batch_1")
    assert not marker.exists()


def test_os_system_payload_is_refused_before_it_runs(tmp_path):
    marker = tmp_path / "shell-ran"
    payload = pickle.dumps({"data": _System(f"touch {marker}"), "labels": [0]}, protocol=4)
    with pytest.raises(DataError, match=r"refusing to load global (posix|os|nt)\.system"):
        safe_loads(payload)
    assert not marker.exists()


@pytest.mark.parametrize("payload", [
    pickle.dumps(np.array([1, "x"], dtype=object)),                 # object arrays need arbitrary objects
    b"\x80\x02c_codecs\nencode\nq\x00X\x01\x00\x00\x00aX\x04\x00\x00\x00zlibq\x01\x86q\x02Rq\x03.",
    b"\x80\x02cbuiltins\neval\nX\x04\x00\x00\x001+1\x85R.",
    b"\x80\x02Pabc\n.",                                                  # persistent id
    b"\x80\x02}q\x00(X\x01\x00\x00\x00a",                               # truncated
])
def test_other_unsafe_or_broken_pickles_are_refused(payload):
    with pytest.raises(DataError, match="not a safe pickle"):
        safe_loads(payload)


def test_plain_containers_and_scalars_load():
    obj = {"a": [1, 2.5, "s", b"b", None, True], "t": (1, (2,)), "x": np.float64(1.5),
           "arr": np.arange(6, dtype=np.int16).reshape(2, 3)}
    for protocol in (2, 5):
        got = safe_loads(pickle.dumps(obj, protocol=protocol))
        assert got["a"] == obj["a"] and got["t"] == obj["t"] and got["x"] == 1.5
        np.testing.assert_array_equal(got["arr"], obj["arr"])


@pytest.mark.parametrize("bad,match", [
    ({"data": np.zeros((4, 3000), np.uint8), "labels": [0] * 4}, r"'data' is a uint8 array of shape \(4, 3000\), expected a uint8 array \(N, 3072\)"),
    ({"data": np.zeros((4, 3072), np.float32), "labels": [0] * 4}, r"'data' is a float32 array"),
    ({"data": np.zeros((4, 3072), np.uint8), "labels": [0] * 3}, r"4 images but 3 labels"),
    ({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 10]}, r"label 10 at index 1 is outside 0..9"),
    ({"data": np.zeros((2, 3072), np.uint8)}, r"has keys 'data' and 'labels'"),
    ([1, 2], r"a CIFAR batch is a dict"),
])
def test_wrong_shaped_or_wrong_content_batch(tmp_path, bad, match):
    p = tmp_path / "test_batch"
    p.write_bytes(pickle.dumps(bad, protocol=2))
    with pytest.raises(DataError, match=match):
        read_cifar_py_batch(p)


# ------------------------------------------------------------ binary batches

def test_binary_batch_round_trip_and_truncation(tmp_path):
    X = np.random.default_rng(2).integers(0, 256, (5, 3, 32, 32), dtype=np.uint8)
    y = np.array([0, 9, 3, 3, 1])
    p = write_cifar_bin_batch(tmp_path / "data_batch_1.bin", X, y)
    X2, y2 = read_cifar_bin_batch(p)
    np.testing.assert_array_equal(X2, X)
    np.testing.assert_array_equal(y2, y)
    p.write_bytes(p.read_bytes()[:-1])
    with pytest.raises(DataError, match=r"data_batch_1.bin: 15364 bytes is not a whole number of 3073-byte records"):
        read_cifar_bin_batch(p)
    raw = bytearray(3073)
    raw[0] = 10
    p.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="label 10 at index 0"):
        read_cifar_bin_batch(p)


# ------------------------------------------------------------ get_CIFAR10_data

@pytest.mark.parametrize("fmt", ["py", "bin"])
def test_get_cifar10_data_course_shapes_and_preprocessing(tmp_path, fmt):
    folder = tmp_path / f"cifar-10-batches-{fmt}"
    Xtr, ytr, Xte, yte = write_cifar_dir(folder, fmt=fmt)
    d = get_CIFAR10_data(num_training=90, num_validation=10, num_test=15, data_dir=tmp_path)
    assert d["X_train"].shape == (90, 3, 32, 32) and d["X_val"].shape == (10, 3, 32, 32)
    assert d["X_test"].shape == (15, 3, 32, 32) and d["X_train"].dtype == np.float32
    mean = Xtr[:90].astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(d["X_train"], Xtr[:90] - mean, atol=1e-4)
    np.testing.assert_allclose(d["X_val"], Xtr[90:100] - mean, atol=1e-4)
    np.testing.assert_allclose(d["X_test"], Xte[:15] - mean, atol=1e-4)
    np.testing.assert_array_equal(d["y_val"], ytr[90:100])
    np.testing.assert_array_equal(d["y_test"], yte[:15])


def test_get_cifar10_data_folder_itself_flatten_and_defaults_too_big(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    Xtr, *_ = write_cifar_dir(folder)
    d = get_CIFAR10_data(50, 5, 5, subtract_mean=False, data_dir=folder, flatten=True, dtype=np.float64)
    assert d["X_train"].shape == (50, 3072)
    np.testing.assert_array_equal(d["X_train"], Xtr[:50].reshape(50, -1))   # channels-first, 0..255
    with pytest.raises(ValueError, match=r"49000 \+ 1000 exceeds the 100 training images"):
        get_CIFAR10_data(data_dir=folder)


def test_course_load_cifar10_is_channels_last_float64(tmp_path):
    Xtr, ytr, Xte, yte = write_cifar_dir(tmp_path / "cifar-10-batches-py", n=3)
    a, b, c, e = load_CIFAR10(tmp_path / "cifar-10-batches-py")
    assert a.shape == (15, 32, 32, 3) and a.dtype == np.float64 and c.shape == (3, 32, 32, 3)
    np.testing.assert_array_equal(a, Xtr.transpose(0, 2, 3, 1))


def test_cifar_found_in_cache_layout(tmp_path):
    write_cifar_dir(tmp_path / "cache" / "normlab" / "cifar-10" / "cifar-10-batches-py", n=4)
    d = get_CIFAR10_data(10, 2, 4)
    assert d["X_train"].shape == (10, 3, 32, 32)


def test_cifar_unsafe_batch_aborts_the_load(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar_dir(folder, n=2)
    marker = tmp_path / "ran"
    (folder / "data_batch_3").write_bytes(pickle.dumps({"data": _Marker(str(marker)), "labels": []}))
    with pytest.raises(DataError, match="data_batch_3"):
        get_CIFAR10_data(5, 1, 1, data_dir=folder)
    assert not marker.exists()


# ------------------------------------------------------------ archives

def _tar(path, entries):
    with tarfile.open(path, "w:gz") as tar:
        for name, kind, content in entries:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
            else:
                info.type = kind
                if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                    info.linkname = content
                tar.addfile(info)
    return path


@pytest.mark.parametrize("entry,why", [
    (("../evil", "file", b"x"), "leaves the destination"),
    (("ok/../../evil", "file", b"x"), "leaves the destination"),
    (("/tmp/evil-abs", "file", b"x"), "absolute path"),
    (("link", tarfile.SYMTYPE, "/etc/passwd"), "symbolic link"),
    (("hard", tarfile.LNKTYPE, "ok/a"), "hard link"),
    (("dev", tarfile.CHRTYPE, ""), "device"),
    (("fifo", tarfile.FIFOTYPE, ""), "FIFO"),
])
def test_tar_with_escaping_or_special_member_is_refused_before_writing(tmp_path, entry, why):
    arc = _tar(tmp_path / "a.tar.gz", [("ok/a", "file", b"fine"), entry])
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(DataError, match=why):
        safe_extract(arc, dest)
    assert list(dest.iterdir()) == []
    assert not (tmp_path / "evil").exists() and not os.path.exists("/tmp/evil-abs")


def test_safe_extract_plain_archive_and_truncated_archive(tmp_path):
    arc = _tar(tmp_path / "a.tar.gz", [("d", tarfile.DIRTYPE, ""), ("d/x", "file", b"1" * 5000)])
    dest = tmp_path / "dest"
    dest.mkdir()
    assert [p.name for p in safe_extract(arc, dest)] == ["x"]
    assert (dest / "d" / "x").read_bytes() == b"1" * 5000
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(arc.read_bytes()[:40])
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(DataError, match="cut.tar.gz: corrupt or truncated archive"):
        safe_extract(cut, other)
    assert list(other.rglob("*")) == []
