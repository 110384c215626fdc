"""Push a release folder to a Hub dataset repo: one commit, one immutable tag per release.

A reader never sees half a release: every file goes in a single commit (LFS files are
pre-uploaded first), the commit is based on the branch head we inspected (`parent_commit`),
and the release's tag is created only afterwards. Tags are never moved: pushing a release
whose tag already exists elsewhere is refused. Files of the previous release that the new one
does not have (e.g. shards of another sharding) are deleted in the same commit, so `data_files`
globs never mix releases; the old tag still loads the old files. Files the release does not own
(`.gitattributes`, a LICENSE added on the Hub) are left alone.

The token comes only from `huggingface_hub` (`HF_TOKEN` or `hf auth login`), or the caller;
it is never printed, logged or written to the folder.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path
from typing import Optional

from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, constants, get_token
from huggingface_hub.errors import HfHubHTTPError

from recombinet_hf.release import RELEASE_INFO_FILE, read_release_info, sha256_file

from .card import render_card
from .checks import check_release
from .schema import check_card
from .terms import source_terms

logger = logging.getLogger(__name__)

REPO_TYPE = "dataset"
BRANCH = "main"
#: What a release consists of (paths relative to the folder); anything else stays local.
RELEASE_GLOBS: tuple[str, ...] = ("README.md", RELEASE_INFO_FILE, "outcomes.jsonl", "data/**/*.parquet", "images/*.png")
#: Remote paths a release owns: those of a previous release that this one lacks are deleted.
#: Anything else in the repo (.gitattributes, a LICENSE added on the Hub, ...) is left alone.
MANAGED_FILES: tuple[str, ...] = ("README.md", RELEASE_INFO_FILE, "outcomes.jsonl")
MANAGED_FOLDERS: tuple[str, ...] = ("data/", "images/")
_TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$")


class PushError(RuntimeError):
    """A push was refused (no token, moved tag, offline mode) before anything changed on the Hub."""


def release_files(folder: str | os.PathLike) -> list[str]:
    """The files of the release in `folder` that a push uploads (POSIX paths, sorted)."""
    folder = Path(folder)
    found = {path.relative_to(folder).as_posix() for pattern in RELEASE_GLOBS for path in folder.glob(pattern) if path.is_file()}
    return sorted(found)


def git_blob_sha1(path: str | os.PathLike) -> str:
    """The git blob id of a file (what the Hub reports as `oid` of a non-LFS file)."""
    data = Path(path).read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _resolve_token(token: Optional[str]) -> str:
    token = token or get_token()
    if not token:
        raise PushError(
            "No Hugging Face token found: set the HF_TOKEN environment variable or run `hf auth login` "
            "(a token with write access to the target namespace)."
        )
    return token


def _check_tag(tag: Optional[str]) -> str:
    if not tag:
        raise PushError(
            f"No release tag: {RELEASE_INFO_FILE} has no `release_version` and no `tag` was given "
            "(`recombinet push DIR --revision-tag v1.0`)."
        )
    if not _TAG_RE.match(tag):
        raise PushError(f"`tag` must match {_TAG_RE.pattern} (letters, digits, '.', '_', '+', '-'), got {tag!r}.")
    return tag


def _managed(path: str) -> bool:
    return path in MANAGED_FILES or path.startswith(MANAGED_FOLDERS)


def _same_files(folder: Path, local: list[str], remote: dict) -> bool:
    """Whether the remote tree (path -> RepoFile) holds exactly the local release files."""
    remote_paths = {path for path in remote if _managed(path)}
    if remote_paths != set(local):
        return False
    for path in local:
        entry = remote[path]
        if entry.lfs is not None:
            if entry.lfs.sha256 != sha256_file(folder / path):
                return False
        elif entry.blob_id != git_blob_sha1(folder / path):
            return False
    return True


def _remote_files(api: HfApi, repo_id: str, revision: Optional[str]) -> dict:
    if revision is None:
        return {}
    entries = api.list_repo_tree(repo_id, repo_type=REPO_TYPE, revision=revision, recursive=True)
    return {entry.path: entry for entry in entries if hasattr(entry, "blob_id")}


def push_to_hub(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    token: Optional[str] = None,
    tag: Optional[str] = None,
    commit_message: Optional[str] = None,
    render: bool = True,
) -> str:
    """Push the release in `folder` to the Hub dataset repo `repo_id` and tag it.

    Args:
        folder: a built release folder.
        repo_id: `"org/name"`; created if missing (`private` applies only then).
        private: create the repo private.
        token: a Hub token; default: `huggingface_hub.get_token()` (`HF_TOKEN`, `hf auth login`).
        tag: the release tag; default: `recombinet.json` `release_version`. An existing tag is never
            moved: if it already holds exactly this release nothing is pushed (its sha is returned),
            otherwise the push is refused.
        commit_message: default `"RecombiNet release <tag>"`.
        render: re-render the card (with `repo_id` in its examples) before pushing.

    Returns the sha of the commit the tag points at. Loads of that version use `revision=<tag>`.

    Raises:
        ReleaseCheckError: a shard fails its checks (row groups too big for the viewer, sha256).
        CardCheckError: the card's metadata is not what the Hub accepts.
        PushError: no token, offline mode, bad tag, or the tag exists and points elsewhere.
    """
    folder = Path(folder)
    if constants.is_offline_mode():
        raise PushError("HF_HUB_OFFLINE is set: pushing needs the Hub. Unset HF_HUB_OFFLINE (or set it to 0).")
    info = read_release_info(folder)
    tag = _check_tag(tag or info.get("release_version"))
    token = _resolve_token(token)
    check_release(folder)
    if render:
        render_card(folder, repo_id=repo_id)
    check_card(folder)
    local = release_files(folder)
    api = HfApi(token=token)

    api.create_repo(repo_id, repo_type=REPO_TYPE, private=private, exist_ok=True)
    terms = source_terms(info)
    if terms.gated:
        api.update_repo_settings(repo_id, repo_type=REPO_TYPE, gated=terms.gated)
    refs = api.list_repo_refs(repo_id, repo_type=REPO_TYPE)
    head = next((ref.target_commit for ref in refs.branches if ref.name == BRANCH), None)
    tagged = next((ref.target_commit for ref in refs.tags if ref.name == tag), None)
    if tagged is not None:
        if _same_files(folder, local, _remote_files(api, repo_id, tagged)):
            logger.info("%s: release %s is already pushed as %s; nothing to do.", repo_id, tag, tagged)
            return tagged
        raise PushError(
            f"Tag {tag!r} already exists on {repo_id} and points to commit {tagged[:12]}, which holds another "
            "release; tags are never moved. Bump `release_version` in recombinet.json (or pass another tag)."
        )
    remote = _remote_files(api, repo_id, head)

    operations: list = [CommitOperationAdd(path_in_repo=path, path_or_fileobj=str(folder / path)) for path in local]
    stale = sorted(path for path in remote if _managed(path) and path not in local)
    operations += [CommitOperationDelete(path_in_repo=path) for path in stale]
    commit = api.create_commit(
        repo_id,
        operations,
        commit_message=commit_message or f"RecombiNet release {tag}",
        commit_description=f"{len(local)} file(s) of release {tag}; {len(stale)} file(s) of the previous release removed.",
        repo_type=REPO_TYPE,
        revision=BRANCH,
        parent_commit=head,
    )
    sha = commit.oid
    try:
        api.create_tag(repo_id, tag=tag, revision=sha, repo_type=REPO_TYPE, tag_message=f"RecombiNet release {tag}")
    except HfHubHTTPError as error:
        if error.response is None or error.response.status_code != 409:
            raise
        refs = api.list_repo_refs(repo_id, repo_type=REPO_TYPE)
        now = next((ref.target_commit for ref in refs.tags if ref.name == tag), None)
        if now != sha:
            raise PushError(
                f"Tag {tag!r} was created on {repo_id} by someone else while pushing (it points to {str(now)[:12]}); "
                f"commit {sha[:12]} is on {BRANCH!r} but untagged."
            ) from error
    logger.info("Pushed %d file(s) of release %s to %s at commit %s.", len(local), tag, repo_id, sha)
    return sha
