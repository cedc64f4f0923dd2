"""A Hugging Face Hub-shaped model repo served over real HTTP on 127.0.0.1, with fault modes.

It answers `HEAD` and `GET /{owner}/{repo}/resolve/{revision}/{path}` the way
`huggingface_hub.hf_hub_download` needs: `X-Repo-Commit`, `ETag` (the sha256 of the file, as the
Hub gives for LFS files), `Content-Length`, `Accept-Ranges` and 206 answers to `Range`
requests (the client resumes cut downloads with them), and 404s carrying `X-Error-Code`.

Faults (set `server.fault`, optionally limited to files ending in `server.fault_only`):
  "404"        every file is missing (EntryNotFound)
  "500"        every request gets an Internal Server Error
  "slow"       every request stalls before answering (past any sane timeout)
  "slow_body"  HEAD answers, GET sends its headers and then stalls
  "corrupt"    GET bodies have a block of bytes overwritten; headers describe the good file
  "wrong_sha"  the repo's .safetensors is well-formed but not the file its sidecar describes
  "truncate"   GET bodies stop halfway and the connection is closed, every time
  "huge"       HEAD and GET advertise HUGE_BYTES (X-Linked-Size and Content-Length), as a repo
               holding a 10 GB file would; a GET then sends the real bytes and hangs up
  "trickle"    GET bodies are sent `trickle_chunk` bytes at a time, `trickle_interval` s apart
  "bloat"      HEAD describes the real file, but GET sends no Content-Length and streams
               BLOAT_BYTES of junk after it (a server lying about what it sends)
and `stop()` takes the server down (connections refused) until `start()`.

Bookkeeping for the tests: `requests` lists (method, path) of every request; `max_bodies` is the
most GET bodies ever being sent at once; `aborted` counts bodies the client hung up on midway.
"""
from __future__ import annotations

import hashlib
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

FAULTS = ("404", "500", "slow", "slow_body", "corrupt", "wrong_sha", "truncate", "huge", "trickle", "bloat")
STALL_S = 30.0  # how long "slow" modes stall; far past the loader's timeouts, cut short by stop()
HUGE_BYTES = 10_000_000_000  # what "huge" advertises: 10 GB
BLOAT_BYTES = 50_000_000  # what "bloat" sends beyond the file, if the client keeps reading


class HubServer:
    def __init__(self, repo_id: str = "srgan-test/tiny-sr", commit: str | None = None) -> None:
        self.repo_id = repo_id
        self.commit = commit or hashlib.sha1(repo_id.encode()).hexdigest()
        self.files: dict[str, bytes] = {}
        self.fault: str | None = None
        self.fault_only: str | None = None  # a filename suffix, e.g. ".safetensors"
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request answered
        self.trickle_chunk, self.trickle_interval = 64, 0.02  # "trickle": 3.2 kB/s
        self.bodies = 0  # GET bodies being sent now
        self.max_bodies = 0  # the most ever sent at once
        self.aborted = 0  # bodies the client hung up on before the end
        self._count = threading.Lock()
        self._stop = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- repo content ------------------------------------------------------------------------
    def add_file(self, name: str, data: bytes) -> None:
        self.files[name] = data

    def add_weights(self, stem_path: Path, as_name: str | None = None) -> None:
        """Serve NAME.safetensors and NAME.json from a local weights pair."""
        name = as_name or stem_path.name
        for suffix in (".safetensors", ".json"):
            self.add_file(name + suffix, stem_path.with_name(stem_path.name + suffix).read_bytes())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- life cycle ----------------------------------------------------------------------------
    def start(self) -> "HubServer":
        """Start serving (again, on the same port after a stop())."""
        handler = type("Handler", (_Handler,), {"hub": self})
        self._stop.clear()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Take the server down: stalled answers end, new connections are refused."""
        self._stop.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> "HubServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what a request gets ---------------------------------------------------------------------
    def faulty(self, filename: str) -> str | None:
        if self.fault and (self.fault_only is None or filename.endswith(self.fault_only)):
            return self.fault
        return None

    def stall(self, fault: str) -> None:
        """Hold an answer until the fault is cleared, the server stops, or STALL_S pass."""
        deadline = time.monotonic() + STALL_S
        while self.fault == fault and time.monotonic() < deadline and not self._stop.wait(0.05):
            pass

    def served_bytes(self, filename: str) -> bytes:
        """The bytes the repo holds for a file: under "wrong_sha", not those the sidecar describes."""
        data = self.files[filename]
        if self.faulty(filename) == "wrong_sha" and filename.endswith(".safetensors"):
            data = data[:-1] + bytes([data[-1] ^ 0x01])  # still well-formed: the last weight changes
        return data


_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<path>.+)$")


class _Handler(BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def _answer(self, send_body: bool) -> None:
        hub = self.hub
        hub.requests.append((self.command, self.path))
        m = _RESOLVE.match(self.path.split("?")[0])
        filename = m and _unquote(m["path"])
        fault = hub.faulty(filename) if filename else None
        if fault == "slow":
            hub.stall(fault)
            return self._drop()
        if fault == "500":
            return self._error(500, None, "Internal Server Error")
        if not m or m["repo"] != hub.repo_id:
            return self._error(404, "RepoNotFound", "Repository not found")
        if m["revision"] not in ("main", hub.commit):
            return self._error(404, "RevisionNotFound", "Invalid rev id")
        if fault == "404" or filename not in hub.files:
            return self._error(404, "EntryNotFound", "Entry not found")

        data = hub.served_bytes(filename)
        etag = hashlib.sha256(data).hexdigest()
        start = _range_start(self.headers.get("Range"), len(data))
        if start is None:
            return self._error(416, None, "Range Not Satisfiable")
        self.send_response(206 if start else 200)
        self.send_header("Content-Type", "application/octet-stream")
        if fault == "huge":
            self.send_header("X-Linked-Size", str(HUGE_BYTES))
        if not (fault == "bloat" and send_body):
            self.send_header("Content-Length", str(HUGE_BYTES if fault == "huge" else len(data) - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", f'"{etag}"')
        self.send_header("X-Repo-Commit", hub.commit)
        self.end_headers()
        if not send_body:
            return
        body = data[start:]
        if fault == "slow_body":
            self.wfile.flush()
            hub.stall(fault)
            return self._drop()
        if fault == "corrupt" and data:
            lo = len(data) // 3
            block = bytes([0xFF]) * min(64, len(data) - lo)
            body = (data[:lo] + block + data[lo + len(block):])[start:]
        if fault == "truncate":
            body = data[start: max(start, len(data) // 2)]  # the cut is always at the same place
            self._write(body)
            return self._drop()
        if fault == "huge":
            self._write(body)
            return self._drop()
        if fault == "bloat":  # the body ends when the connection does
            self.close_connection = True
            self._send_body(body + bytes(BLOAT_BYTES), trickle=False, piece=1 << 16)
            return self._drop()
        self._send_body(body, trickle=fault == "trickle")

    def _send_body(self, body: bytes, trickle: bool, piece: int | None = None) -> None:
        """Send a GET body (slowly under "trickle"), counting bodies in flight and abandoned ones."""
        hub = self.hub
        with hub._count:
            hub.bodies += 1
            hub.max_bodies = max(hub.max_bodies, hub.bodies)
        try:
            step = hub.trickle_chunk if trickle else piece or max(1, len(body))
            for n, i in enumerate(range(0, len(body), step)):
                if n and trickle and hub._stop.wait(hub.trickle_interval):
                    return  # the server is stopping
                if not self._write(body[i:i + step]):
                    with hub._count:
                        hub.aborted += 1
                    return
        finally:
            with hub._count:
                hub.bodies -= 1

    def _error(self, status: int, code: str | None, message: str) -> None:
        body = f'{{"error": "{message}"}}'.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Repo-Commit", self.hub.commit)
        if code:
            self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", message)
        self.end_headers()
        if self.command != "HEAD":
            self._write(body)

    def _write(self, body: bytes) -> bool:
        """Send bytes; False when the client has gone (nothing more to tell it)."""
        try:
            self.wfile.write(body)
            self.wfile.flush()
            return True
        except OSError:
            self.close_connection = True
            return False

    def _drop(self) -> None:
        """Cut the connection without finishing the answer."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _range_start(header: str | None, size: int) -> int | None:
    """Start offset of a `bytes=N-` range (the only form the client sends); 0 without one."""
    if not header:
        return 0
    m = re.fullmatch(r"bytes=(\d+)-(\d*)", header.strip())
    if not m or int(m[1]) > size:
        return None
    return int(m[1])


def _unquote(path: str) -> str:
    from urllib.parse import unquote

    return unquote(path)
