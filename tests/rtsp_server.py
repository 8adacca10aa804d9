"""A real RTSP server on 127.0.0.1 for the RTSP tests (GStreamer's gst-rtsp-server).

Run with the system interpreter (``/usr/bin/python3``): the GStreamer ``gi``
bindings come from Debian packages (see ``.ci/apt-packages.txt``) and are not
importable from the project's virtual environment.

    /usr/bin/python3 tests/rtsp_server.py --port 0 --mount /live

serves an H.264 stream of ``videotestsrc`` (paced, endless) at
``rtsp://127.0.0.1:PORT/live`` over TCP or UDP, or a media file given with
``--file`` (decoded and re-encoded; each client gets its own pipeline from the
start of the file). Once it listens it prints one line ``READY <port>`` on
stdout and flushes it, so a test can wait for that line; with ``--port 0`` the
port is chosen by the system. It runs until killed.

With ``--record DIR`` it is instead a RECORD-mode server (what an NVR or
mediamtx offers to publishers): a client ANNOUNCEs a stream to
``rtsp://127.0.0.1:PORT/<mount>`` and RECORDs it; the server decodes it and
writes every received frame to ``DIR/frame000001.jpg``, ``frame000002.jpg``, ...
(numbering continues across sessions and restarts), so a test can look at
what was published.
"""

from __future__ import annotations

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def launch_string(args: argparse.Namespace) -> str:
    """The GStreamer pipeline each client gets, ending in the payloader ``pay0``."""
    caps = f"video/x-raw,width={args.width},height={args.height},framerate={args.fps}/1"
    if args.file:
        source = (f'filesrc location="{args.file}" ! decodebin ! videoconvert ! videoscale ! '
                  f"videorate ! {caps}")
    else:
        source = f"videotestsrc is-live=true pattern=ball ! {caps}"
    encode = (f"x264enc tune=zerolatency speed-preset=ultrafast key-int-max={args.fps} "
              "bitrate=500 ! rtph264pay name=pay0 pt=96 config-interval=1")
    return f"( {source} ! {encode} )"


def record_launch_string(folder: str) -> str:
    """A RECORD pipeline: the RTP ``depay0`` bin decodes and each frame becomes a JPEG in ``folder``."""
    import os

    start = len([n for n in os.listdir(folder) if n.startswith("frame")]) + 1
    return (f"( decodebin name=depay0 ! videoconvert ! jpegenc quality=90 ! "
            f'multifilesink location="{folder}/frame%06d.jpg" index={start} )')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one")
    parser.add_argument("--mount", default="/live", help="path part of the URL")
    parser.add_argument("--file", default="", help="serve this media file instead of a test pattern")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument("--record", default="", metavar="DIR",
                        help="RECORD mode: accept a published stream and save its frames as JPEGs in DIR")
    args = parser.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    if args.record:
        factory.set_transport_mode(GstRtspServer.RTSPTransportMode.RECORD)
        factory.set_launch(record_launch_string(args.record))
        factory.set_latency(50)
    else:
        factory.set_launch(launch_string(args))
    factory.set_shared(False)
    server.get_mount_points().add_factory(args.mount, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
        return 1
    print(f"READY {server.get_bound_port()}", flush=True)
    GLib.MainLoop().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
