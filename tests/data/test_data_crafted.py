"""Crafted-file corpus: each attack on the dataset readers, written as a file.

Every file here is one a hostile copy of a dataset could hold. The readers
must refuse each with a DataError naming the file, in bounded memory and
time. Whatever could crash the interpreter (object arrays over attacker
bytes) or exhaust memory (gzip and memo bombs) runs in a subprocess, so a
regression fails the test (signal, memory, time) instead of killing pytest.
"""
import _codecs
import gzip
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import tarfile
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest

from normlab.data import DataError
from normlab.data.archive import safe_extract
from normlab.data.idx import decompress, read_idx_images, read_idx_labels
from normlab.data.safe_pickle import safe_loads

REPO = Path(__file__).resolve().parents[2]
MB = 1 << 20
IMAGES_HEADER = (2051).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (60000, 28, 28))
TRAIN = [f"data_batch_{i}" for i in range(1, 6)]

try:
    from numpy._core import multiarray as _multiarray, numeric as _numeric
except ImportError:                  # NumPy 1.x
    from numpy.core import multiarray as _multiarray, numeric as _numeric


pytestmark = pytest.mark.usefixtures("isolated_data_dirs")


class Call:
    """Pickles as ``fn(*args)`` (then BUILD with ``state`` when given): how
    the attacks name NumPy's callables without hand-written opcodes."""

    def __init__(self, fn, *args, state=None):
        self.fn, self.args, self.state = fn, args, state

    def __reduce__(self):
        return (self.fn, self.args) if self.state is None else (self.fn, self.args, self.state)


def dumps(obj, protocol=2) -> bytes:
    return pickle.dumps(obj, protocol=protocol)


# ---------------------------------------------------------------- the corpus

def object_array_pickle() -> bytes:
    """40 bytes: ``numpy.ndarray((1,), 'O', b'AAAAAAAA')``, an object array whose one
    element is the pointer 0x4141414141414141; the dtype is a plain string, so
    it never passes through ``numpy.dtype``."""
    return (b"\x80\x02cnumpy\nndarray\n(K\x01\x85X\x01\x00\x00\x00OC\x08" + b"A" * 8 + b"tR.")


def reconstruct_object_pickle() -> bytes:
    """``_reconstruct(ndarray, (3,), 'O')``: an object array (no state, no BUILD)."""
    return dumps(Call(_multiarray._reconstruct, np.ndarray, (3,), "O"))


def self_field_dtype_pickle() -> bytes:
    """``numpy.dtype('V8')`` given, by BUILD, itself as its only field."""
    d = Call(np.dtype, "V8", False, True)
    d.state = (3, "|", None, ("a",), {"a": (d, 0)}, 8, 1, 0)
    return dumps(Call(_multiarray._reconstruct, np.ndarray, (0,), b"b",
                      state=(1, (1,), d, False, b"A" * 8)))


def zero_strides_pickle() -> bytes:
    """1 byte of buffer, a 200 MB view: ``ndarray((65536, 3072), 'u1', b'\\x07', 0, (0, 0))``."""
    return dumps(Call(np.ndarray, (65536, 3072), "u1", b"\x07", 0, (0, 0)))


def no_buffer_pickle() -> bytes:
    """``ndarray((65536, 3072), 'u1')``: 200 MB of uninitialised heap."""
    return dumps(Call(np.ndarray, (65536, 3072), "u1"))


def newobj_pickle() -> bytes:
    """NEWOBJ ``ndarray.__new__(ndarray, (2**28,))``: 2 GiB, uninitialised."""
    return b"\x80\x02cnumpy\nndarray\nJ\x00\x00\x00\x10\x85\x81."


def negative_strides_pickle() -> bytes:
    return dumps(Call(np.ndarray, (3,), "u1", b"abc", 2, (-1,)))


def encode_amplification_pickle() -> bytes:
    """One 1 MB string in the pickle, ``_codecs.encode`` of it 100 times (memo references)."""
    text = "x" * MB
    return dumps([Call(_codecs.encode, text, "latin1") for _ in range(100)])


def array_amplification_pickle() -> bytes:
    """One 1 MB buffer in the pickle, 100 arrays of it (protocol 5's ``_frombuffer``)."""
    buf = bytes(MB)
    return dumps([Call(_numeric._frombuffer, buf, Call(np.dtype, "u1", False, True), (MB,), "C")
                  for _ in range(100)], protocol=5)


def memo_bomb_pickle(index=1 << 26) -> bytes:
    """9 bytes: ``LONG_BINPUT index``. CPython's C unpickler grows (and zeroes)
    its memo table to the index: 2**26 is 1 GB, 2**28 is 4 GB."""
    return b"\x80\x02N" + b"r" + struct.pack("<I", index) + b"."


def declared_length_pickle(opcode=b"\x8e") -> bytes:
    """BINBYTES8 (or BYTEARRAY8 ``b'\\x96'``) declaring 8 GiB, holding 3 bytes."""
    return b"\x80\x05" + opcode + (8 << 30).to_bytes(8, "little") + b"abc"


def dag_labels_batch(depth=34) -> bytes:
    """A CIFAR batch whose labels list nests one list in itself twice per
    level: 2**depth integers for np.asarray from a few hundred bytes."""
    labels = [0, 1]
    for _ in range(depth):
        labels = [labels, labels]
    return dumps({"data": np.zeros((2, 3072), np.uint8), "labels": labels})


def gzip_bomb(path, header=IMAGES_HEADER, size=1 << 30, block=1 << 24) -> Path:
    """A valid single-member gzip of ``header`` + zeros, ``size`` bytes inflated, in about
    a second: after a full flush deflate starts afresh, so every block of zeros
    compresses to the same bytes, written out again and again (CRC and length exact)."""
    c = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    head = c.compress(header) + c.flush(zlib.Z_FULL_FLUSH)
    zeros = bytes(block)
    piece = c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH)
    n, rest = divmod(size - len(header), block)
    tail = c.compress(bytes(rest)) + c.flush()
    crc = zlib.crc32(header)
    for _ in range(n):
        crc = zlib.crc32(zeros, crc)
    crc = zlib.crc32(bytes(rest), crc)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + head)
        for _ in range(n):
            f.write(piece)
        f.write(tail + struct.pack("<II", crc, size & 0xFFFFFFFF))
    return path


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    """train-images-idx3-ubyte.gz of about 1 MB: a 60000x28x28 header, 1 GiB inflated."""
    return gzip_bomb(tmp_path_factory.mktemp("bomb") / "train-images-idx3-ubyte.gz")


# ---------------------------------------------------------------- subprocess harness

_HARNESS = r"""
import gc, json, resource, sys, time
kind, path = sys.argv[1], sys.argv[2]
t = time.perf_counter()
try:
    if kind == "pickle":
        from normlab.data.safe_pickle import safe_loads
        with open(path, "rb") as f:
            result = safe_loads(f.read(), path)
    elif kind == "cifar-py":
        from normlab.data.cifar import read_cifar_py_batch
        result = read_cifar_py_batch(path)
    elif kind == "idx-images":
        from normlab.data.idx import read_idx_images
        result = read_idx_images(path)
    repr(result)                      # touch every element: an object array crashes here ...
    del result
    gc.collect()                      # ... or here, decref-ing its fake pointers
    outcome, message = "loaded", ""
except Exception as exc:
    outcome, message = type(exc).__name__, str(exc)
print(json.dumps({"outcome": outcome, "message": message, "seconds": time.perf_counter() - t,
                  "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _env():
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


def run_isolated(kind, path, timeout=120) -> dict:
    """Load ``path`` with the reader ``kind`` in a fresh interpreter; its outcome,
    message, seconds and peak RSS. A crash fails here, naming the signal."""
    res = subprocess.run([sys.executable, "-c", _HARNESS, kind, str(path)], capture_output=True,
                         text=True, timeout=timeout, env=_env())
    assert res.returncode == 0, (f"reading {path.name} killed the interpreter (returncode {res.returncode}):"
                                 f" {res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def baseline_rss(tmp_path_factory) -> float:
    """Peak RSS of the harness reading a tiny valid pickle (interpreter + NumPy)."""
    p = tmp_path_factory.mktemp("base") / "ok.pkl"
    p.write_bytes(dumps(np.zeros(3, np.uint8)))
    return run_isolated("pickle", p)["maxrss_mb"]


# ---------------------------------------------------------------- pickles that would crash

CRASHERS = {
    "object-array-string-dtype": object_array_pickle,
    "reconstruct-object-dtype": reconstruct_object_pickle,
    "self-field-dtype": self_field_dtype_pickle,
}


def test_object_array_pickle_is_the_40_byte_one():
    assert len(object_array_pickle()) == 40


@pytest.mark.parametrize("name", sorted(CRASHERS))
def test_object_array_pickles_are_refused_without_crashing(tmp_path, name):
    p = tmp_path / f"{name}.pkl"
    p.write_bytes(CRASHERS[name]())
    got = run_isolated("pickle", p)
    assert got["outcome"] == "DataError", got
    assert str(p) in got["message"] and "refusing" in got["message"], got


def test_object_array_labels_in_cifar_folder_give_corrupt_info_not_a_crash(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    good = dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [1, 2]})
    for name in TRAIN[1:] + ["test_batch"]:
        (folder / name).write_bytes(good)
    # labels holding an object array: turning them into integers reads its fake pointer
    (folder / "data_batch_1").write_bytes(dumps({
        "data": np.zeros((1, 3072), np.uint8), "labels": [Call(np.ndarray, (1,), "O", b"A" * 8)]}))
    res = subprocess.run([sys.executable, "-m", "normlab.cli", "data", "info", "cifar-10", "--dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=120, env=_env())
    assert res.returncode == 1, (res.returncode, res.stdout, res.stderr)     # never -11 (SIGSEGV)
    assert "[CORRUPT]" in res.stdout
    error = [line for line in res.stdout.splitlines() if line.strip().startswith("error:")]
    assert len(error) == 1 and str(folder / "data_batch_1") in error[0] and "object" in error[0], res.stdout


def test_dtype_build_cannot_add_fields_or_touch_numpys_singleton():
    d = Call(np.dtype, "u1", False, False)        # copy=False: NumPy's own uint8 descriptor
    d.state = (3, "|", None, ("a",), {"a": (Call(np.dtype, "u1", False, True), 0)}, 1, 1, 0)
    with pytest.raises(DataError, match=r"refusing dtype state .*only a byte order"):
        safe_loads(dumps(d))
    assert np.dtype("u1").fields is None and not np.dtype("u1").hasobject
    assert safe_loads(dumps(Call(np.dtype, "<i4", False, True, state=(3, ">", None, None, None, -1, -1, 0)))) \
        == np.dtype(">i4")


# ---------------------------------------------------------------- arrays not backed by the file's bytes

@pytest.mark.parametrize("make,why", [
    (zero_strides_pickle, r"refusing strides \(0, 0\): only the contiguous \(3072, 1\)"),
    (negative_strides_pickle, r"refusing strides \(-1,\)"),
    (no_buffer_pickle, r"numpy.ndarray without a buffer"),
    (newobj_pickle, r"not a type object|refusing"),
    (lambda: dumps(Call(np.ndarray, (100,), "u1", b"abc")), r"needs 100 bytes at offset 0, its buffer has 3"),
    (lambda: dumps(Call(np.ndarray, (2,), "u1", b"abc", 2)), r"needs 2 bytes at offset 2"),
    (lambda: dumps(Call(_multiarray._reconstruct, np.ndarray, (1 << 30,), b"b")), r"without its state"),
    (lambda: dumps(Call(_multiarray._reconstruct, np.ndarray, (0,), b"b",
                        state=(1, (1 << 20,), Call(np.dtype, "u1", False, True), False, b"x"))),
     r"needs 1048576 bytes at offset 0, its buffer has 1"),
])
def test_views_larger_than_their_bytes_are_refused(tmp_path, make, why):
    data = make()
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=why):
            safe_loads(data, tmp_path / "batch")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * MB


def test_contiguous_ndarray_calls_still_build_copies_of_their_bytes():
    a = safe_loads(dumps(Call(np.ndarray, (2, 3), "<u2", bytes(range(14)), 2, (6, 2))))
    assert a.dtype == np.dtype("<u2") and a.shape == (2, 3) and a.flags.owndata and a.flags.writeable
    np.testing.assert_array_equal(a, np.frombuffer(bytes(range(14)), "<u2", 6, 2).reshape(2, 3))
    f = safe_loads(dumps(Call(np.ndarray, (2, 3), "u1", bytes(6), 0, None, "F")))
    assert f.flags.f_contiguous


@pytest.mark.parametrize("make", [encode_amplification_pickle, array_amplification_pickle])
def test_one_buffer_cannot_be_multiplied_into_many(tmp_path, make):
    data = make()
    assert len(data) < 2 * MB
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"refusing to build more than \d+ bytes of arrays and buffers"):
            safe_loads(data, tmp_path / "batch")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * len(data) + 4 * MB


@pytest.mark.parametrize("opcode", [b"\x8e", b"\x96"])
def test_declared_lengths_past_the_end_allocate_nothing(opcode):
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"truncated \(it needs 8589934592 more bytes, the file has 3\)"):
            safe_loads(declared_length_pickle(opcode))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MB


def test_memo_bomb_costs_nothing(tmp_path, baseline_rss):
    p = tmp_path / "memo.pkl"
    p.write_bytes(memo_bomb_pickle())
    assert len(p.read_bytes()) == 9
    got = run_isolated("pickle", p)
    assert got["outcome"] == "loaded", got           # a valid pickle of None, once its memo is a dict
    assert got["maxrss_mb"] < baseline_rss + 50 and got["seconds"] < 2, got


def test_exponential_labels_list_is_refused_in_bounded_memory(tmp_path, baseline_rss):
    p = tmp_path / "data_batch_1"
    p.write_bytes(dag_labels_batch())
    assert len(p.read_bytes()) < 10_000
    got = run_isolated("cifar-py", p)
    assert got["outcome"] == "DataError" and "'labels' must be a list of integers" in got["message"], got
    assert got["maxrss_mb"] < baseline_rss + 50, got


def test_deep_nesting_is_refused_not_a_recursion_error():
    data = b"\x80\x02" + b"]" * 100_000 + b"a" * 99_999 + b"."      # lists nested 100,000 deep
    with pytest.raises(DataError, match="nested more than 100 deep"):
        safe_loads(data)


# ---------------------------------------------------------------- gzip bomb

def test_gzip_bomb_is_refused_at_its_headers_size(bomb, baseline_rss):
    assert bomb.stat().st_size < 2 * MB
    got = run_isolated("idx-images", bomb)
    assert got["outcome"] == "DataError", got
    assert str(bomb) in got["message"] and "inflates to more than 47040080 bytes" in got["message"], got
    # the header's honest 47 MB (+ growth slack), never the 1 GiB the stream holds
    assert got["maxrss_mb"] < baseline_rss + 100 and got["seconds"] < 5, got


def test_gzip_bomb_through_data_info_is_corrupt_and_bounded(tmp_path, bomb, baseline_rss):
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    os.symlink(bomb, folder / "train-images-idx3-ubyte.gz")
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress((2049).to_bytes(4, "big") + (2).to_bytes(4, "big") + b"\x00\x01"))
    (folder / "t10k-images-idx3-ubyte").write_bytes((2051).to_bytes(4, "big") + b"\0\0\0\x01\0\0\0\x01\0\0\0\x01" + b"\x07")
    (folder / "t10k-labels-idx1-ubyte").write_bytes((2049).to_bytes(4, "big") + (1).to_bytes(4, "big") + b"\x03")
    code = ("import resource, sys\nfrom normlab.cli import main\nrc = main(sys.argv[1:])\n"
            "print('MAXRSS_MB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\nsys.exit(rc)")
    res = subprocess.run([sys.executable, "-c", code, "data", "info", "fashion-mnist", "--dir", str(folder)],
                         capture_output=True, text=True, timeout=120, env=_env())
    assert res.returncode == 1, (res.returncode, res.stdout, res.stderr)
    assert "[CORRUPT]" in res.stdout and "inflates to more than 47040080 bytes" in res.stdout, res.stdout
    rss = float(res.stdout.split("MAXRSS_MB")[-1])
    assert rss < baseline_rss + 150, res.stdout


def test_gzip_that_is_not_idx_stops_at_its_first_bytes():
    raw = gzip.compress(b"PK\x03\x04" + bytes(10 * MB))
    with pytest.raises(DataError, match=r"x: magic number 1347093252 .*not an IDX images"):
        decompress(raw, "x", magic=2051)


def traced(read):
    """``(result or None, DataError or None, peak bytes tracemalloc saw while reading)``."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        try:
            result, error = read(), None
        except DataError as exc:
            result, error = None, exc
        return result, error, tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def _header(magic, *dims) -> bytes:
    return magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)


# The example the IDX fuzz test found: an images magic (3 sizes) followed by one size, so the
# reader takes payload bytes for the other two, (1, 50661128, 134807558): 6.8e15 bytes that a
# few KB of gzip can never hold. It inflates to zeros; keeping them to count them cost their size.
FUZZ_HEADER = _header(2051, 1, 0x03050708, 0x08090006)


@pytest.mark.parametrize("form", ["one member", "members and padding"])
def test_gzip_of_zeros_under_a_header_it_cannot_fill_costs_a_few_hundred_kb(tmp_path, form):
    p = tmp_path / "train-images-idx3-ubyte.gz"
    if form == "one member":
        gzip_bomb(p, header=FUZZ_HEADER, size=len(FUZZ_HEADER) + 32 * MB, block=MB)
    else:
        zeros = gzip.compress(bytes(MB), mtime=0)
        p.write_bytes(gzip.compress(FUZZ_HEADER, mtime=0) + (zeros + bytes(100)) * 32)
    assert p.stat().st_size < 40_000
    _, error, peak = traced(lambda: read_idx_images(p))
    assert str(error) == (f"{p}: payload is {32 * MB} bytes but the header's shape (1, 50661128, 134807558) "
                          "needs 6829502951205424: the file is truncated")
    assert peak < MB, peak                      # not the 32 MiB of zeros (38 MB before the fix)


def test_header_within_deflates_reach_but_longer_than_the_stream_costs_a_few_hundred_kb(tmp_path):
    p = gzip_bomb(tmp_path / "train-labels-idx1-ubyte.gz", header=_header(2049, 8 * MB + 65536),
                  size=8 + 8 * MB, block=MB)
    _, error, peak = traced(lambda: read_idx_labels(p))
    assert str(error) == (f"{p}: payload is {8 * MB} bytes but the header's shape (8454144,) needs 8454144: "
                          "the file is truncated")
    assert peak < MB, peak


def test_gzip_bomb_in_process_stops_at_its_headers_size_keeping_nothing(bomb):
    raw_size = bomb.stat().st_size
    _, error, peak = traced(lambda: read_idx_images(bomb))
    assert "inflates to more than 47040080 bytes" in str(error) and str(bomb) in str(error)
    assert peak < raw_size + MB, peak           # read_payload holds the file itself


def test_highly_compressible_files_of_the_declared_size_still_load(tmp_path):
    p = gzip_bomb(tmp_path / "train-images-idx3-ubyte.gz", header=_header(2051, 4000, 28, 28),
                  size=16 + 4000 * 784, block=MB)
    images, error, peak = traced(lambda: read_idx_images(p))
    assert error is None and images.shape == (4000, 28, 28) and not images.any()
    assert peak < images.nbytes + MB, peak
    longer = gzip_bomb(tmp_path / "l.gz", header=_header(2049, 4 * MB), size=8 + 4 * MB + 5, block=MB)
    _, error, peak = traced(lambda: read_idx_labels(longer))
    assert str(error) == (f"{longer}: payload is {4 * MB + 5} bytes, 5 more than the header's shape "
                          f"({4 * MB},) needs: the header does not describe this file")
    assert peak < MB, peak


# ---------------------------------------------------------------- IDX header overflow

@pytest.mark.parametrize("dims,needed", [
    ((1 << 31, 1 << 31, 4), "18446744073709551616"),                  # wraps to 0 in int64
    ((2**32 - 1,) * 3, str((2**32 - 1) ** 3)),                          # wraps to a wrong count
])
@pytest.mark.parametrize("gz", [False, True])
def test_idx_header_sizes_do_not_overflow(tmp_path, dims, needed, gz):
    raw = (2051).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims) + b"\x01" * 10
    p = tmp_path / ("train-images-idx3-ubyte" + (".gz" if gz else ""))
    p.write_bytes(gzip.compress(raw) if gz else raw)
    with pytest.raises(DataError, match=rf"{p}: payload is 10 bytes but the header's shape .* needs {needed}: "
                                        r"the file is truncated"):
        read_idx_images(p)


def test_empty_shape_with_huge_other_sizes_names_the_file(tmp_path):
    p = tmp_path / "imgs"
    p.write_bytes((2051).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (0, 2**32 - 1, 2**32 - 1)))
    with pytest.raises(DataError, match=rf"{p}: the header's shape \(0, 4294967295, 4294967295\) is not an array"):
        read_idx_images(p)


def test_labels_header_overflow(tmp_path):
    p = tmp_path / "l"
    p.write_bytes((2049).to_bytes(4, "big") + (2**32 - 1).to_bytes(4, "big"))
    with pytest.raises(DataError, match=rf"{p}: payload is 0 bytes but .* needs 4294967295"):
        read_idx_labels(p)


# ---------------------------------------------------------------- archives

def _tar(path, names_and_contents):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, content in names_and_contents:
            info = tarfile.TarInfo(name)
            if content is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    path.write_bytes(gzip.compress(buf.getvalue()))
    return path


@pytest.mark.parametrize("members,why", [
    ([("a/x", b"1"), ("a/x", b"2")], r"refusing member 'a/x': a second member of the same name"),
    ([("a/x", b"1"), ("a/./x", b"2")], r"refusing member 'a/./x': a second member of the same name"),
    ([("a", None), ("a", b"f")], r"refusing member 'a': a second member of the same name"),
    ([("a", b"f"), ("a/x", b"2")], r"refusing member 'a/x': a path inside the file 'a'"),
])
def test_duplicate_members_are_refused_before_writing(tmp_path, members, why):
    arc = _tar(tmp_path / "a.tar.gz", members)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(DataError, match=why):
        safe_extract(arc, dest)
    assert list(dest.iterdir()) == []                 # not even the folder 'a'


def test_failed_extraction_removes_the_folders_it_made_and_keeps_others(tmp_path):
    arc = _tar(tmp_path / "a.tar.gz", [("new/sub/x", b"1"), ("old/y", b"2"), ("clash", b"3")])
    dest = tmp_path / "dest"
    (dest / "old").mkdir(parents=True)                # there before: kept
    (dest / "clash").write_bytes(b"mine")             # there before: never overwritten
    with pytest.raises(FileExistsError):
        safe_extract(arc, dest)
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == ["clash", "old"]
    assert (dest / "clash").read_bytes() == b"mine"


def test_repeated_folder_members_still_extract(tmp_path):
    arc = _tar(tmp_path / "ok.tar.gz", [("d", None), ("d/", None), ("d/x", b"1")])
    dest = tmp_path / "dest"
    dest.mkdir()
    assert [p.name for p in safe_extract(arc, dest)] == ["x"]
