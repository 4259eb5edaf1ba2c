"""Downloads that verify what they fetched and never leave a half file under the final name."""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import time
import urllib.error
import urllib.request

from .errors import DownloadError
from .fileio import atomic_path

CACHE_ENV = "MINDCV_MOBILENET_CACHE"


def default_cache_dir() -> str:
    """The cache for weights and data: ``$MINDCV_MOBILENET_CACHE``, else ``~/.cache/mindcv_mobilenet``."""
    return os.path.expanduser(os.environ.get(CACHE_ENV) or os.path.join("~", ".cache", "mindcv_mobilenet"))


def file_digest(path: str, algorithm: str = "sha256", chunk_size: int = 1 << 20) -> str:
    """Hex digest of a file, read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_hash(path: str, expected: str | None, algorithm: str = "sha256") -> bool:
    """True when ``expected`` is empty or the file's digest starts with it (a prefix as in ``name-<hash8>.ckpt``)."""
    if not expected:
        return True
    return file_digest(path, algorithm).startswith(expected.lower())


class _Progress:
    """A one-line progress report on stderr, refreshed at most a few times a second."""

    def __init__(self, name: str, total: int, enabled: bool) -> None:
        self.name, self.total, self.enabled = name, total, enabled
        self.done, self.start, self.last = 0, time.time(), 0.0

    def update(self, n: int) -> None:
        self.done += n
        now = time.time()
        if self.enabled and (now - self.last > 0.5 or self.done == self.total):
            self.last = now
            mb = self.done / 1e6
            speed = mb / max(now - self.start, 1e-6)
            size = f"{mb:.1f} MB"
            if self.total:
                size = f"{mb:.1f}/{self.total / 1e6:.1f} MB ({100 * self.done / self.total:.0f}%)"
            msg = f"\rdownloading {self.name}: {size} {speed:.1f} MB/s"
            print(msg, end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.enabled and self.done:
            print(file=sys.stderr, flush=True)


def download_url(
    url: str,
    dest_path: str,
    sha256: str | None = None,
    md5: str | None = None,
    progress: bool = True,
    timeout: float = 30.0,
) -> str:
    """Fetch ``url`` to ``dest_path`` atomically, verifying its size and hash; reuse an intact existing file.

    Raises :class:`DownloadError` with the URL and the path to place the file in by hand when the server cannot be
    reached, the transfer is cut short, or the hash does not match (the bad file is not kept).
    """
    algorithm, expected = ("sha256", sha256) if sha256 else ("md5", md5)
    if os.path.isfile(dest_path) and expected and check_hash(dest_path, expected, algorithm):
        return dest_path
    if os.path.isfile(dest_path) and not expected:
        return dest_path
    name = os.path.basename(dest_path)
    with atomic_path(dest_path) as tmp_path:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp_path, "wb") as out:
                total = int(response.headers.get("Content-Length") or 0)
                bar = _Progress(name, total, progress)
                while True:
                    chunk = response.read(1 << 16)
                    if not chunk:
                        break
                    out.write(chunk)
                    bar.update(len(chunk))
                bar.close()
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:
            reason = getattr(err, "reason", err)
            raise DownloadError(
                f"cannot download {url} ({reason}); download it by hand and place it at {dest_path}"
            ) from None
        size = os.path.getsize(tmp_path)
        if total and size != total:
            raise DownloadError(
                f"download of {url} was cut short ({size} of {total} bytes); run again, or download it by hand "
                f"and place it at {dest_path}"
            )
        if expected and not check_hash(tmp_path, expected, algorithm):
            raise DownloadError(
                f"{algorithm} of {url} is {file_digest(tmp_path, algorithm)}, expected {expected}: the file was "
                f"not kept; run again, or download it by hand and place it at {dest_path}"
            )
    return dest_path
