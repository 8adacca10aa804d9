"""streampose: real-time multi-person pose estimation on live and recorded video.

``streampose.predict(source)`` yields one result per frame; ``streampose.Pipeline``
keeps the models loaded for a loop or a server (see :mod:`streampose.api`).
Importing the package loads nothing heavy: the API is imported on first use.
"""

__version__ = "0.1.0"

__all__ = ["Pipeline", "Result", "predict"]


def __getattr__(name: str):
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'streampose' has no attribute {name!r}")
