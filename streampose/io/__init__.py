"""Sources (what frames come from) and sinks (where results go).

``open_source(spec, source_id, options)`` opens a ``--source``;
``sink_specs(outputs, show)`` turns ``--output`` values into sink step specs;
``read_jsonl`` / ``read_csv`` read the result files back. Heavy libraries
(PyAV, OpenCV) are imported only when a source or sink is used.
"""

from .outputs import sink_specs
from .results import FrameResult, read_csv, read_jsonl
from .sources import Source, SourceOptions, open_source

__all__ = ["FrameResult", "Source", "SourceOptions", "open_source", "read_csv", "read_jsonl", "sink_specs"]
