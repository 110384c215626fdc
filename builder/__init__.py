"""recombinet_builder: turn a labelled image dataset into a RecombiNet release.

One module per job (importing this package imports none of them, so it stays light):

* `sources`: ``sample`` / ImageNet-style folder / ``hf:`` dataset -> key-sorted items per split
* `decode`: bytes -> RGB, or the reason it failed (``too_large`` from the header alone)
* `backends`: the Segmenter / Inpainter interfaces and registries;
  `segment_salient`, `segment_grounded_sam`, `inpaint` register the built-in backends
* `versions`: candidates -> mask versions -> the published score -> the selected one
* `classifiers`: optional classifier for the score (``hf:MODEL`` or ``MODULE:FACTORY``)
* `rows`: one kept image -> its foregrounds / backgrounds / masks rows
* `outcomes`: where every source image ended (kept / no_detection / error + reason)
* `shards`: shard layout, rank resolution (options, torchrun, Slurm array), progress files
* `manifest`: ``build.json``, which keeps restarts and ranks on the same settings
* `pipeline`: builds a rank's shards; `finalize`: merges them into a release
* `cli`: the ``recombinet`` command (``build``, ``finalize`` + the card commands)
"""
