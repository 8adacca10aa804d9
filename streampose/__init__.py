"""streampose: real-time multi-person pose estimation on live and recorded video."""

__version__ = "0.1.0"
