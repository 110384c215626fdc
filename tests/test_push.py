"""Pushing releases to a loopback Hub (`hub_server.py`) and loading every version back.

The push runs in-process with huggingface_hub's constants pointed at the loopback server
(`ENDPOINT`, `HF_HUB_OFFLINE=False`, `HF_HUB_DISABLE_XET=True`; `datasets` stays offline). The
load-back runs in a subprocess with `HF_ENDPOINT`/`HF_HUB_OFFLINE=0` in its environment, since
`datasets` and huggingface_hub read those when imported.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hub_server import HubServer
from recombinet_card import PushError, ReleaseCheckError, push_to_hub, render_card
from recombinet_card import checks as checks_module
from recombinet_card.cli import main as card_main
from recombinet_card.push import release_files
from recombinet_hf.features import DATA_CONFIGS
from synthetic import make_release

TOKEN = "hf_LoopbackOnlyTestToken0123456789abcdef"
REPO = "recombinet/sample-release"

LOAD_BACK = r"""
import json, sys
import numpy as np
import datasets, recombinet_hf
from huggingface_hub import DatasetCard, hf_hub_download
from huggingface_hub.errors import GatedRepoError

repo_id, plan = sys.argv[1], json.loads(sys.argv[2])
checked = []
for revision, folder, configs, gated in plan:
    for config in configs:
        for split in ("train", "validation"):
            hub = datasets.load_dataset(repo_id, config, split=split, revision=revision)
            local = datasets.load_dataset(folder, config, split=split)
            where = f"{revision}/{config}/{split}"
            assert hub.features == local.features, (where, hub.features, local.features)
            assert hub.data.table.combine_chunks().equals(local.data.table.combine_chunks()), where
            checked.append(where)
    hub = recombinet_hf.load_dataset(repo_id, "same-range-pt0.8", split="train", revision=revision)
    local = recombinet_hf.load_dataset(folder, "same-range-pt0.8", split="train")
    assert len(hub) == len(local)
    for row in range(len(local)):
        a, b = hub[row], local[row]
        assert (a["fg_key"], a["bg_key"], a["label"]) == (b["fg_key"], b["bg_key"], b["label"]), row
        assert np.array_equal(np.asarray(a["image"]), np.asarray(b["image"])), row
    checked.append(f"{revision}/recombined")
    readme = hf_hub_download(repo_id, "README.md", repo_type="dataset", revision=revision)
    local_card = DatasetCard.load(folder + "/README.md")
    assert DatasetCard.load(readme).data.to_dict() == local_card.data.to_dict(), revision
    if gated:
        try:
            hf_hub_download(repo_id, "recombinet.json", repo_type="dataset", revision=revision, token=False,
                            cache_dir=folder + "-anonymous-cache")
        except GatedRepoError:
            checked.append(f"{revision}/gated")
        else:
            raise AssertionError("a gated repo served a file without a token")
print(json.dumps(checked))
"""


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """A loopback Hub with huggingface_hub pointed at it and `HF_TOKEN` set (for this test only)."""
    from huggingface_hub import constants
    from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

    with HubServer(TOKEN) as server:
        monkeypatch.setattr(constants, "ENDPOINT", server.endpoint)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
        monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-saved-token"))
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        disable_progress_bars()
        try:
            yield server
        finally:
            enable_progress_bars()
    assert not server.state.unhandled, f"requests the loopback Hub does not serve: {server.state.unhandled}"


def _load_back(hub: HubServer, tmp_path: Path, plan: list) -> list[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("HF_", "HUGGING"))}
    env.update(
        HF_ENDPOINT=hub.endpoint, HF_HUB_OFFLINE="0", HF_HUB_DISABLE_XET="1", HF_TOKEN=TOKEN,
        HF_HOME=str(tmp_path / "hf_home"), HF_DATASETS_CACHE=str(tmp_path / "datasets_cache"),
        HF_HUB_DISABLE_PROGRESS_BARS="1", HF_DATASETS_DISABLE_PROGRESS_BARS="1", HF_HUB_DISABLE_TELEMETRY="1",
    )
    result = subprocess.run(
        [sys.executable, "-c", LOAD_BACK, REPO, json.dumps(plan)],
        env=env, capture_output=True, text=True, timeout=240, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-6000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _release(folder: Path, version: str, **kwargs) -> Path:
    info = {"release_version": version, "source": "sample", "outcomes": {"kept": 24, "no_detection": 0, "error": 0}}
    return make_release(folder, info=info, **kwargs)


def test_push_two_releases_and_load_every_version(hub, tmp_path, caplog, capsys):
    from huggingface_hub import HfApi

    caplog.set_level(logging.DEBUG)
    v1 = _release(tmp_path / "v1", "0.0.1", num_shards=2)
    (v1 / "outcomes.jsonl").write_text('{"key": "train_0_0000", "status": "kept"}\n', encoding="utf-8")
    sha1 = push_to_hub(v1, REPO)

    repo = hub.repo(REPO)
    assert hub.state.commit_calls == 1  # one commit: a reader never sees half a release
    assert repo.tags == {"0.0.1": sha1} and repo.branches["main"] == sha1
    assert repo.gated == "auto" and repo.private is False  # ImageNet sample: gated by the settings API
    remote = hub.files(REPO, "0.0.1")
    assert set(remote) == {".gitattributes", *release_files(v1)}
    assert {"images/preview.png", "images/fg_ratio.png", "README.md", "recombinet.json", "outcomes.jsonl"} <= set(remote)
    assert all(remote[path] == (v1 / path).read_bytes() for path in release_files(v1))
    assert f'load_dataset("{REPO}", "same-range-pt0.8"' in remote["README.md"].decode()

    # Someone adds a LICENSE on the Hub; pushing the same release again changes nothing.
    HfApi().upload_file(path_or_fileobj=b"terms", path_in_repo="LICENSE", repo_id=REPO, repo_type="dataset")
    assert hub.state.commit_calls == 2
    assert push_to_hub(v1, REPO) == sha1 and hub.state.commit_calls == 2

    # A second release with another sharding: old shards leave main in the same commit.
    v2 = _release(tmp_path / "v2", "0.0.2", num_shards=1, per_class=5, fg_ratios=[0.05, 0.15, 0.25, 0.35, 0.45])
    sha2 = push_to_hub(v2, REPO, commit_message="Second release")
    assert sha2 != sha1 and hub.state.commit_calls == 3
    assert repo.tags == {"0.0.1": sha1, "0.0.2": sha2}
    assert set(hub.files(REPO, "main")) == {".gitattributes", "LICENSE", *release_files(v2)}  # not ours: kept
    assert repo.commits[sha2].message == "Second release"
    assert "outcomes.jsonl" in hub.files(REPO, "0.0.1") and "outcomes.jsonl" not in hub.files(REPO, "main")
    assert not any(path.endswith("of-00002.parquet") for path in hub.files(REPO, "main"))

    # Tags are never moved: another release under an existing tag is refused, nothing changes.
    v1b = _release(tmp_path / "v1b", "0.0.1", per_class=3)
    render_card(v1b, repo_id=REPO, images=False)
    with pytest.raises(PushError, match="Tag '0.0.1' already exists .* tags are never moved"):
        push_to_hub(v1b, REPO, render=False)
    assert push_to_hub(v1, REPO, render=False) == sha1  # the first release itself is already there
    assert repo.tags["0.0.1"] == sha1 and repo.branches["main"] == sha2 and hub.state.commit_calls == 3

    # Every config of both versions loads back through HF_ENDPOINT and equals its folder.
    configs = [*DATA_CONFIGS, "same-range-pt0.8", "all-range-pt1.0"]
    plan = [["0.0.1", str(v1), configs, True], ["0.0.2", str(v2), configs, True], ["main", str(v2), ["foregrounds"], True]]
    checked = _load_back(hub, tmp_path, plan)
    assert "0.0.1/recombined" in checked and "0.0.2/recombined" in checked and "0.0.1/gated" in checked
    assert len([entry for entry in checked if entry.startswith("0.0.1/")]) == 2 * len(configs) + 2

    # The token is never printed, logged or written to the release folder.
    output = capsys.readouterr()
    assert TOKEN not in output.out + output.err + caplog.text
    for folder in (v1, v2):
        for path in folder.rglob("*"):
            assert not path.is_file() or TOKEN.encode() not in path.read_bytes(), path


def test_push_private_ungated_with_declared_license(hub, tmp_path):
    folder = make_release(tmp_path / "r", info={"release_version": "1.0", "source": "hf:org/flowers", "license": "cc-by-4.0"})
    render_card(folder, images=False)
    sha = push_to_hub(folder, "org/flowers-recombinet", private=True, tag="v1.0", render=False)
    repo = hub.repo("org/flowers-recombinet")
    assert repo.private is True and repo.gated is False and repo.settings_calls == []
    assert repo.tags == {"v1.0": sha}


def test_push_refuses_oversized_row_groups_before_any_request(hub, tmp_path, monkeypatch):
    folder = make_release(tmp_path / "r")
    monkeypatch.setattr(checks_module, "MAX_ROW_GROUP_BYTES", 1000)
    with pytest.raises(ReleaseCheckError, match="data/foregrounds/train-00000-of-00002.parquet: a row group holds"):
        push_to_hub(folder, REPO, render=False)
    assert hub.state.log == [] and hub.state.repos == {}


def test_push_refuses_without_token_or_offline(hub, tmp_path, monkeypatch, capsys):
    from huggingface_hub import constants

    folder = make_release(tmp_path / "r")
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(PushError, match="HF_TOKEN"):
        push_to_hub(folder, REPO, render=False)
    assert card_main(["push", str(folder), "--repo-id", REPO, "--no-render"]) == 2
    assert "recombinet push: error: No Hugging Face token" in capsys.readouterr().err
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(PushError, match="HF_HUB_OFFLINE"):
        push_to_hub(folder, REPO, token=TOKEN, render=False)
    assert hub.state.repos == {}


def test_push_refuses_a_bad_tag(hub, tmp_path):
    folder = make_release(tmp_path / "r")
    with pytest.raises(PushError, match="`tag` must match"):
        push_to_hub(folder, REPO, tag="release 1", render=False)


def test_cli_push(hub, tmp_path, capsys):
    folder = make_release(tmp_path / "r", info={"release_version": "2.1.0", "source": "hf:org/pets", "license": "mit"})
    render_card(folder, images=False)
    assert card_main(["push", str(folder), "--repo-id", "org/pets-rn", "--no-render"]) == 0
    sha = hub.repo("org/pets-rn").tags["2.1.0"]
    assert f"at commit {sha}" in capsys.readouterr().out
