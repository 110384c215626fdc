"""A `--plugin` for the restart test: registers `salient-slow`, the salient segmenter that
first sleeps `RECOMBINET_TEST_SEGMENT_DELAY` seconds (default 0) per call, so a test can
kill a build midway. The delay is read at call time and is not a build setting, so a slow
and a fast build have the same settings and must give the same release."""

from __future__ import annotations

import os
import time

from recombinet_builder.backends import SEGMENTERS
from recombinet_builder.segment_salient import SalientSegmenter

DELAY_ENV = "RECOMBINET_TEST_SEGMENT_DELAY"


class SlowSalient(SalientSegmenter):
    name = "salient-slow"

    def segment(self, images, prompts=None):
        time.sleep(float(os.environ.get(DELAY_ENV, "0") or 0))
        return super().segment(images, prompts)


@SEGMENTERS.register("salient-slow")
def create_slow_salient(**options) -> SlowSalient:
    return SlowSalient(**options)
