"""The backend switch and the compile cache: safe when processes compile at once."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np  # noqa: F401 - the signatures below are NumPy expressions, evaluated
import pytest

from normlab.nn import backend

pytest.importorskip("numba")

KERNEL = textwrap.dedent('''
    import numpy as np
    from normlab.nn.backend import jit

    @jit()
    def total(x):
        s = 0.0
        for v in x.ravel():
            s += v
        return s * 2 + x.ndim
''')

SIGNATURES = {   # each process compiles its own signatures of the same function, at the same time
    "a": "[np.ones(3, np.float32), np.ones((2, 2)), np.ones((2, 2, 2), np.float32)]",
    "b": "[np.arange(3), np.ones(3), np.ones((2, 3), np.int32)]",
}
CHECK = ("[np.ones(3, np.float32), np.ones((2, 2)), np.ones((2, 2, 2), np.float32), np.arange(3), np.ones(3),"
         " np.ones((2, 3), np.int32)]")


def _spawn(tmp_path, arrays: str, cache) -> subprocess.Popen:
    code = (f"import sys; sys.path.insert(0, {str(tmp_path)!r})\n"
            "import numpy as np, kernelmod\n"
            f"print([float(kernelmod.total(a)) for a in {arrays}])\n")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "NORMLAB_BACKEND": ""}
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def test_processes_compiling_at_once_leave_a_consistent_cache(tmp_path):
    (tmp_path / "kernelmod.py").write_text(KERNEL)
    expected = [2 * a.sum() + a.ndim for a in eval(CHECK)]
    for round_ in range(3):
        cache = tmp_path / f"cache{round_}"
        procs = [_spawn(tmp_path, arrays, cache) for arrays in SIGNATURES.values()]
        for p in procs:
            out, err = p.communicate(timeout=300)
            assert p.returncode == 0, err
        check = _spawn(tmp_path, CHECK, cache)   # loads every signature from the cache
        out, err = check.communicate(timeout=300)
        assert check.returncode == 0, err
        assert eval(out) == expected
        index = list(cache.rglob("*.nbi"))
        data = list(cache.rglob("*.nbc"))
        assert len(index) == 1 and len(data) == 6, (index, data)


def test_cache_writes_are_locked():
    assert backend.CACHE_LOCKED


def test_set_backend_and_using():
    before = backend.active()
    with backend.using("numpy"):
        assert backend.active() == "numpy" and not backend.fast()
    assert backend.active() == before
    with pytest.raises(ValueError, match="unknown backend 'cuda'.*numba, numpy"):
        backend.set_backend("cuda")


def test_compiled_code_is_cached_in_the_user_cache(tmp_path):
    code = "import os, normlab.nn.backend as b; print(os.environ['NUMBA_CACHE_DIR']); print(b.cache_dir())"
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["XDG_CACHE_HOME"] = str(tmp_path)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(tmp_path / "normlab" / "numba")] * 2


def test_the_user_cache_even_when_numba_was_imported_first(tmp_path):
    """A test's importorskip("numba") or the user's own import comes first: kernels still go to the user cache."""
    code = ("import numba, numpy as np\n"
            "from normlab.layers import batchnorm_forward\n"
            "batchnorm_forward(np.ones((4, 3)) * np.arange(4)[:, None], np.ones(3), np.zeros(3), {'mode': 'train'})\n"
            "print(numba.config.CACHE_DIR)\n")
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "NORMLAB_BACKEND")}
    env["XDG_CACHE_HOME"] = str(tmp_path)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(tmp_path / "normlab" / "numba")
    assert list((tmp_path / "normlab" / "numba").rglob("*_jit_layer*.nbi"))


def test_malloc_policy_can_be_left_alone():
    code = "import normlab.nn.backend as b; print(b.MALLOC_TUNED)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "NORMLAB_MALLOC": "system"})
    assert r.returncode == 0 and r.stdout.strip() == "False", r.stderr


def test_two_saves_at_once_keep_both_entries(tmp_path):
    """The interleaving that loses an entry without the lock: both read the index, then both write it."""
    import threading
    from numba.core.caching import IndexDataCacheFile
    first, second = (IndexDataCacheFile(str(tmp_path), "kernel", "stamp") for _ in range(2))
    inside, release = threading.Event(), threading.Event()
    load = first._load_index

    def slow_load():   # the first save pauses after reading the index
        index = load()
        inside.set()
        release.wait(timeout=10)
        return index

    first._load_index = slow_load
    t1 = threading.Thread(target=first.save, args=("sig-a", b"code for a"))
    t1.start()
    assert inside.wait(timeout=10)
    t2 = threading.Thread(target=second.save, args=("sig-b", b"code for b"))
    t2.start()
    t2.join(timeout=0.5)
    blocked = t2.is_alive()   # the second save waits for the first one's lock
    release.set()
    t1.join(timeout=10)
    t2.join(timeout=10)
    assert blocked
    index = second._load_index()
    assert sorted(index) == ["sig-a", "sig-b"] and len(set(index.values())) == 2
    assert second.load("sig-a") == b"code for a" and second.load("sig-b") == b"code for b"
