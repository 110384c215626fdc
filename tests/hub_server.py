"""A loopback stand-in for the few Hugging Face Hub endpoints a push and a load use.

`HubServer` runs a stdlib `ThreadingHTTPServer` on 127.0.0.1 (random port) in a thread and keeps
dataset repos in memory: commits (each a full file tree), branches, tags, settings and LFS
objects. Point huggingface_hub and datasets at it with `HF_ENDPOINT=server.endpoint` and
`HF_HUB_DISABLE_XET=1` (LFS uploads instead of Xet). Endpoints were found by running
huggingface_hub 2.4 / datasets 5.2 against it and logging what it did not know
(`server.unhandled`):

    POST /api/repos/create                       PUT  /api/datasets/{id}/settings
    POST /api/validate-yaml                      POST /api/datasets/{id}/preupload/{rev}
    POST /datasets/{id}.git/info/lfs/objects/batch,  PUT /lfs/{oid} (upload href)
    POST /api/datasets/{id}/commit/{rev}         POST /api/datasets/{id}/tag/{rev}
    GET  /api/datasets/{id}/refs                 GET  /api/datasets/{id}[/revision/{rev}]
    GET  /api/datasets/{id}/tree/{rev}[/{path}]  POST /api/datasets/{id}/paths-info/{rev}
    HEAD/GET /datasets/{id}/resolve/{rev}/{path} (Range supported)

Writes need `Authorization: Bearer <token>`; reads of private or gated repos too. Errors carry
the `X-Error-Code` header huggingface_hub maps to its exceptions (RepoNotFound,
RevisionNotFound, EntryNotFound, GatedRepo).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional
from urllib.parse import parse_qs, unquote, urlsplit

LFS_SUFFIXES = (".parquet", ".arrow", ".png", ".jpg", ".jpeg", ".webp", ".bin", ".safetensors")
LFS_MIN_SIZE = 10 * 1024 * 1024
GITATTRIBUTES = b"*.parquet filter=lfs diff=lfs merge=lfs -text\n*.png filter=lfs diff=lfs merge=lfs -text\n"


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass(frozen=True)
class Blob:
    """A file in a commit: regular (content kept) or LFS (content in the server's LFS store)."""

    size: int
    content: Optional[bytes] = None
    lfs_oid: Optional[str] = None

    @property
    def oid(self) -> str:
        """The git blob id (of the pointer file for LFS)."""
        if self.lfs_oid is None:
            return git_blob_sha1(self.content or b"")
        return git_blob_sha1(self.pointer())

    def pointer(self) -> bytes:
        return f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.lfs_oid}\nsize {self.size}\n".encode()

    @property
    def etag(self) -> str:
        return self.lfs_oid or self.oid


@dataclass
class Commit:
    sha: str
    parent: Optional[str]
    message: str
    files: dict[str, Blob]
    date: str


@dataclass
class Repo:
    repo_id: str
    private: bool
    gated: object = False
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    settings_calls: list[dict] = field(default_factory=list)


class HttpError(Exception):
    def __init__(self, status: int, message: str, code: Optional[str] = None, extra: Optional[dict] = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.extra = status, message, code, extra or {}


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class HubState:
    """The in-memory Hub: repos, LFS objects, the accepted token, and a request log."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.repos: dict[str, Repo] = {}
        self.lfs: dict[str, bytes] = {}
        self.lock = threading.RLock()
        self.log: list[tuple[str, str, int]] = []
        self.unhandled: list[tuple[str, str]] = []
        self.commit_calls = 0
        self.endpoint = ""

    # -- repos and revisions -------------------------------------------------------------
    def repo(self, repo_id: str) -> Repo:
        if repo_id not in self.repos:
            raise HttpError(404, f"Repository {repo_id} not found", "RepoNotFound")
        return self.repos[repo_id]

    def resolve(self, repo: Repo, revision: str) -> Commit:
        sha = repo.branches.get(revision) or repo.tags.get(revision)
        if sha is None and revision in repo.commits:
            sha = revision
        if sha is None:
            raise HttpError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return repo.commits[sha]

    def new_commit(self, repo: Repo, parent: Optional[Commit], files: dict[str, Blob], message: str) -> Commit:
        seed = f"{repo.repo_id}\n{parent.sha if parent else ''}\n{message}\n{time.time_ns()}\n{len(repo.commits)}"
        sha = hashlib.sha1(seed.encode()).hexdigest()
        commit = Commit(sha=sha, parent=parent.sha if parent else None, message=message, files=files, date=_now())
        repo.commits[sha] = commit
        return commit

    def create_repo(self, repo_id: str, private: bool) -> Repo:
        if repo_id in self.repos:
            # Like the Hub, a 409 still names the repo's url (create_repo(exist_ok=True) reads it).
            raise HttpError(409, "You already created this dataset repo", extra={"url": f"{self.endpoint}/datasets/{repo_id}"})
        repo = Repo(repo_id=repo_id, private=private)
        initial = self.new_commit(
            repo, None, {".gitattributes": Blob(size=len(GITATTRIBUTES), content=GITATTRIBUTES)}, "initial commit"
        )
        repo.branches["main"] = initial.sha
        self.repos[repo_id] = repo
        return repo

    def blob_content(self, blob: Blob) -> bytes:
        if blob.lfs_oid is None:
            return blob.content or b""
        return self.lfs[blob.lfs_oid]

    # -- entries (tree, paths-info) ------------------------------------------------------
    @staticmethod
    def file_entry(path: str, blob: Blob) -> dict:
        entry = {"type": "file", "oid": blob.oid, "size": blob.size, "path": path}
        if blob.lfs_oid is not None:
            entry["lfs"] = {"oid": blob.lfs_oid, "size": blob.size, "pointerSize": len(blob.pointer())}
        return entry

    @staticmethod
    def folder_entry(path: str, commit: Commit) -> dict:
        return {"type": "directory", "oid": hashlib.sha1(f"{commit.sha}:{path}".encode()).hexdigest(), "size": 0, "path": path}

    @staticmethod
    def folders(commit: Commit) -> set[str]:
        result = set()
        for path in commit.files:
            parts = path.split("/")[:-1]
            result.update("/".join(parts[: i + 1]) for i in range(len(parts)))
        return result


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - silence stderr logging
        return

    # -- plumbing ------------------------------------------------------------------------
    @property
    def state(self) -> HubState:
        return self.server.state

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes = b"", headers: Optional[dict] = None, *, head: bool = False) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head and body:
            self.wfile.write(body)
        self.state.log.append((self.command, self.path, status))

    def _json(self, status: int, payload, headers: Optional[dict] = None) -> None:
        self._send(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})})

    def _authorized(self) -> bool:
        return self.headers.get("Authorization", "") == f"Bearer {self.state.token}"

    def _require_auth(self) -> None:
        if not self._authorized():
            raise HttpError(401, "Invalid credentials in Authorization header")

    def _readable(self, repo: Repo) -> None:
        if repo.private and not self._authorized():
            raise HttpError(404, f"Repository {repo.repo_id} not found", "RepoNotFound")
        if repo.gated and not self._authorized():
            raise HttpError(401, f"Access to dataset {repo.repo_id} is restricted. You must be authenticated.", "GatedRepo")

    def _dispatch(self) -> None:
        self._raw_body = b""
        split = urlsplit(self.path)
        self.query = parse_qs(split.query)
        segments = [unquote(part) for part in split.path.split("/")[1:]]
        try:
            if self.command in ("POST", "PUT"):
                self._raw_body = self._body()
            with self.state.lock:
                handled = self._route(segments)
            if not handled:
                self.state.unhandled.append((self.command, self.path))
                raise HttpError(404, f"No route for {self.command} {split.path}")
        except HttpError as error:
            headers = {"X-Error-Code": error.code} if error.code else {}
            headers["X-Error-Message"] = error.message
            if self.command == "HEAD":
                self._send(error.status, b"", headers, head=True)
            else:
                self._json(error.status, {"error": error.message, **error.extra}, headers)

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _dispatch

    # -- routing -------------------------------------------------------------------------
    def _route(self, s: list[str]) -> bool:
        method = self.command
        if s[:3] == ["api", "repos", "create"] and method == "POST":
            return self._create_repo()
        if s[:2] == ["api", "agent-harnesses"]:
            raise HttpError(404, "not served by the test Hub (huggingface_hub ignores this)")
        if s[:2] == ["api", "validate-yaml"] and method == "POST":
            self._json(200, {"errors": [], "warnings": []})
            return True
        if len(s) == 2 and s[0] == "lfs" and method == "PUT":
            return self._lfs_upload(s[1])
        if len(s) >= 4 and s[0] == "api" and s[1] == "datasets":
            repo_id, rest = f"{s[2]}/{s[3]}", s[4:]
            return self._api_repo(method, repo_id, rest)
        if len(s) >= 3 and s[0] == "datasets":
            if s[2].endswith(".git") and s[3:] == ["info", "lfs", "objects", "batch"] and method == "POST":
                return self._lfs_batch(f"{s[1]}/{s[2][:-4]}")
            if len(s) >= 6 and s[3] == "resolve" and method in ("GET", "HEAD"):
                return self._resolve(f"{s[1]}/{s[2]}", s[4], "/".join(s[5:]))
        return False

    def _api_repo(self, method: str, repo_id: str, rest: list[str]) -> bool:
        if not rest and method == "GET":
            return self._info(repo_id, "main")
        if len(rest) == 2 and rest[0] == "revision" and method == "GET":
            return self._info(repo_id, rest[1])
        if rest == ["settings"] and method == "PUT":
            return self._settings(repo_id)
        if rest == ["refs"] and method == "GET":
            return self._refs(repo_id)
        if len(rest) == 2 and rest[0] == "preupload" and method == "POST":
            return self._preupload(repo_id, rest[1])
        if len(rest) == 2 and rest[0] == "commit" and method == "POST":
            return self._commit(repo_id, rest[1])
        if len(rest) == 2 and rest[0] == "tag" and method == "POST":
            return self._tag(repo_id, rest[1])
        if len(rest) >= 2 and rest[0] == "tree" and method == "GET":
            return self._tree(repo_id, rest[1], "/".join(rest[2:]))
        if len(rest) == 2 and rest[0] == "paths-info" and method == "POST":
            return self._paths_info(repo_id, rest[1])
        return False

    # -- writes --------------------------------------------------------------------------
    def _create_repo(self) -> bool:
        self._require_auth()
        payload = json.loads(self._raw_body or b"{}")
        if payload.get("type") != "dataset":
            raise HttpError(400, f"this test Hub only serves dataset repos, got type={payload.get('type')!r}")
        repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        self.state.create_repo(repo_id, private)
        self._json(200, {"url": f"{self.state.endpoint}/datasets/{repo_id}", "name": repo_id})
        return True

    def _settings(self, repo_id: str) -> bool:
        self._require_auth()
        repo = self.state.repo(repo_id)
        payload = json.loads(self._raw_body or b"{}")
        repo.settings_calls.append(payload)
        if "gated" in payload:
            if payload["gated"] not in ("auto", "manual", False):
                raise HttpError(400, f"invalid gated value {payload['gated']!r}")
            repo.gated = payload["gated"]
        if "visibility" in payload:
            repo.private = payload["visibility"] == "private"
        self._json(200, {})
        return True

    def _preupload(self, repo_id: str, revision: str) -> bool:
        self._require_auth()
        repo = self.state.repo(repo_id)
        commit = self.state.resolve(repo, revision)
        files = []
        for item in json.loads(self._raw_body)["files"]:
            path, size = item["path"], int(item["size"])
            mode = "lfs" if path.endswith(LFS_SUFFIXES) or size >= LFS_MIN_SIZE else "regular"
            existing = commit.files.get(path)
            remote_oid = None
            if existing is not None:
                remote_oid = existing.lfs_oid if mode == "lfs" else (existing.oid if existing.lfs_oid is None else None)
            files.append({"path": path, "uploadMode": mode, "shouldIgnore": False, "oid": remote_oid})
        self._json(200, {"files": files, "commitOid": commit.sha})
        return True

    def _lfs_batch(self, repo_id: str) -> bool:
        self._require_auth()
        self.state.repo(repo_id)
        payload = json.loads(self._raw_body)
        if payload.get("operation") != "upload":
            raise HttpError(400, "only LFS uploads are served")
        objects = []
        for item in payload["objects"]:
            entry = {"oid": item["oid"], "size": int(item["size"]), "authenticated": True}
            if item["oid"] not in self.state.lfs:
                entry["actions"] = {"upload": {"href": f"{self.state.endpoint}/lfs/{item['oid']}", "header": {}}}
            objects.append(entry)
        self._json(200, {"transfer": "basic", "objects": objects}, {"Content-Type": "application/vnd.git-lfs+json"})
        return True

    def _lfs_upload(self, oid: str) -> bool:
        data = self._raw_body
        if hashlib.sha256(data).hexdigest() != oid:
            raise HttpError(400, f"uploaded content does not hash to {oid}")
        self.state.lfs[oid] = data
        self._send(200)
        return True

    def _commit(self, repo_id: str, revision: str) -> bool:
        self._require_auth()
        repo = self.state.repo(repo_id)
        if revision not in repo.branches:
            raise HttpError(404, f"Invalid rev id: {revision} (commits go to a branch)", "RevisionNotFound")
        head = repo.commits[repo.branches[revision]]
        lines = [json.loads(line) for line in self._raw_body.splitlines() if line.strip()]
        header = next(line["value"] for line in lines if line["key"] == "header")
        parent = header.get("parentCommit")
        if parent is not None and parent != head.sha:
            raise HttpError(412, f"A commit has happened since. Please refresh and try again (parent {parent} != head {head.sha}).")
        files = dict(head.files)
        for line in lines:
            key, value = line["key"], line["value"]
            if key == "file":
                content = base64.b64decode(value["content"])
                files[value["path"]] = Blob(size=len(content), content=content)
            elif key == "lfsFile":
                oid = value["oid"]
                if oid not in self.state.lfs:
                    raise HttpError(400, f"LFS object {oid} of {value['path']} was never uploaded")
                files[value["path"]] = Blob(size=len(self.state.lfs[oid]), lfs_oid=oid)
            elif key == "deletedFile":
                if value["path"] not in files:
                    raise HttpError(404, f"A file with this name doesn't exist: {value['path']}", "EntryNotFound")
                del files[value["path"]]
            elif key == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                files = {path: blob for path, blob in files.items() if not path.startswith(prefix)}
            elif key != "header":
                raise HttpError(400, f"unknown commit operation {key!r}")
        commit = self.state.new_commit(repo, head, files, header.get("summary", ""))
        repo.branches[revision] = commit.sha
        self.state.commit_calls += 1
        self._json(
            200,
            {
                "success": True,
                "commitOid": commit.sha,
                "commitUrl": f"{self.state.endpoint}/datasets/{repo_id}/commit/{commit.sha}",
                "pullRequestUrl": None,
            },
        )
        return True

    def _tag(self, repo_id: str, revision: str) -> bool:
        self._require_auth()
        repo = self.state.repo(repo_id)
        commit = self.state.resolve(repo, revision)
        tag = json.loads(self._raw_body)["tag"]
        if tag in repo.tags or tag in repo.branches:
            raise HttpError(409, f"Tag {tag} already exists")
        repo.tags[tag] = commit.sha
        self._json(200, {})
        return True

    # -- reads ---------------------------------------------------------------------------
    def _info(self, repo_id: str, revision: str) -> bool:
        repo = self.state.repo(repo_id)
        self._readable(repo)
        commit = self.state.resolve(repo, revision)
        card = {}
        readme = commit.files.get("README.md")
        if readme is not None:
            text = self.state.blob_content(readme).decode()
            match = re.match(r"^---\n(.*?)\n---", text, re.S)
            if match:
                import yaml

                card = yaml.safe_load(match.group(1)) or {}
        self._json(
            200,
            {
                "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24],
                "id": repo_id,
                "author": repo_id.split("/")[0],
                "sha": commit.sha,
                "private": repo.private,
                "gated": repo.gated,
                "disabled": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "cardData": card,
                "createdAt": commit.date,
                "lastModified": commit.date,
                "siblings": [{"rfilename": path} for path in sorted(commit.files)],
            },
        )
        return True

    def _refs(self, repo_id: str) -> bool:
        repo = self.state.repo(repo_id)
        self._readable(repo)

        def refs(kind: str, items: dict) -> list[dict]:
            return [{"name": name, "ref": f"refs/{kind}/{name}", "targetCommit": sha} for name, sha in sorted(items.items())]

        self._json(200, {"branches": refs("heads", repo.branches), "tags": refs("tags", repo.tags), "converts": [], "pullRequests": []})
        return True

    def _tree(self, repo_id: str, revision: str, path: str) -> bool:
        repo = self.state.repo(repo_id)
        self._readable(repo)
        commit = self.state.resolve(repo, revision)
        recursive = self.query.get("recursive", ["false"])[0].lower() in ("1", "true")
        path = path.strip("/")
        folders = HubState.folders(commit)
        if path and path not in folders:
            raise HttpError(404, f"{path} does not exist on {revision}", "EntryNotFound")
        prefix = path + "/" if path else ""
        entries = []
        for folder in sorted(folders):
            if folder.startswith(prefix) and (recursive or "/" not in folder[len(prefix):]):
                entries.append(HubState.folder_entry(folder, commit))
        for file_path, blob in sorted(commit.files.items()):
            if file_path.startswith(prefix) and (recursive or "/" not in file_path[len(prefix):]):
                entries.append(HubState.file_entry(file_path, blob))
        self._json(200, entries)
        return True

    def _paths_info(self, repo_id: str, revision: str) -> bool:
        repo = self.state.repo(repo_id)
        self._readable(repo)
        commit = self.state.resolve(repo, revision)
        content_type = self.headers.get("Content-Type", "")
        if "json" in content_type:
            paths = json.loads(self._raw_body).get("paths", [])
        else:
            paths = parse_qs(self._raw_body.decode()).get("paths", [])
        folders = HubState.folders(commit)
        entries = []
        for path in paths:
            path = path.strip("/")
            if path in commit.files:
                entries.append(HubState.file_entry(path, commit.files[path]))
            elif path in folders:
                entries.append(HubState.folder_entry(path, commit))
        self._json(200, entries)
        return True

    def _resolve(self, repo_id: str, revision: str, path: str) -> bool:
        repo = self.state.repo(repo_id)
        self._readable(repo)
        commit = self.state.resolve(repo, revision)
        blob = commit.files.get(path)
        if blob is None:
            raise HttpError(404, f"Entry not found: {path}", "EntryNotFound")
        data = self.state.blob_content(blob)
        headers = {
            "X-Repo-Commit": commit.sha,
            "ETag": f'"{blob.etag}"',
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        if blob.lfs_oid is not None:
            headers["X-Linked-Etag"] = f'"{blob.lfs_oid}"'
            headers["X-Linked-Size"] = str(blob.size)
        status = 200
        match = re.match(r"bytes=(\d*)-(\d*)$", self.headers.get("Range", ""))
        if match and (match.group(1) or match.group(2)):
            if match.group(1):
                start = int(match.group(1))
                end = int(match.group(2)) if match.group(2) else len(data) - 1
            else:
                start, end = max(len(data) - int(match.group(2)), 0), len(data) - 1
            end = min(end, len(data) - 1)
            if start >= len(data):
                self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"}, head=self.command == "HEAD")
                return True
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            data, status = data[start : end + 1], 206
        self._send(status, data, headers, head=self.command == "HEAD")
        return True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: HubState


class HubServer:
    """Start with `with HubServer(token) as hub:`; `hub.endpoint` is the HF_ENDPOINT to use."""

    def __init__(self, token: str = "hf_test_token") -> None:
        self.state = HubState(token)
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None

    @property
    def endpoint(self) -> str:
        return self.state.endpoint

    def start(self) -> "HubServer":
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.state = self.state
        self.state.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="hub-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "HubServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- inspection helpers for tests ----------------------------------------------------
    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        with self.state.lock:
            repo = self.state.repo(repo_id)
            commit = self.state.resolve(repo, revision)
            return {path: self.state.blob_content(blob) for path, blob in commit.files.items()}

    def repo(self, repo_id: str) -> Repo:
        return self.state.repo(repo_id)
