"""Downloads against a local HTTP server on 127.0.0.1 (never the network):
checksum mismatch, mirror fallback, archive fetch, nothing half-cached."""
import dataclasses
import gzip
import hashlib
import http.server
import io
import pickle
import socket
import tarfile
import threading

import numpy as np
import pytest

from normlab.data import DataError, DownloadError, get_CIFAR10_data, load_mnist, registry
from normlab.data.download import download_file, fetch, target_dir
from normlab.data.registry import ArchiveSpec, FileSpec, Layout
from normlab.data.writers import idx_bytes


pytestmark = pytest.mark.usefixtures("isolated_data_dirs")


class Server:
    """Serves ``routes`` {path: bytes | int status}; records every request path."""

    def __init__(self):
        self.routes, self.requests = {}, []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append(self.path)
                body = outer.routes.get(self.path, 404)
                if isinstance(body, int):
                    self.send_error(body)
                    return
                if isinstance(body, tuple):          # (announced length, body): a cut transfer
                    length, body = body
                else:
                    length = len(body)
                self.send_response(200)
                self.send_header("Content-Length", str(length))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.timeout = 5
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server():
    with Server() as s:
        yield s


def closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def md5(b):
    return hashlib.md5(b).hexdigest()


def leftovers(folder):
    return [p.name for p in folder.rglob("*")] if folder.exists() else []


# ------------------------------------------------------------ download_file

def test_checksum_mismatch_removes_temporary_and_caches_nothing(tmp_path, server):
    server.routes["/f.gz"] = b"not what was published"
    dest = tmp_path / "d" / "f.gz"
    dest.parent.mkdir()
    with pytest.raises(DownloadError, match=r"could not download f.gz: .*/f.gz: MD5 [0-9a-f]{32} does not "
                                            r"match the published 0{32}.*Nothing was saved"):
        download_file([server.url + "/f.gz"], dest, "0" * 32, progress=None)
    assert leftovers(tmp_path / "d") == []


def test_failing_first_mirrors_fall_back_to_the_next(tmp_path, server):
    body = b"payload" * 1000
    server.routes["/good/f"] = body
    server.routes["/bad/f"] = 500
    urls = [closed_port_url() + "/f", server.url + "/bad/f", server.url + "/missing/f", server.url + "/good/f"]
    out = io.StringIO()
    path = download_file(urls, tmp_path / "f", md5(body), progress=out, timeout=5)
    assert path.read_bytes() == body
    assert server.requests == ["/bad/f", "/missing/f", "/good/f"]
    assert out.getvalue().count("failed:") == 3 and f"downloading {server.url}/good/f (0.0 MB)" in out.getvalue()
    assert leftovers(tmp_path) == ["f"]


def test_cut_transfer_and_oversize_are_rejected(tmp_path, server):
    server.routes["/cut"] = (5000, b"x" * 100)
    server.routes["/big"] = b"x" * 2000
    with pytest.raises(DownloadError) as e:
        download_file([server.url + "/cut", server.url + "/big"], tmp_path / "f", md5(b"x" * 2000),
                      progress=None, max_bytes=1000, timeout=5)
    assert "/cut:" in str(e.value) and "more than the 1000 allowed" in str(e.value)
    assert leftovers(tmp_path) == []


def test_only_http_urls(tmp_path):
    (tmp_path / "src").write_bytes(b"x")
    with pytest.raises(DownloadError, match="unsupported URL scheme 'file'"):
        download_file([(tmp_path / "src").as_uri()], tmp_path / "f", md5(b"x"), progress=None)


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_on_a_terminal(tmp_path, server):
    body = b"z" * (3 << 20)
    server.routes["/f"] = body
    out = FakeTTY()
    download_file([server.url + "/f"], tmp_path / "f", md5(body), progress=out)
    text = out.getvalue()
    assert text.startswith("\r") and "100.0%" in text and "[" + "#" * 30 + "]" in text and text.endswith("\n")


# ------------------------------------------------------------ fetching datasets

def small_mnist(server, prefix="/mirror"):
    """Serves a tiny MNIST-format set; returns a registry entry pinned to its MD5s."""
    rng = np.random.default_rng(0)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (30, 28, 28), dtype=np.uint8),
              "train-labels-idx1-ubyte": (np.arange(30) % 10).astype(np.uint8),
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (10, 28, 28), dtype=np.uint8),
              "t10k-labels-idx1-ubyte": (np.arange(10) % 10).astype(np.uint8)}
    files = []
    for name, a in arrays.items():
        gz = gzip.compress(idx_bytes(a), mtime=0)
        server.routes[f"{prefix}/{name}.gz"] = gz
        files.append(FileSpec(name + ".gz", md5(gz)))
    spec = dataclasses.replace(registry.MNIST, layouts=(Layout("idx", "", tuple(files)),),
                               mirrors=(closed_port_url() + "/", server.url + prefix + "/"))
    return spec, arrays


def test_load_with_download_uses_the_next_mirror_and_caches_verified_files(tmp_path, server, monkeypatch):
    spec, arrays = small_mnist(server)
    monkeypatch.setitem(registry.DATASETS, "mnist", spec)
    d = load_mnist(download=True, num_training=25, num_validation=5, num_test=10)
    assert d["X_train"].shape == (25, 1, 28, 28)
    np.testing.assert_array_equal(d["y_test"], arrays["t10k-labels-idx1-ubyte"])
    cached = tmp_path / "cache" / "normlab" / "mnist"
    assert sorted(leftovers(cached)) == sorted(f.name for f in spec.layouts[0].files)
    # a second fetch keeps the verified files and downloads nothing
    n = len(server.requests)
    fetch(spec, progress=None)
    assert len(server.requests) == n


def test_fetch_with_official_checksums_refuses_other_bytes(tmp_path, server):
    _, _ = small_mnist(server)       # right format, but not the official MNIST files
    with pytest.raises(DownloadError, match="does not match the published f68b3c2dcbeaaa9fbdd348bbdeb94873"):
        fetch("mnist", data_dir=tmp_path / "data", mirrors=[server.url + "/mirror/"], progress=None)
    assert not (tmp_path / "data" / "mnist").exists()
    assert leftovers(tmp_path / "data") == []


def test_without_download_nothing_is_fetched(server):
    with pytest.raises(FileNotFoundError, match="normlab data fetch mnist"):
        load_mnist()
    assert server.requests == []


def test_target_dir_rules(tmp_path, monkeypatch):
    assert target_dir("mnist") == tmp_path / "cache" / "normlab" / "mnist"
    assert target_dir("mnist", tmp_path / "x") == tmp_path / "x" / "mnist"
    assert target_dir("fashion-mnist", tmp_path / "fashion-mnist") == tmp_path / "fashion-mnist"
    assert target_dir("cifar-10", tmp_path / "y" / "cifar-10-batches-py") == tmp_path / "y"
    monkeypatch.setenv("NORMLAB_DATA", str(tmp_path / "env"))
    assert target_dir("cifar-10") == tmp_path / "env" / "cifar-10"


def cifar_tar(entries_extra=()):
    rng = np.random.default_rng(3)
    buf = io.BytesIO()
    members = {}
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            X = rng.integers(0, 256, (4, 3072), dtype=np.uint8)
            body = pickle.dumps({"data": X, "labels": list(range(4))}, protocol=2)
            members[name] = md5(body)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
        for name, body in entries_extra:
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return buf.getvalue(), members


def cifar_spec(tar_bytes, members, url):
    layout = Layout("cifar-py", "cifar-10-batches-py", tuple(FileSpec(n, m) for n, m in members.items()))
    return dataclasses.replace(registry.CIFAR10, layouts=(layout, registry.CIFAR10.layouts[1]),
                               archive=ArchiveSpec("cifar-10-python.tar.gz", md5(tar_bytes), (url,),
                                                   "cifar-10-batches-py"))


def test_cifar_archive_fetch_verify_extract_and_load(tmp_path, server, monkeypatch):
    tar_bytes, members = cifar_tar()
    server.routes["/cifar.tgz"] = tar_bytes
    spec = cifar_spec(tar_bytes, members, server.url + "/cifar.tgz")
    monkeypatch.setitem(registry.DATASETS, "cifar-10", spec)
    d = get_CIFAR10_data(15, 5, 4, data_dir=tmp_path / "data", download=True)
    assert d["X_train"].shape == (15, 3, 32, 32)
    assert sorted(leftovers(tmp_path / "data")) == sorted(["cifar-10", "cifar-10-batches-py", *members])


def test_cifar_archive_with_escaping_member_leaves_nothing(tmp_path, server):
    tar_bytes, members = cifar_tar(entries_extra=[("../../escaped", b"x")])
    server.routes["/cifar.tgz"] = tar_bytes
    spec = cifar_spec(tar_bytes, members, server.url + "/cifar.tgz")
    with pytest.raises(DataError, match="refusing member '../../escaped'"):
        fetch(spec, data_dir=tmp_path / "data", progress=None)
    assert leftovers(tmp_path) == []


def test_cifar_archive_member_with_wrong_checksum_leaves_nothing(tmp_path, server):
    tar_bytes, members = cifar_tar()
    server.routes["/cifar.tgz"] = tar_bytes
    spec = cifar_spec(tar_bytes, {**members, "test_batch": "0" * 32}, server.url + "/cifar.tgz")
    with pytest.raises(DataError, match="test_batch has MD5 .* not the official 0{32}"):
        fetch(spec, data_dir=tmp_path / "data", progress=None)
    assert leftovers(tmp_path) == []


def test_cli_fetch_failure_is_one_line_and_caches_nothing(tmp_path, server, capsys):
    from normlab.cli import main
    server.routes["/m/train-images-idx3-ubyte.gz"] = b"junk"
    assert main(["data", "fetch", "mnist", "--dir", str(tmp_path / "d"), "--mirror", server.url + "/m/"]) == 1
    err = capsys.readouterr().err.splitlines()      # progress lines, then the one-line error
    assert err[0] == f"downloading {server.url}/m/train-images-idx3-ubyte.gz (0.0 MB)"
    assert err[-1].startswith("normlab: error: could not download train-images-idx3-ubyte.gz")
    assert not any("Traceback" in line for line in err)
    assert leftovers(tmp_path / "d") == []


def test_cli_fetch_success(tmp_path, server, capsys, monkeypatch):
    from normlab.cli import main
    spec, _ = small_mnist(server)
    monkeypatch.setitem(registry.DATASETS, "mnist", spec)
    assert main(["data", "fetch", "mnist", "--dir", str(tmp_path), "--mirror", server.url + "/mirror/"]) == 0
    assert f"downloaded and MD5-verified into {tmp_path / 'mnist'}" in capsys.readouterr().out
    assert main(["data", "fetch", "mnist", "--dir", str(tmp_path)]) == 0
    assert "already in" in capsys.readouterr().out
