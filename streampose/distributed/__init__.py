"""Running pipelines on a Ray cluster: video corpora (``streampose batch``) and camera fleets.

This package is the only one that imports ``ray`` (the ``ray`` extra), and
nothing on the single-machine path imports this package: the ``batch``
subcommand and the ``--ray`` flag load it when used.

- :mod:`.corpus`: which items an input (folder, glob, manifest) names, and their output names;
- :mod:`.manifest`: the run manifest (item → status, frames, seconds, error, node) and resuming;
- :mod:`.item_runner`: one item through the existing pipeline, models kept loaded between items;
- :mod:`.chunks`: long videos split at keyframes, and the chunks' results stitched back;
- :mod:`.batch`: the driver: actors, scheduling, retries, progress and summary;
- :mod:`.fleet`: live sources spread over supervised actors;
- :mod:`.cli`: the ``streampose batch`` command.
"""
