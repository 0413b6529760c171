"""A fake Hugging Face hub on a loopback port: real HTTP, the hub's URL layout, ``Range``.

It serves ``tests/fixtures/hub/<org>/<name>/`` at ``/<org>/<name>/resolve/<revision>/<file>``:
config.json and model.safetensors.index.json as they are, and each shard from its
``<shard>.header.json`` as a safetensors file: the 8-byte little-endian header length, the
header, then zeros for the tensor data (as many as the header's offsets say), so that a shard
is as long as the real one and nothing but its header is worth reading. Like the hub it answers
a ``Range: bytes=a-b`` request with 206 and ``Content-Range``, sets ``X-Repo-Commit``, and 404s
files a repository lacks. ``honor_range = False`` makes it a server that ignores ``Range`` and
streams the whole file with 200; ``bytes_sent`` then shows how much the client let it send.
``status``, ``tokens`` and ``files`` make a repository answer an error, need a token, or hold
an extra file.
"""

from __future__ import annotations

import hashlib
import re
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

HUB = Path(__file__).parent / "fixtures" / "hub"
CHUNK = 64 * 1024


@dataclass
class Shard:
    """A safetensors file that exists only as its header: ``prefix`` then ``data`` zeros."""

    prefix: bytes
    data: int

    @classmethod
    def from_header(cls, header: bytes) -> Shard:
        import json

        ends = [v["data_offsets"][1] for k, v in json.loads(header).items() if k != "__metadata__"]
        return cls(struct.pack("<Q", len(header)) + header, max(ends, default=0))

    def __len__(self) -> int:
        return len(self.prefix) + self.data

    def chunks(self, start: int, end: int) -> Iterator[bytes]:
        """Bytes [start, end) in pieces of at most CHUNK."""
        at = start
        while at < end:
            stop = min(end, at + CHUNK)
            piece = self.prefix[at:stop]
            yield piece + bytes(stop - at - len(piece))
            at = stop


@dataclass
class Hub:
    url: str = ""
    honor_range: bool = True
    status: dict[str, int] = field(default_factory=dict)
    """repo → HTTP status every file of it answers."""
    tokens: dict[str, str] = field(default_factory=dict)
    """repo → the bearer token it needs (401 without, 403 with another)."""
    files: dict[str, bytes | Shard] = field(default_factory=dict)
    """"org/name/file" → content, beside the fixture tree."""
    redirect_shards: bool = False
    """Answer shard requests with 302 to ``/cdn/…``, as the hub sends LFS files to its CDN."""
    heads: dict[tuple[str, str], str] = field(default_factory=dict)
    """(repo, branch) → the commit it points at; others get a commit derived from the name."""
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    """(path, Range header) of every GET, in order; HEADs are in ``heads_asked``."""
    heads_asked: list[str] = field(default_factory=list)
    bytes_sent: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def endpoint(self) -> str:
        return self.url

    def commit(self, repo: str, revision: str) -> str:
        """What ``X-Repo-Commit`` says for ``revision``: itself when it is a commit id."""
        if re.fullmatch(r"[0-9a-f]{40}", revision):
            return revision
        found = self.heads.get((repo, revision))
        return found or hashlib.sha1(f"{repo}@{revision}".encode()).hexdigest()

    def find(self, repo: str, name: str) -> bytes | Shard | None:
        key = f"{repo}/{name}"
        if key in self.files:
            return self.files[key]
        path = HUB / repo / name
        if name.endswith(".safetensors"):
            header = HUB / repo / f"{name}.header.json"
            return Shard.from_header(header.read_bytes().rstrip(b"\n")) if header.exists() else None
        return path.read_bytes() if path.is_file() else None


def _handler(hub: Hub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def do_HEAD(self) -> None:  # noqa: N802 (http.server's name)
            """What the hub answers a HEAD with: the status and X-Repo-Commit, no body."""
            with hub.lock:
                hub.heads_asked.append(self.path)
            match = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", self.path)
            if not match:
                return self._plain(404)
            repo, revision, name = match.groups()
            code = hub.status.get(repo, 200)
            if code == 200 and repo in hub.tokens:
                auth = self.headers.get("Authorization")
                if auth != f"Bearer {hub.tokens[repo]}":
                    code = 403 if auth else 401
            if code == 200 and hub.find(repo, name) is None:
                code = 404
            self.send_response(code)
            self.send_header("X-Repo-Commit", hub.commit(repo, revision))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            wanted = self.headers.get("Range")
            with hub.lock:
                hub.requests.append((self.path, wanted))
            cdn = self.path.startswith("/cdn/")
            path = self.path.removeprefix("/cdn")
            match = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
            if not match:
                return self._plain(404)
            repo, revision, name = match.groups()
            if hub.redirect_shards and not cdn and name.endswith(".safetensors"):
                self.send_response(302)
                self.send_header("Location", f"/cdn{path}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            if repo in hub.status:
                return self._plain(hub.status[repo])
            if repo in hub.tokens:
                auth = self.headers.get("Authorization")
                if auth != f"Bearer {hub.tokens[repo]}":
                    return self._plain(403 if auth else 401)
            content = hub.find(repo, name)
            if content is None:
                return self._plain(404)
            body = Shard(content, 0) if isinstance(content, bytes) else content
            size = len(body)
            start, end = 0, size
            ranged = False
            if wanted and hub.honor_range:
                found = re.fullmatch(r"bytes=(\d+)-(\d*)", wanted)
                if not found or int(found.group(1)) >= size:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                start = int(found.group(1))
                end = min(size, int(found.group(2)) + 1) if found.group(2) else size
                ranged = True
            self.send_response(206 if ranged else 200)
            self.send_header("X-Repo-Commit", hub.commit(repo, revision))
            self.send_header("Content-Length", str(end - start))
            if ranged:
                self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
            self.end_headers()
            try:
                for piece in body.chunks(start, end):
                    self.wfile.write(piece)
                    with hub.lock:
                        hub.bytes_sent += len(piece)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
            return None

        def _plain(self, code: int) -> None:
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler


def serve(port: int = 0) -> tuple[Hub, ThreadingHTTPServer]:
    """A fake hub serving in a thread on ``port`` of 127.0.0.1 (0: any free port)."""
    state = Hub()
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(state))
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return state, server


@pytest.fixture(name="hub")
def hub_fixture() -> Iterator[Hub]:
    """The fake hub, serving on a free loopback port for one test."""
    from memplace.operator.sources import clear_checkpoint_cache

    state, server = serve()
    clear_checkpoint_cache()
    try:
        yield state
    finally:
        clear_checkpoint_cache()
        server.shutdown()
        server.server_close()


if __name__ == "__main__":  # python tests/hub_server.py PORT: serve until interrupted
    import sys
    import time

    hub, _ = serve(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    print(hub.url, flush=True)
    while True:
        time.sleep(3600)
