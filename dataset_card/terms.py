"""The source's terms: which license metadata and gating a release gets.

A release inherits the terms of the photos it was cut from. `recombinet.json` says where they
came from (`source`, and optionally `license`, `license_name`, `license_link`, `gated`):

* ImageNet folders and the `sample` source (ImageNet photos shipped in the foolbox wheel):
  `license: other` with `license_name`/`license_link` pointing at the ImageNet terms of access,
  and the repo gated (`auto`: access is granted once the terms are accepted).
* Any other source: its declared license (a Hub license id), else `unknown`, not gated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Optional, Union

Gated = Union[Literal["auto", "manual"], bool]

IMAGENET_LICENSE_NAME = "imagenet-terms-of-access"
IMAGENET_TERMS_URL = "https://image-net.org/download.php"
IMAGENET_GATING_PROMPT = (
    "The images in this dataset are derived from ImageNet. By requesting access you agree to the "
    f"ImageNet terms of access ({IMAGENET_TERMS_URL}): use the data only for non-commercial research "
    "and educational purposes, do not redistribute it, and accept full responsibility for your use "
    "of it; Princeton University, Stanford University and the dataset's authors make no "
    "representations or warranties about it."
)
IMAGENET_GATING_FIELDS = {
    "I agree to use this dataset only for non-commercial research and educational purposes": "checkbox",
    "I agree to the ImageNet terms of access": "checkbox",
}

_IMAGENET_KINDS = ("imagenet", "sample", "imagenet-sample", "imagenet-folder")
_GATED_VALUES = ("auto", "manual", False)


@dataclass(frozen=True)
class SourceTerms:
    """License and access terms of a release.

    Attributes:
        source: human-readable source, e.g. ``"ImageNet-1k"`` (the card says "<source> photos").
        license: Hub license id (``"other"`` needs `license_name` and `license_link`).
        gated: ``"auto"``/``"manual"`` to gate the repo through its settings, or False.
        extra_gated: YAML fields shown on the access-request form (`extra_gated_prompt`, ...).
        notice: one paragraph for the card.
    """

    source: str
    license: str
    license_name: Optional[str] = None
    license_link: Optional[str] = None
    gated: Gated = False
    extra_gated: dict[str, Any] = field(default_factory=dict)
    notice: str = ""

    def card_fields(self) -> dict[str, Any]:
        """The YAML fields of these terms (None values are dropped by `DatasetCardData`)."""
        return {
            "license": self.license,
            "license_name": self.license_name,
            "license_link": self.license_link,
            **self.extra_gated,
        }


def _source_fields(source: Any) -> dict[str, Any]:
    """`source` of recombinet.json as a dict: the builder writes its description (`kind`, `spec`,
    `path`/`repo_id`, ...); a plain string (`sample`, `imagenet:PATH`, `hf:ID`, a path) also works."""
    if source is None:
        return {}
    if isinstance(source, Mapping):
        return dict(source)
    if isinstance(source, str):
        kind, _, rest = source.partition(":")
        if rest and kind in ("hf", "imagenet", "folder", "sample"):
            return {"kind": kind, "spec": source, "name": rest}
        return {"spec": source, "name": source}
    raise ValueError(f"`source` in recombinet.json must be a string or an object, got {type(source).__name__}.")


def _names(fields: Mapping[str, Any]) -> list[str]:
    return [str(fields[key]) for key in ("pretty_name", "repo_id", "name", "path", "spec") if fields.get(key)]


def _is_imagenet(fields: Mapping[str, Any], explicit: Mapping[str, Any]) -> bool:
    """ImageNet terms apply: an ImageNet kind, the ImageNet license fields, or (for a source
    without a kind or license) an ImageNet-looking name."""
    kind = str(fields.get("kind") or fields.get("type") or "").lower()
    if kind in _IMAGENET_KINDS:
        return True
    if explicit.get("license_name") == IMAGENET_LICENSE_NAME or "image-net.org" in str(explicit.get("license_link") or ""):
        return True
    if kind or explicit.get("license"):
        return False
    return any(name.lower() in _IMAGENET_KINDS or "imagenet" in name.lower() or "ilsvrc" in name.lower() for name in _names(fields))


def _check_gated(value: Any) -> Gated:
    if value not in _GATED_VALUES and value is not True:
        raise ValueError(f"`gated` in recombinet.json must be one of {list(_GATED_VALUES)}, got {value!r}.")
    return "auto" if value is True else value


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:64] or "custom"


def _imagenet_terms(fields: Mapping[str, Any], explicit: Mapping[str, Any]) -> SourceTerms:
    kind = str(fields.get("kind") or fields.get("name") or "").lower()
    pretty = "ImageNet sample (foolbox 3.3.4)" if kind == "sample" else "ImageNet-1k"
    gated = _check_gated(explicit["gated"]) if explicit["gated"] is not None else "auto"
    return SourceTerms(
        source=pretty,
        license="other",
        license_name=explicit["license_name"] or IMAGENET_LICENSE_NAME,
        license_link=explicit["license_link"] or IMAGENET_TERMS_URL,
        gated=gated,
        extra_gated=(
            {"extra_gated_prompt": IMAGENET_GATING_PROMPT, "extra_gated_fields": dict(IMAGENET_GATING_FIELDS)}
            if gated
            else {}
        ),
        notice=(
            f"The foregrounds, backgrounds and masks are derived from {pretty} photos and fall under the "
            f"[ImageNet terms of access]({IMAGENET_TERMS_URL}): non-commercial research and educational use "
            "only. Access to this repository is granted once you accept those terms."
        ),
    )


def source_terms(info: Mapping[str, Any]) -> SourceTerms:
    """The terms of the release described by `info` (the contents of `recombinet.json`).

    A license that is not a Hub license id (e.g. free text from a source's DatasetInfo) becomes
    `license: other` with a `license_name` made from it and a link to the source (a Hub dataset
    page), or `unknown` when there is nothing to link to.
    """
    fields = _source_fields(info.get("source"))
    explicit = {key: info.get(key, fields.get(key)) for key in ("license", "license_name", "license_link", "gated")}
    if _is_imagenet(fields, explicit):
        return _imagenet_terms(fields, explicit)
    from .schema import load_card_schema

    names = _names(fields)
    source_name = names[0] if names else "an unnamed source"
    license_id = str(explicit["license"] or "unknown").strip()
    license_name, license_link = explicit["license_name"], explicit["license_link"]
    if license_id.lower() in load_card_schema()["license"]:
        license_id = license_id.lower()
    else:
        recorded = license_id
        repo_id = fields.get("repo_id")
        license_link = license_link or (f"https://huggingface.co/datasets/{repo_id}" if repo_id else None)
        license_id, license_name = ("other", license_name or _slug(recorded)) if license_link else ("unknown", None)
    gated = _check_gated(explicit["gated"]) if explicit["gated"] is not None else False
    if license_id == "unknown":
        notice = (
            f"The images are derived from {source_name}, whose license was not recorded at build time: "
            "check the source's terms before using or redistributing them."
        )
    elif license_id == "other":
        notice = f"The images are derived from {source_name} and keep its terms ([{license_name}]({license_link}))."
    else:
        notice = f"The images are derived from {source_name} and keep its license (`{license_id}`)."
    return SourceTerms(
        source=source_name,
        license=license_id,
        license_name=license_name if license_id == "other" else None,
        license_link=license_link if license_id == "other" else None,
        gated=gated,
        extra_gated={"extra_gated_prompt": f"Access follows the terms of {source_name}."} if gated else {},
        notice=notice,
    )
