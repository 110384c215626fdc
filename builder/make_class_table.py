"""Generate the committed ImageNet-1k class table (``builder/data/imagenet_classes.json``).

Sources (registry data only, nothing fetched from elsewhere):

* the timm wheel from PyPI: ``timm/data/_info/imagenet_synsets.txt`` (the 1000 wnids in
  ImageNet index order) and ``timm/data/_info/imagenet_synset_to_lemma.txt`` (lemmas),
  read straight out of the zip, timm is never installed;
* WordNet 3.0 from Debian's ``wordnet-base`` package (``/usr/share/wordnet``), read with
  nltk's ``WordNetCorpusReader`` for the hypernym ancestors.

Usage::

    apt-get install -y wordnet-base && pip install nltk
    python -m recombinet_builder.make_class_table --out builder/data/imagenet_classes.json \
        [--timm-wheel timm-X.Y.Z-py3-none-any.whl] [--wordnet-dir /usr/share/wordnet]

Without ``--timm-wheel`` the latest timm wheel is fetched with ``python -m pip download``.
The output is deterministic for a given timm wheel and WordNet database.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

SYNSETS_MEMBER = "timm/data/_info/imagenet_synsets.txt"
LEMMAS_MEMBER = "timm/data/_info/imagenet_synset_to_lemma.txt"
MAX_ANCESTORS = 3
NUM_CLASSES = 1000

# WordNet 3.0 lexicographer file names, numbered 00..44, as listed in lexnames(5WN).
# Debian's wordnet-base ships no ``lexnames`` file, but nltk's reader requires one.
_LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute "
    "noun.body noun.cognition noun.communication noun.event noun.feeling noun.food "
    "noun.group noun.location noun.motive noun.object noun.person noun.phenomenon "
    "noun.plant noun.possession noun.process noun.quantity noun.relation noun.shape "
    "noun.state noun.substance noun.time verb.body verb.change verb.cognition "
    "verb.communication verb.competition verb.consumption verb.contact verb.creation "
    "verb.emotion verb.motion verb.perception verb.possession verb.social verb.stative "
    "verb.weather adj.ppl"
).split()
_POS_CODE = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}


def download_timm_wheel(dest: Path) -> Path:
    """Download the latest timm wheel (no dependencies) into ``dest`` with pip."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
         "timm", "-d", str(dest)],
        check=True,
    )
    wheels = sorted(dest.glob("timm-*.whl"))
    if not wheels:
        raise FileNotFoundError(f"pip download left no timm wheel in {dest}")
    return wheels[-1]


def read_timm_info(wheel: Path) -> tuple[str, list[str], dict[str, list[str]]]:
    """Return (timm version, wnids in index order, wnid -> lemmas) from a timm wheel."""
    version = wheel.name.split("-")[1]
    with zipfile.ZipFile(wheel) as zf:
        wnids = zf.read(SYNSETS_MEMBER).decode("utf-8").split()
        lemmas: dict[str, list[str]] = {}
        for line in zf.read(LEMMAS_MEMBER).decode("utf-8").splitlines():
            if line.strip():
                wnid, text = line.split("\t", 1)
                lemmas[wnid] = [part.strip() for part in text.split(",") if part.strip()]
    if len(wnids) != NUM_CLASSES:
        raise ValueError(f"{SYNSETS_MEMBER} in {wheel.name} has {len(wnids)} wnids, expected {NUM_CLASSES}")
    return version, wnids, lemmas


def open_wordnet(wordnet_dir: Path, workdir: Path) -> Any:
    """Open WordNet with nltk from a copy of ``wordnet_dir`` completed with ``lexnames``.

    nltk only reads from its data path, so the copy's folder is appended to
    ``nltk.data.path``. No multilingual (omw) data is used, and the reader skips nltk's
    sense-key mapping to its own downloaded ``wordnet`` corpus (which needs ``index.sense``
    of that corpus; this database is WordNet 3.0 itself, so no mapping is needed).
    """
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    class _PlainWordNetReader(WordNetCorpusReader):  # type: ignore[misc]
        """English-only reader: no mapping onto nltk's downloaded ``wordnet`` corpus."""

        def map_wn(self, version: str = "wordnet") -> None:
            return None

    root = workdir / "wordnet"
    root.mkdir()
    for pattern in ("data.*", "index.*", "*.exc"):
        for src in wordnet_dir.glob(pattern):
            shutil.copyfile(src, root / src.name)
    if not (root / "data.noun").is_file():
        raise FileNotFoundError(f"no WordNet database in {wordnet_dir} (apt-get install wordnet-base)")
    lexnames = wordnet_dir / "lexnames"
    if lexnames.is_file():
        shutil.copyfile(lexnames, root / "lexnames")
    else:
        (root / "lexnames").write_text(
            "".join(f"{i:02d}\t{name}\t{_POS_CODE[name.split('.')[0]]}\n" for i, name in enumerate(_LEXNAMES))
        )
    nltk.data.path.append(str(root))  # nltk refuses to read outside its data path
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The multilingual functions")
        return _PlainWordNetReader(str(root), None)


def debian_package_version(package: str) -> str:
    """Installed Debian package version, or ``"unknown"`` when dpkg cannot tell."""
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", package],
                             capture_output=True, text=True, check=True)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def first_hypernym(data_noun: BinaryIO, offset: int) -> int | None:
    """Offset of the first hypernym of noun synset ``offset``, in WordNet's own order.

    nltk keeps a synset's pointers in a set, so ``Synset.hypernyms()`` comes back in an
    order that changes with ``PYTHONHASHSEED``; the pointer list of the ``data.noun``
    line (see wndb(5WN)) is read instead: hypernyms (``@``) first, then instance
    hypernyms (``@i``), each in file order, as nltk's ``hypernym_paths()`` would walk them.
    """
    data_noun.seek(offset)
    fields = data_noun.readline().decode("utf-8").split()
    if int(fields[0]) != offset:
        raise ValueError(f"data.noun has no synset at offset {offset:08d}")
    at = 4 + 2 * int(fields[3], 16)  # skip the word/lex_id pairs
    pointers = [fields[at + 1 + 4 * k: at + 5 + 4 * k] for k in range(int(fields[at]))]
    for symbol in ("@", "@i"):
        for sym, target, pos, _ in pointers:
            if sym == symbol and pos == "n":
                return int(target)
    return None


def ancestors_of(wn: Any, data_noun: BinaryIO, wnid: str, limit: int = MAX_ANCESTORS) -> list[str]:
    """Names of up to ``limit`` hypernyms along the first hypernym path, nearest first."""
    names: list[str] = []
    offset = first_hypernym(data_noun, int(wnid[1:]))
    while offset is not None and len(names) < limit:
        names.append(wn.synset_from_pos_and_offset("n", offset).lemma_names()[0].replace("_", " "))
        offset = first_hypernym(data_noun, offset)
    return names


def build_table(wheel: Path, wordnet_dir: Path) -> dict[str, Any]:
    """Build the JSON-ready class table from a timm wheel and a WordNet directory."""
    version, wnids, lemmas = read_timm_info(wheel)
    with tempfile.TemporaryDirectory() as tmp:
        wn = open_wordnet(wordnet_dir, Path(tmp))
        with open(Path(tmp) / "wordnet" / "data.noun", "rb") as data_noun:
            classes = [
                {
                    "index": index,
                    "wnid": wnid,
                    "name": lemmas[wnid][0],
                    "lemmas": lemmas[wnid],
                    "ancestors": ancestors_of(wn, data_noun, wnid),
                }
                for index, wnid in enumerate(wnids)
            ]
        wn_version = wn.get_version()
    source = (
        f"timm {version} wheel from PyPI ({SYNSETS_MEMBER}, {LEMMAS_MEMBER}); "
        f"WordNet {wn_version} from Debian wordnet-base {debian_package_version('wordnet-base')} "
        f"read with nltk; ancestors = first lemma of up to {MAX_ANCESTORS} hypernyms along the "
        f"first hypernym path, nearest first; generated by recombinet_builder.make_class_table"
    )
    return {"source": source, "classes": classes}


def dump_table(table: dict[str, Any]) -> str:
    """Serialise deterministically: sorted keys, one class per line, UTF-8 text."""
    lines = [json.dumps(c, sort_keys=True, ensure_ascii=False) for c in table["classes"]]
    return (
        '{"classes": [\n' + ",\n".join(lines) + "\n],\n"
        f' "source": {json.dumps(table["source"], ensure_ascii=False)}\n}}\n'
    )


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="output JSON path")
    parser.add_argument("--timm-wheel", type=Path, help="timm wheel; downloaded with pip if omitted")
    parser.add_argument("--wordnet-dir", type=Path, default=Path("/usr/share/wordnet"),
                        help="WordNet 3.0 database folder (Debian wordnet-base)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.timm_wheel or download_timm_wheel(Path(tmp))
        table = build_table(wheel, args.wordnet_dir)
    text = dump_table(table)
    json.loads(text)  # sanity: the hand-joined layout is valid JSON
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {len(table['classes'])} classes to {args.out} ({len(text.encode())} bytes)")


if __name__ == "__main__":
    main()
