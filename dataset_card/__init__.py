"""RecombiNet releases on the Hub: the dataset card, preview pictures, checks and the push.

    >>> from recombinet_card import render_card, write_preview, check_release, push_to_hub
    >>> render_card("out/release")                      # README.md + images/*.png
    >>> write_preview("out/release", "same-range-pt0.8")  # images/preview-same-range-pt0.8.png
    >>> check_release("out/release")                    # row groups, sha256 of every shard
    >>> push_to_hub("out/release", "org/name")          # one commit + tag <release_version>
"""

from .card import render_card
from .checks import MAX_ROW_GROUP_BYTES, ReleaseCheckError, check_release
from .preview import write_preview
from .push import PushError, push_to_hub
from .schema import CardCheckError, check_card, validate_card_metadata
from .statistics import ReleaseStatistics, release_statistics
from .terms import SourceTerms, source_terms

__all__ = [
    "MAX_ROW_GROUP_BYTES",
    "CardCheckError",
    "PushError",
    "ReleaseCheckError",
    "ReleaseStatistics",
    "SourceTerms",
    "check_card",
    "check_release",
    "push_to_hub",
    "release_statistics",
    "render_card",
    "source_terms",
    "validate_card_metadata",
    "write_preview",
]
