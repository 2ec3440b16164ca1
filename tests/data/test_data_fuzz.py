"""Property tests of the dataset readers on generated hostile files.

Every input (IDX: any magic, dimensions up to 2**32-1, payloads short, long
or bombs, raw or gzip, multi-member, truncated, a byte flipped; CIFAR python
batches: pickles from a grammar of allowed and forbidden globals, dtypes,
shapes, strides, truncations; CIFAR binary batches of any size) either loads
a valid array or raises DataError whose message names the file. Peak memory
(tracemalloc; NumPy reports its buffers to it) stays within twice the file
and its honest content, plus a few MB.
"""
import builtins
import gzip
import os
import pickle
import struct
import tracemalloc
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from normlab.data import DataError
from normlab.data.cifar import read_cifar_bin_batch, read_cifar_py_batch
from normlab.data.idx import read_idx_header, read_idx_images, read_idx_labels
from normlab.data.safe_pickle import _Slot, safe_load

try:
    from numpy._core import multiarray as _multiarray, numeric as _numeric
except ImportError:                  # NumPy 1.x
    from numpy.core import multiarray as _multiarray, numeric as _numeric

MB = 1 << 20
FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def measured(read):
    """``(result, DataError or None, peak bytes traced while reading)``; any other
    exception propagates (and fails the property)."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        try:
            result, error = read(), None
        except DataError as exc:
            result, error = None, exc
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return result, error, peak


# ---------------------------------------------------------------- IDX

_BLOCK = 1 << 20
_ZEROS = bytes(_BLOCK)


def _zero_block() -> bytes:
    # after a full flush deflate starts afresh: a block of zeros always compresses to these bytes
    c = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    c.compress(b"")
    return c.compress(_ZEROS) + c.flush(zlib.Z_FULL_FLUSH)


ZERO_BLOCK = _zero_block()


def gzip_member(content: bytes, zero_blocks: int = 0) -> bytes:
    """A gzip member of ``content`` followed by ``zero_blocks`` MiB of zeros, built without
    compressing the zeros (each is the same deflate block)."""
    c = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    head = c.compress(content) + c.flush(zlib.Z_FULL_FLUSH)
    crc = zlib.crc32(content)
    for _ in range(zero_blocks):
        crc = zlib.crc32(_ZEROS, crc)
    size = len(content) + zero_blocks * _BLOCK
    return (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + head + ZERO_BLOCK * zero_blocks + c.flush()
            + struct.pack("<II", crc, size & 0xFFFFFFFF))


_DIM = st.one_of(st.integers(0, 12), st.integers(0, 40), st.sampled_from([2**31, 2**32 - 1, 60000, 10**6]))


@st.composite
def idx_files(draw):
    """``(file bytes, content, header size, declared payload, intact)`` of an IDX
    file: ``content`` is what it inflates to; ``intact`` when nothing was broken."""
    want = draw(st.sampled_from([2051, 2049]))
    magic = draw(st.one_of(st.just(want), st.just(want), st.sampled_from([2049, 2051, 0x0802, 0x0903, 0x08FF]),
                           st.integers(0, 2**32 - 1)))
    ndim = draw(st.one_of(st.just(magic & 0xFF if magic >> 8 == 8 else 3), st.integers(0, 4)))
    dims = draw(st.lists(_DIM, min_size=ndim, max_size=ndim))
    declared = int(np.prod(dims, dtype=object)) if dims else 1
    honest = declared <= 20_000
    n = declared if honest else draw(st.integers(0, 3000))
    n = max(0, n + draw(st.sampled_from([0, 0, 0, -1, 1, 7, 64, 65, -5, 1000])))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    payload = rng.integers(0, draw(st.sampled_from([10, 10, 256])), n, dtype=np.uint8).tobytes()
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)
    content = header + payload
    intact = magic == want and len(dims) == (want & 0xFF) and n == declared
    form = draw(st.sampled_from(["raw", "gzip", "gzip", "members", "bomb"]))
    if form == "raw":
        raw = content
    elif form == "gzip":
        raw = gzip.compress(content, compresslevel=draw(st.integers(1, 9)), mtime=0)
        raw += b"\x00" * draw(st.sampled_from([0, 0, 3]))                 # padding, as gzip allows
    elif form == "members":
        cuts = sorted(draw(st.lists(st.integers(0, len(content)), max_size=3)))
        parts = [content[a:b] for a, b in zip([0, *cuts], [*cuts, len(content)])]
        raw = b"".join(gzip.compress(p, mtime=0) for p in parts)
    else:
        blocks = draw(st.integers(1, 40))
        raw = gzip_member(content, blocks)
        content += bytes(blocks * _BLOCK)
        intact = False
    if draw(st.integers(0, 4)) == 0 and raw:                                 # truncated
        raw = raw[:draw(st.integers(0, len(raw) - 1))]
        intact = False
    if draw(st.integers(0, 6)) == 0 and raw:                                 # one byte flipped
        i = draw(st.integers(0, len(raw) - 1))
        raw = raw[:i] + bytes([raw[i] ^ (1 << draw(st.integers(0, 7)))]) + raw[i + 1:]
        intact = False
    return raw, content, len(header), declared, intact, want


def _refused_for_content(message, content, header, magic) -> bool:
    """An intact file may still be refused for what it holds: labels outside
    0..9, images of width or height 0, an empty shape NumPy cannot represent."""
    if magic == 2049:
        return bool(content[header:].translate(None, bytes(range(10))))
    return 0 in np.frombuffer(content[8:header], ">u4") or "is not an array shape" in message


@FUZZ
@given(idx_files())
def test_idx_readers_load_valid_files_or_name_the_bad_one(tmp_path, case):
    raw, content, header, declared, intact, magic = case
    path = tmp_path / ("train-images-idx3-ubyte.gz" if magic == 2051 else "train-labels-idx1-ubyte.gz")
    path.write_bytes(raw)
    read = read_idx_images if magic == 2051 else read_idx_labels
    arr, error, peak = measured(lambda: read(path))
    honest = min(len(content), header + declared)
    assert peak <= 2 * (len(raw) + honest) + 4 * MB, (peak, len(raw), honest)
    if error is not None:
        assert str(path) in str(error)
        assert not intact or _refused_for_content(str(error), content, header, magic), error
    else:
        assert arr.dtype == np.uint8 and arr.ndim == (3 if magic == 2051 else 1)
        assert arr.nbytes <= len(content) - header
        if intact:
            assert arr.tobytes() == content[header:]
    dims, error, peak = measured(lambda: read_idx_header(path, magic))
    assert peak <= 2 * len(raw) + 2 * MB
    assert error is None or str(path) in str(error)
    if arr is not None:
        assert dims == arr.shape


# ---------------------------------------------------------------- CIFAR python batches

tripped = []


def _tripwire(*args):
    """A global no allow-list names: unpickling a reference to it must never call it."""
    tripped.append(args)
    return 0


class Call:
    """Pickles as ``fn(*args)``, then BUILD with ``state`` when given."""

    def __init__(self, fn, *args, state=None):
        self.fn, self.args, self.state = fn, args, state

    def __reduce__(self):
        return (self.fn, self.args) if self.state is None else (self.fn, self.args, self.state)


_DTYPES = ["u1", "i2", ">i4", "<f4", "f8", "c8", "?", "f2", "O", "V8", "S3", "M8", "u1,u1", "(2,)u1",
           "float", "bogus", "<U2", "m8[s]"]
_FORBIDDEN = [_tripwire, os.getcwd, builtins.len, np.zeros, np.frombuffer, getattr, builtins.eval]
_SHAPE = st.one_of(st.tuples(st.integers(0, 8)), st.tuples(st.integers(0, 6), st.integers(0, 6)),
                   st.tuples(st.integers(-2, 2**40)), st.just(()), st.integers(0, 5), st.just("x"))
_BUF = st.one_of(st.binary(max_size=64), st.text(max_size=16), st.none(), st.integers())


def _dtype_call(draw):
    name = draw(st.sampled_from(_DTYPES))
    state = draw(st.one_of(st.none(), st.just((3, draw(st.sampled_from("<>|=x")), None, None, None, -1, -1, 0)),
                           st.just((3, "|", None, ("a",), {"a": ("u1", 0)}, 1, 1, 0)), st.just("junk")))
    return Call(np.dtype, name, False, draw(st.booleans()), state=state)


@st.composite
def crafted_arrays(draw):
    """One call of the grammar: an allow-listed NumPy helper with good or bad arguments,
    a real array NumPy pickles itself, or a forbidden global."""
    choice = draw(st.integers(0, 6))
    if choice == 0:
        strides = draw(st.one_of(st.none(), st.tuples(st.integers(-8, 8)), st.tuples(st.integers(-8, 8), st.integers(-8, 8))))
        return Call(np.ndarray, draw(_SHAPE), draw(st.sampled_from(_DTYPES)), draw(_BUF),
                    draw(st.integers(-2, 70)), strides)
    if choice == 1:
        state = (1, draw(_SHAPE), _dtype_call(draw), draw(st.booleans()), draw(_BUF))
        if draw(st.integers(0, 5)) == 0:
            state = state[:draw(st.integers(0, 4))]
        return Call(_multiarray._reconstruct, draw(st.sampled_from([np.ndarray, np.matrix])), (0,), b"b",
                    state=None if draw(st.integers(0, 6)) == 0 else state)
    if choice == 2:
        return Call(_numeric._frombuffer, draw(_BUF), _dtype_call(draw), draw(_SHAPE), draw(st.sampled_from("CFK")))
    if choice == 3:
        return Call(_multiarray.scalar, _dtype_call(draw), draw(_BUF))
    if choice == 4:
        return _dtype_call(draw)
    if choice == 5:
        fn = draw(st.sampled_from(_FORBIDDEN))
        return Call(fn, *draw(st.lists(st.sampled_from([0, "0", b"x", (3,)]), max_size=2)))
    shape = draw(st.sampled_from([(0,), (3,), (2, 3), (4, 1, 2)]))
    a = np.arange(int(np.prod(shape)) or 0).astype(draw(st.sampled_from(["u1", ">i4", "f4", "?", "c16"]))).reshape(shape)
    return {0: a, 1: np.asfortranarray(a), 2: a[..., ::2]}[draw(st.integers(0, 2))]


_LEAF = st.one_of(st.integers(-2**70, 2**70), st.floats(allow_nan=False), st.text(max_size=8), st.binary(max_size=8),
                  st.none(), st.booleans())
_VALUE = st.recursive(st.one_of(_LEAF, crafted_arrays()),
                      lambda inner: st.one_of(st.lists(inner, max_size=3), st.tuples(inner, inner),
                                              st.dictionaries(st.text(max_size=4), inner, max_size=3)),
                      max_leaves=8)


@st.composite
def cifar_batches(draw):
    """A pickled CIFAR batch: mostly well-shaped (some wrong in one way), or anything of the grammar."""
    n = draw(st.integers(0, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, draw(st.sampled_from([10, 10, 12])), n)]
    batch = {"batch_label": "training batch 1 of 5", "data": data, "labels": labels}
    change = draw(st.integers(0, 6))
    if change == 1:
        batch[draw(st.sampled_from(["data", "labels"]))] = draw(_VALUE)
    elif change == 2:
        batch["extra"] = draw(_VALUE)
    elif change == 3:
        batch = draw(_VALUE)
    elif change == 4:
        batch["labels"] = np.asarray(labels, dtype=draw(st.sampled_from(["u1", "i8", "f4"])))
    if isinstance(batch, dict) and draw(st.booleans()):
        batch = {k.encode() if isinstance(k, str) else k: v for k, v in batch.items()}
    raw = pickle.dumps(batch, protocol=draw(st.integers(0, 5)))
    if draw(st.integers(0, 4)) == 0:
        raw = raw[:draw(st.integers(0, len(raw)))]
    if draw(st.integers(0, 5)) == 0 and raw:
        i = draw(st.integers(0, len(raw) - 1))
        raw = raw[:i] + bytes([draw(st.integers(0, 255))]) + raw[i + 1:]
    return raw


def _plain(obj, depth=0):
    """Only containers, strings, numbers, plain numeric arrays that own their memory, and dtypes."""
    assert depth < 200 and not isinstance(obj, _Slot)
    if isinstance(obj, np.ndarray):
        assert type(obj) is np.ndarray and obj.dtype.kind in "biufc" and obj.base is None
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _plain(k, depth + 1)
            _plain(v, depth + 1)
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for v in obj:
            _plain(v, depth + 1)
    else:
        assert isinstance(obj, (str, bytes, bytearray, memoryview, int, float, complex, type(None),
                                np.generic, np.dtype)), type(obj)
        if isinstance(obj, np.dtype):
            assert obj.kind in "biufc" and obj.fields is None


@FUZZ
@given(cifar_batches())
def test_cifar_python_batches_load_or_name_the_bad_file(tmp_path, raw):
    path = tmp_path / "data_batch_1"
    path.write_bytes(raw)
    got, error, peak = measured(lambda: read_cifar_py_batch(path))
    assert peak <= 4 * len(raw) + 4 * MB, (peak, len(raw))
    if error is not None:
        assert str(path) in str(error)
    else:
        X, y = got
        assert X.dtype == np.uint8 and X.shape == (len(y), 3, 32, 32)
        assert y.dtype == np.int64 and ((0 <= y) & (y < 10)).all()
    with open(path, "rb") as f:
        obj, error, _ = measured(lambda: safe_load(f, path))
    assert error is None or str(path) in str(error)
    if error is None:
        _plain(obj)
    assert not tripped


# ---------------------------------------------------------------- CIFAR binary batches

@FUZZ
@given(st.integers(0, 6), st.sampled_from([0, 0, 1, -1, 3072, -3072]), st.integers(0, 2**32 - 1),
       st.sampled_from([10, 256]))
def test_cifar_binary_batches_load_or_name_the_bad_file(tmp_path, records, extra, seed, label_range):
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, max(0, records * 3073 + extra), dtype=np.uint8)
    raw[::3073] = raw[::3073].astype(np.int64) % label_range  # 256: any byte, so bad labels too
    path = tmp_path / "data_batch_1.bin"
    path.write_bytes(raw.tobytes())
    got, error, peak = measured(lambda: read_cifar_bin_batch(path))
    assert peak <= 3 * raw.nbytes + 2 * MB
    if error is not None:
        assert str(path) in str(error)
        assert extra or records == 0 or label_range == 256
    else:
        X, y = got
        assert X.shape == (records, 3, 32, 32) and y.shape == (records,) and (y < 10).all()
        np.testing.assert_array_equal(X.reshape(records, -1), raw.reshape(records, -1)[:, 1:])


@pytest.fixture(autouse=True)
def no_tripwire():
    tripped.clear()
    yield
    assert not tripped, "a forbidden global ran during unpickling"
