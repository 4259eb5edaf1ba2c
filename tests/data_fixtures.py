"""Fixtures for the data tests: a messy class-per-folder image tree, CIFAR-style archives and a local HTTP server.

Imported by ``tests/test_data*.py`` (kept out of conftest.py, which other modules own).
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from mindcv_mobilenet.data.constants import shared_dir

SHARED = shared_dir()
CIFAR_DIR = os.path.join(SHARED, "data", "cifar-10-batches-bin")
IMAGENET_SAMPLES = os.path.join(SHARED, "data", "imagenet-samples")
SIZE = 40


def _rgb(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (SIZE, SIZE + 8, 3), dtype=np.uint8), "RGB")


def _jpeg_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def write_messy_class(folder: str) -> dict:
    """One class folder with every awkward kind of file; returns {file name: expected outcome}."""
    os.makedirs(folder, exist_ok=True)
    _rgb(1).save(os.path.join(folder, "rgb.jpg"), quality=90)
    _rgb(2).convert("L").save(os.path.join(folder, "gray.png"))
    _rgb(3).convert("CMYK").save(os.path.join(folder, "cmyk.jpg"), quality=90)
    rgba = _rgb(4).convert("RGBA")
    rgba.putpixel((0, 0), (0, 0, 0, 0))  # transparent black -> must come out white
    rgba.save(os.path.join(folder, "rgba.png"))
    pal = _rgb(5).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    pal.info["transparency"] = 0
    pal.save(os.path.join(folder, "palette.png"), transparency=0)
    Image.fromarray(np.arange(SIZE * SIZE, dtype=np.uint16).reshape(SIZE, SIZE) * 40).save(
        os.path.join(folder, "deep16.png"))
    data = _jpeg_bytes(_rgb(6))
    with open(os.path.join(folder, "truncated.jpg"), "wb") as f:
        f.write(data[: len(data) // 2])
    open(os.path.join(folder, "empty.jpg"), "wb").close()
    for junk in ("notes.txt", ".DS_Store"):
        with open(os.path.join(folder, junk), "w") as f:
            f.write("not an image")
    return {"good": 6, "bad": ["truncated.jpg", "empty.jpg"]}


def write_good_class(folder: str, count: int, seed: int) -> None:
    os.makedirs(folder, exist_ok=True)
    for i in range(count):
        _rgb(seed * 100 + i).save(os.path.join(folder, f"img_{i}.jpg"), quality=90)


@pytest.fixture(scope="session")
def messy_tree(tmp_path_factory) -> str:
    """root/train/{a_messy,b_clean} and root/validation/{a_messy,b_clean}: 8 good + 2 bad files per split."""
    root = str(tmp_path_factory.mktemp("messy"))
    for split in ("train", "validation"):
        write_messy_class(os.path.join(root, split, "a_messy"))
        write_good_class(os.path.join(root, split, "b_clean"), 2, seed=7)
    return root


def cifar_records(n: int, seed: int) -> bytes:
    """``n`` CIFAR-10 binary records with labels cycling 0..9."""
    rng = np.random.default_rng(seed)
    rec = rng.integers(0, 256, (n, 3073), dtype=np.uint8)
    rec[:, 0] = np.arange(n) % 10
    return rec.tobytes()


def make_tar(members: dict, symlinks: dict | None = None) -> bytes:
    """A gzipped tar from {name: bytes} (names used verbatim, even '../x' or '/x') and {name: link target}."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (symlinks or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buf.getvalue()


def small_cifar_archive(records_per_file: int = 20) -> tuple[bytes, dict]:
    """(archive bytes in the official layout, {file name: md5})."""
    files = {f"data_batch_{i}.bin": cifar_records(records_per_file, i) for i in range(1, 6)}
    files["test_batch.bin"] = cifar_records(records_per_file, 99)
    members = {f"cifar-10-batches-bin/{k}": v for k, v in files.items()}
    members["cifar-10-batches-bin/batches.meta.txt"] = b"\n".join(
        n.encode() for n in ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    )
    return make_tar(members), {k: hashlib.md5(v).hexdigest() for k, v in files.items()}


class FileServer:
    """A threaded HTTP server on 127.0.0.1 serving ``routes`` {path: bytes}; ``short`` paths send half the bytes
    after announcing the full Content-Length; ``requests`` counts GETs per path."""

    def __init__(self) -> None:
        self.routes: dict = {}
        self.short: set = set()
        self.requests: dict = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                server.requests[self.path] = server.requests.get(self.path, 0) + 1
                data = server.routes.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2] if self.path in server.short else data)
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def file_server():
    server = FileServer()
    yield server
    server.close()


def iterate(loader) -> list:
    """All batches of a loader as dicts of numpy arrays (one epoch)."""
    return list(loader.create_dict_iterator(num_epochs=1, output_numpy=True))
