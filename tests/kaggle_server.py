"""A fake Kaggle API on http://localhost:7777 for tests: the real `kaggle` client talks to it.

kaggle 2.x (through kagglesdk) sends every API call as
    POST /api/v1/<service>/<Method>   JSON body (camelCase fields), auth: Basic user:key or Bearer token
and with KAGGLE_API_ENVIRONMENT=TEST the base URL is http://localhost:7777.

Routes live in one table, `ROUTES`; add one with the `route` decorator:

    @route("POST", "/api/v1/competitions.CompetitionApiService/CreateSubmission")
    def create_submission(server, req):
        return Reply.json({"message": "ok", "ref": 1})

Per test, `server.fail("DownloadDataFiles", 403)` makes that route (named by the last path
segment) answer an error instead; `server.competitions[slug] = zip_bytes` serves a competition;
`server.requests` records every (method, path) seen.

Submissions (`competition_submit`, `competition_submissions`): StartSubmissionUpload -> PUT
/upload/<token> (route name "Upload") -> CreateSubmission, and ListSubmissions.
`server.submissions[slug]` holds them, `server.received[ref]` the bytes uploaded for each,
`server.score(ref, "0.81")` marks one scored, `server.submit_message = "..."` makes
CreateSubmission answer that message without a ref (the client's way of reporting some failures).

Fixtures (imported into conftest.py): `kaggle_creds` isolates HOME / KAGGLE_* and writes a
fake kaggle.json; `kaggle_server` additionally runs the server. Tests using them are marked
`@pytest.mark.xdist_group("kaggle")` because the port is fixed (kagglesdk's TEST endpoint). As
`--dist loadgroup` is broken with pytest>=9.2 + xdist 3.8 (xdist sets `item._nodeid`, which pytest
no longer reads), `kaggle_creds` also holds a machine-wide file lock on the port for the test's
duration, so tests on different workers (or runs) take turns instead of colliding.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

PORT = 7777
USERNAME = "kituser"
KEY = "0123456789abcdef0123456789abcdef"
TOKEN = "KGAT_kit_test_token"

# Kaggle's real answers, roughly.
ERROR_MESSAGES = {
    400: "Bad request",
    401: "Unauthenticated",
    403: "You must accept this competition's rules before you'll be able to download files.",
    404: "Competition not found",
    429: "Too many requests",
    500: "Internal server error",
}


@dataclass
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    match: dict[str, str] = field(default_factory=dict)

    def json(self) -> dict:
        return json.loads(self.body or b"{}")


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, data: dict, status: int = 200) -> Reply:
        return cls(status, json.dumps(data).encode(), {"Content-Type": "application/json"})

    @classmethod
    def error(cls, status: int, message: str | None = None) -> Reply:
        # kagglesdk raises HTTPError(message) for a JSON body with "code" >= 400
        return cls.json({"code": status, "message": message or ERROR_MESSAGES.get(status, "error")}, status)

    @classmethod
    def redirect(cls, location: str) -> Reply:
        return cls(302, b"", {"Location": location})


Handler = Callable[["FakeKaggle", Request], Reply]
ROUTES: list[tuple[str, re.Pattern, str, bool, Handler]] = []  # method, path regex, name, needs auth, handler


def route(method: str, pattern: str, *, auth: bool = True, name: str | None = None) -> Callable[[Handler], Handler]:
    """Register a handler; `pattern` is a full-path regex, named groups land in `req.match`.

    The route's name (for `server.fail`) is `name`, or else the pattern's last path segment,
    e.g. DownloadDataFiles.
    """

    def add(fn: Handler) -> Handler:
        ROUTES.append((method, re.compile(pattern + r"\Z"), name or pattern.rstrip("/").rsplit("/", 1)[-1], auth, fn))
        return fn

    return add


class FakeKaggle:
    """State of the fake server; handlers read and write it."""

    def __init__(self, port: int = PORT):
        self.port = port
        self.base_url = f"http://localhost:{port}"
        self.username, self.key, self.token = USERNAME, KEY, TOKEN
        self.competitions: dict[str, bytes] = {}
        self.failures: dict[str, Reply] = {}
        self.requests: list[tuple[str, str]] = []
        # submissions: per competition, newest last, as ListSubmissions sends them (camelCase)
        self.submissions: dict[str, list[dict]] = {}
        self.received: dict[int, bytes] = {}  # submission ref -> the file bytes uploaded for it
        self.uploads: dict[str, dict] = {}  # upload token -> {competition, fileName, contentLength, data}
        self.submit_message: str | None = None  # set: CreateSubmission answers this, with no ref
        self._httpd: ThreadingHTTPServer | None = None

    # -- per-test configuration
    def add_competition(self, slug: str, archive: bytes) -> None:
        self.competitions[slug] = archive

    def fail(self, name: str, status: int, message: str | None = None) -> None:
        """Make the route named `name` (e.g. "DownloadDataFiles") answer `status` from now on."""
        self.failures[name] = Reply.error(status, message)

    def add_submission(self, slug: str, file_name: str, description: str = "", **fields) -> dict:
        """A submission on the server (as if made now, e.g. on the website); returns its record."""
        subs = self.submissions.setdefault(slug, [])
        sub = {
            "ref": 1000 + sum(map(len, self.submissions.values())),
            "date": datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z",
            "description": description,
            "fileName": file_name,
            "status": "PENDING",
            "submittedBy": self.username,
            **fields,
        }
        subs.append(sub)
        return sub

    def score(self, ref: int, public: str | None, private: str | None = None, *, error: str | None = None) -> None:
        """Kaggle finished scoring submission `ref`: COMPLETE with these scores, or ERROR with `error`."""
        sub = next(s for subs in self.submissions.values() for s in subs if s["ref"] == ref)
        sub.update(status="ERROR" if error else "COMPLETE", publicScore=public, privateScore=private)
        if error:
            sub["errorDescription"] = error

    # -- plumbing
    def authorized(self, req: Request) -> bool:
        auth = req.headers.get("authorization", "")
        if auth.startswith("Bearer "):
            return auth[len("Bearer ") :] == self.token
        if auth.startswith("Basic "):
            try:
                user, _, key = base64.b64decode(auth[len("Basic ") :]).decode().partition(":")
            except ValueError:
                return False
            return (user, key) == (self.username, self.key)
        return False

    def dispatch(self, req: Request) -> Reply:
        self.requests.append((req.method, req.path))
        for method, regex, name, needs_auth, fn in ROUTES:
            m = regex.match(req.path)
            if method != req.method or not m:
                continue
            if name in self.failures:
                return self.failures[name]
            if needs_auth and not self.authorized(req):
                return Reply.error(401)
            req.match = m.groupdict()
            return fn(self, req)
        return Reply.error(404, f"no fake route for {req.method} {req.path}")

    def start(self) -> FakeKaggle:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                path, _, query = self.path.partition("?")
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                req = Request(self.command, path, query, {k.lower(): v for k, v in self.headers.items()}, body)
                try:
                    reply = server.dispatch(req)
                except Exception as e:  # a bug in a handler: answer 500, keep serving
                    reply = Reply.error(500, f"fake server handler crashed: {e!r}")
                self.send_response(reply.status)
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(reply.body)

            do_GET = do_POST = do_PUT = do_HEAD = _serve

            def log_message(self, *args) -> None:  # keep test output clean
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._httpd = ThreadingHTTPServer(("localhost", self.port), _Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None


# --------------------------------------------------------------------------- routes


@route("POST", r"/api/v1/security\.OAuthService/IntrospectToken", auth=False)
def introspect_token(server: FakeKaggle, req: Request) -> Reply:
    """KAGGLE_API_TOKEN / ~/.kaggle/access_token are checked here at authenticate()."""
    if req.json().get("token") == server.token:
        return Reply.json({"active": True, "username": server.username})
    return Reply.json({"active": False})


@route("POST", r"/api/v1/competitions\.CompetitionApiService/DownloadDataFiles")
def download_data_files(server: FakeKaggle, req: Request) -> Reply:
    slug = req.json().get("competitionName", "")
    if slug not in server.competitions:
        return Reply.error(404)
    # Real Kaggle redirects to a signed storage URL; the client names the file after its extension.
    return Reply.redirect(f"{server.base_url}/storage/competitions/{slug}.zip")


@route("GET", r"/storage/competitions/(?P<slug>[^/]+)\.zip", auth=False)
def storage_archive(server: FakeKaggle, req: Request) -> Reply:
    data = server.competitions.get(req.match["slug"])
    if data is None:
        return Reply.error(404)
    return Reply(200, data, {"Content-Type": "application/zip", "Last-Modified": formatdate(usegmt=True)})


# Submitting: StartSubmissionUpload gives a (signed, on real Kaggle) upload URL, the client PUTs the
# file there without auth, then CreateSubmission turns the upload token into a submission.


@route("POST", r"/api/v1/competitions\.CompetitionApiService/StartSubmissionUpload")
def start_submission_upload(server: FakeKaggle, req: Request) -> Reply:
    body = req.json()
    slug = body.get("competitionName", "")
    if slug not in server.competitions:
        return Reply.error(404)
    token = f"blob-{len(server.uploads) + 1}"
    server.uploads[token] = {
        "competition": slug,
        "fileName": body.get("fileName"),
        "contentLength": int(body.get("contentLength") or 0),
        "data": None,
    }
    return Reply.json({"token": token, "createUrl": f"{server.base_url}/upload/{token}"})


@route("PUT", r"/upload/(?P<token>[^/]+)", auth=False, name="Upload")
def upload(server: FakeKaggle, req: Request) -> Reply:
    upload = server.uploads.get(req.match["token"])
    if upload is None:
        return Reply.error(404)
    if len(req.body) != upload["contentLength"]:
        return Reply.error(400, f"got {len(req.body)} bytes, announced {upload['contentLength']}")
    upload["data"] = req.body
    return Reply.json({})


@route("POST", r"/api/v1/competitions\.CompetitionApiService/CreateSubmission")
def create_submission(server: FakeKaggle, req: Request) -> Reply:
    body = req.json()
    slug = body.get("competitionName", "")
    upload = server.uploads.get(body.get("blobFileTokens", ""))
    if slug not in server.competitions:
        return Reply.error(404)
    if upload is None or upload["data"] is None or upload["competition"] != slug:
        return Reply.error(400, "Invalid blob file token")
    if server.submit_message is not None:
        return Reply.json({"message": server.submit_message})
    sub = server.add_submission(
        slug, upload["fileName"], body.get("submissionDescription", ""), totalBytes=len(upload["data"])
    )
    server.received[sub["ref"]] = upload["data"]
    return Reply.json({"message": f"Successfully submitted to {slug}", "ref": sub["ref"]})


@route("POST", r"/api/v1/competitions\.CompetitionApiService/ListSubmissions")
def list_submissions(server: FakeKaggle, req: Request) -> Reply:
    body = req.json()
    slug = body.get("competitionName", "")
    if slug not in server.competitions:
        return Reply.error(404)
    newest_first = server.submissions.get(slug, [])[::-1]
    size = int(body.get("pageSize") or 20)
    start = (int(body.get("page") or 1) - 1) * size
    return Reply.json({"submissions": newest_first[start : start + size], "nextPageToken": ""})


# --------------------------------------------------------------------------- fixtures


@dataclass
class KaggleCreds:
    home: Path
    config_dir: Path
    username: str = USERNAME
    key: str = KEY
    token: str = TOKEN

    def write_kaggle_json(self, username: str = USERNAME, key: str = KEY) -> Path:
        path = self.config_dir / "kaggle.json"
        path.write_text(json.dumps({"username": username, "key": key}))
        path.chmod(0o600)
        return path

    def remove(self) -> None:
        """No credentials anywhere."""
        (self.config_dir / "kaggle.json").unlink(missing_ok=True)


@contextlib.contextmanager
def port_lock(port: int = PORT) -> Iterator[None]:
    """Hold an exclusive lock on `port` across processes (xdist workers, parallel runs)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: rely on xdist_group alone
        yield
        return
    with open(Path(tempfile.gettempdir()) / f"kit-fake-kaggle-{port}.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@pytest.fixture
def kaggle_creds(tmp_path, monkeypatch) -> Iterator[KaggleCreds]:
    """Fake credentials in a private HOME; the user's real ~/.kaggle and KAGGLE_* are never seen.

    Holds the port lock: while it lives, no other test runs (or expects nothing on) :7777.
    """
    with port_lock():
        yield _kaggle_creds(tmp_path, monkeypatch)


def _kaggle_creds(tmp_path, monkeypatch) -> KaggleCreds:
    home = tmp_path / "home"
    config_dir = home / ".kaggle"
    config_dir.mkdir(parents=True)
    for var in list(os.environ):
        if var.startswith("KAGGLE_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(config_dir))
    monkeypatch.setenv("KAGGLE_API_ENVIRONMENT", "TEST")
    creds = KaggleCreds(home, config_dir)
    creds.write_kaggle_json()
    # `import kaggle` authenticates at import (a token would be checked against api.kaggle.com):
    # import it now, under these key-file credentials, so no test ever reaches the real Kaggle.
    with contextlib.redirect_stdout(io.StringIO()):
        import kaggle  # noqa: F401
    return creds


@pytest.fixture
def kaggle_server(kaggle_creds) -> Iterator[FakeKaggle]:
    """The fake Kaggle API running on localhost:7777 (with `kaggle_creds` set up)."""
    server = FakeKaggle().start()
    try:
        yield server
    finally:
        server.stop()
