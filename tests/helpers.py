"""Plain helpers of the tests (the fixtures are in ``conftest.py``, the independent reference in ``reference.py``).

* where the repository and the shared real data lie (:data:`REPO_ROOT`, :func:`shared_dir`: the installed package
  does not know) and subsets of that data (:func:`shared_path`);
* made-up inputs: messy image folders, CIFAR-style records and archives, a local HTTP server;
* checkpoints: the shared torchvision MobileNetV2 converted, random ones with realistic weights;
* running the repository's scripts as a user would, and their one-line errors.

Expensive files (the converted checkpoint, random checkpoints) are written under the folder the caller gives, once:
tests pass pytest's base temp folder to share them across the session.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_ENV = "MINDCV_MOBILENET_SHARED"


def shared_dir() -> str:
    """Folder of shared real data and weights: ``$MINDCV_MOBILENET_SHARED`` or ``<repo>/../shared``."""
    return os.environ.get(SHARED_ENV) or str(REPO_ROOT.parent / "shared")


# ---------------------------------------------------------------- the shared real data
NPZ = ("weights", "mobilenet_v2_1.0_224_torchvision_dequant.npz")
SAMPLES = ("data", "imagenet-samples")
CIFAR_DIR = os.path.join(shared_dir(), "data", "cifar-10-batches-bin")
IMAGENET_SAMPLES = os.path.join(shared_dir(), *SAMPLES)


def shared_path(*parts: str) -> Path:
    """A path under the shared folder, or skip the test with a reason when it is not there."""
    path = Path(shared_dir()).joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not present: {path} (set MINDCV_MOBILENET_SHARED to the shared folder)")
    return path


def imagenet_samples(every: int = 1) -> list[tuple[Path, int]]:
    """(image, label) of every ``every``-th class of imagenet-samples (label = rank of the synset, one image each)."""
    source = shared_path(*SAMPLES, "val")
    synsets = sorted(p.name for p in source.iterdir() if p.is_dir())
    return [(image, label) for label, synset in enumerate(synsets) if label % every == 0
            for image in sorted((source / synset).iterdir())]


def imagenet_subset(base: Path, every: int = 20) -> tuple[Path, list[tuple[str, int]]]:
    """An ImageNet-layout tree with all 1,000 class folders (so labels keep their indices) and the images of every
    ``every``-th class as symlinks; returns (root holding ``val/``, [(image path, label)])."""
    root = base / f"imagenet_subset_{every}"
    for synset in shared_path(*SAMPLES, "val").iterdir():
        if synset.is_dir():
            (root / "val" / synset.name).mkdir(parents=True, exist_ok=True)
    samples = []
    for image, label in imagenet_samples(every):
        link = root / "val" / image.parent.name / image.name
        if not link.exists():
            link.symlink_to(image)
        samples.append((str(link), label))
    return root, samples


# ---------------------------------------------------------------- made-up inputs
SIZE = 40  # side of the made-up images


def random_rgb(seed: int) -> Image.Image:
    """A SIZE x SIZE+8 RGB image of uniform noise."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (SIZE, SIZE + 8, 3), dtype=np.uint8), "RGB")


def jpeg_bytes(img: Image.Image, **save) -> bytes:
    """``img`` as a quality-90 JPEG file's bytes (``save``: more options of PIL's JPEG writer)."""
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90, **save)
    return buf.getvalue()


def write_messy_class(folder: str) -> dict:
    """One class folder with every awkward kind of file; returns {file name: expected outcome}."""
    os.makedirs(folder, exist_ok=True)
    random_rgb(1).save(os.path.join(folder, "rgb.jpg"), quality=90)
    random_rgb(2).convert("L").save(os.path.join(folder, "gray.png"))
    random_rgb(3).convert("CMYK").save(os.path.join(folder, "cmyk.jpg"), quality=90)
    rgba = random_rgb(4).convert("RGBA")
    rgba.putpixel((0, 0), (0, 0, 0, 0))  # transparent black -> must come out white
    rgba.save(os.path.join(folder, "rgba.png"))
    pal = random_rgb(5).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    pal.info["transparency"] = 0
    pal.save(os.path.join(folder, "palette.png"), transparency=0)
    Image.fromarray(np.arange(SIZE * SIZE, dtype=np.uint16).reshape(SIZE, SIZE) * 40).save(
        os.path.join(folder, "deep16.png"))
    data = jpeg_bytes(random_rgb(6))
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
        random_rgb(seed * 100 + i).save(os.path.join(folder, f"img_{i}.jpg"), quality=90)


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


def iterate(loader) -> list:
    """All batches of a loader as dicts of numpy arrays (one epoch)."""
    return list(loader.create_dict_iterator(num_epochs=1, output_numpy=True))


# ---------------------------------------------------------------- checkpoints
def converted_mnv2(base: Path) -> Path:
    """The shared torchvision MobileNetV2 weights converted to a checkpoint (by the package's converter)."""
    from mindcv_mobilenet.convert import convert_file

    path = base / "mnv2_torchvision.ckpt"
    if not path.exists():
        convert_file("mobilenet_v2_100", str(shared_path(*NPZ)), str(path))
    return path


def random_checkpoint(base: Path, model_name: str, num_classes: int, seed: int = 0, class_names=None) -> Path:
    """A checkpoint of ``model_name`` with random, non-degenerate weights (BatchNorm statistics included), in its
    own folder, optionally with the class list a training run saves beside it."""
    from mindcv_mobilenet import create_model
    from mindcv_mobilenet.data import save_class_names
    from mindcv_mobilenet.utils.checkpoint import save_checkpoint

    folder = base / f"{model_name}_{num_classes}_{seed}"
    path = folder / "model.ckpt"
    if path.exists():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    model = create_model(model_name, num_classes=num_classes)
    randomize(model, seed)
    save_checkpoint(model, str(path))
    if class_names:
        save_class_names(class_names, str(path))
    return path


def randomize(model, seed: int = 0) -> None:
    """Random weights with realistic scales, so outputs depend on every layer (fresh init leaves BN at identity and
    the classifier near zero, which hides export mistakes)."""
    from mindspore import Tensor

    rng = np.random.default_rng(seed)
    for p in model.get_parameters():
        shape = p.shape
        if p.name.endswith("moving_variance"):
            value = rng.uniform(0.5, 2.0, shape)
        elif p.name.endswith(("moving_mean", "beta")):
            value = rng.normal(0.0, 0.1, shape)
        elif p.name.endswith("gamma"):
            value = rng.uniform(0.5, 1.5, shape)
        elif len(shape) == 4:
            value = rng.normal(0.0, np.sqrt(2.0 / (shape[1] * shape[2] * shape[3])), shape)
        else:
            value = rng.normal(0.0, np.sqrt(1.0 / shape[-1]), shape)
        p.set_data(Tensor(value.astype(np.float32)))


# ---------------------------------------------------------------- command lines
def run_script(script: str, *args: str, timeout: int = 300, prelude: str = "") -> subprocess.CompletedProcess:
    """Run a top-level script of the repository as a user would; ``prelude`` is Python run first (to hide a module)."""
    env = dict(os.environ, GLOG_v="3", PYTHONWARNINGS="ignore")
    path = str(REPO_ROOT / script)
    if prelude:
        code = f"{prelude}\nimport runpy, sys\nsys.argv = [{path!r}] + sys.argv[1:]\nrunpy.run_path({path!r}, " \
               "run_name='__main__')"
        command = [sys.executable, "-c", code, *args]
    else:
        command = [sys.executable, path, *args]
    with tempfile.TemporaryDirectory(prefix="mcv_cli_") as cwd:  # MindSpore drops compile caches in the cwd
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit status 2, no traceback, and an ``error: ...`` line that names what is wrong."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr[-3000:]
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]
