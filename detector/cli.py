"""Command line: argument parsing only; every command calls into the modules that do the work.

Each command group has its own `_add_*` function; handlers import their modules lazily so
that `detector --help` stays fast and an edge box never imports what it does not run.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from detector import __version__
from detector.errors import UserError


def _add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list, fetch and export detection models")
    msub = p.add_subparsers(dest="models_cmd", metavar="{list,fetch,export}", required=True)
    msub.add_parser("list", help="show each model of the manifest and where its file resolves")
    f = msub.add_parser("fetch", help="download a model into the user cache (checked by sha256)")
    f.add_argument("name", help="model name from `detector models list`")
    e = msub.add_parser("export", help="turn an Ultralytics .pt checkpoint into ONNX (needs the `export` extra)")
    e.add_argument("weights", type=Path, help="Ultralytics checkpoint, e.g. yolo11n.pt")
    e.add_argument("--imgsz", type=int, default=640, help="square input size (default 640)")
    e.add_argument("--out", type=Path, default=None, help="where to write the .onnx (default: beside the weights)")
    p.set_defaults(handler=_run_models)


def _run_models(args: argparse.Namespace) -> int:
    from detector import model_commands

    if args.models_cmd == "list":
        return model_commands.list_models()
    if args.models_cmd == "fetch":
        return model_commands.fetch(args.name)
    return model_commands.export(args.weights, args.imgsz, args.out)


def _add_samples(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("samples", help="list and fetch the sample clips of sample_videos/manifest.yaml")
    ssub = p.add_subparsers(dest="samples_cmd", metavar="{list,fetch}", required=True)
    ssub.add_parser("list", help="show each sample clip and where it resolves")
    f = ssub.add_parser("fetch", help="download a sample clip into the user cache")
    f.add_argument("name")
    p.set_defaults(handler=_run_samples)


def _run_samples(args: argparse.Namespace) -> int:
    from detector import samples

    if args.samples_cmd == "list":
        return samples.list_samples()
    return samples.fetch(args.name)


def _add_replay(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "replay",
        help="run the pipeline on a recorded clip",
        description="Run detection and tracking on a clip (a path, or a sample name from "
        "`detector samples list`) and write an annotated video and logs.",
    )
    p.add_argument("clip", help="video file (mp4, avi, gif, ...) or sample name")
    p.add_argument("--config", type=Path, default=None, help="YAML settings (see configs/camera.example.yaml)")
    p.add_argument("--video", type=Path, default=None, help="write an annotated MP4 here")
    p.add_argument("--tracks", type=Path, default=None, help="write per-frame tracks as JSON lines here")
    p.add_argument("--acts", type=Path, default=None, help="write recognised acts as JSON lines here")
    p.add_argument("--events", type=Path, default=None, help="write signed events as JSON lines here (needs --key)")
    p.add_argument("--key", type=Path, default=None, help="camera private key for --events")
    p.add_argument(
        "--start-time", default="1970-01-01T00:00:00Z",
        help="wall-clock time of the clip's first frame (RFC 3339) for event times (default: the Unix epoch)",
    )
    p.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    p.set_defaults(handler=_run_replay)


def _run_replay(args: argparse.Namespace) -> int:
    from detector import replay

    return replay.run(args)


def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="score the detector against ground truth (accuracy and speed)",
        description="Run every clip of a truth file found in DIR (in parallel processes) and score the "
        "recognised acts like the IWDD contest: an act counts when it is notified between 5 s before "
        "and 10 s after the true onset. Writes JSON, a Markdown report and a timeline plot.",
    )
    p.add_argument("dir", type=Path, help="directory holding the clips named in the truth file")
    p.add_argument("--truth", type=Path, required=True, help="truth YAML (clips: [{file, events: [...]}])")
    p.add_argument("--json", type=Path, required=True, help="write results as JSON here")
    p.add_argument("--config", type=Path, default=None, help="YAML settings used for every clip")
    p.add_argument("--model-dir", type=Path, default=None, help="directory to look for models in (sets DETECTOR_MODEL_DIR)")
    p.add_argument("--report", type=Path, default=None, help="Markdown report (default: beside --json, .md)")
    p.add_argument("--plot", type=Path, default=None, help="timeline PNG (default: beside --json, .png)")
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default: min(clips, CPU count))")
    p.add_argument("--clips", nargs="+", default=None, metavar="NAME", help="only these clips (file name, stem or name)")
    p.add_argument("--skip-missing", action="store_true", help="bench the clips found instead of failing on a missing one")
    p.set_defaults(handler=_run_bench)


def _run_bench(args: argparse.Namespace) -> int:
    from detector import bench

    return bench.run(args)


# -- command groups added by later work register here ------------------------------------
GROUPS = [_add_replay, _add_models, _add_samples]
GROUPS.append(_add_bench)  # issue 3: detector bench


# -- issue 4: keys, backend, verify, outbox ------------------------------------------------
def _add_keys(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("keys", help="camera signing keys (Ed25519)")
    ksub = p.add_subparsers(dest="keys_cmd", metavar="{generate}", required=True)
    g = ksub.add_parser("generate", help="write NAME.key (private, mode 0600) and NAME.pub into a directory")
    g.add_argument("--camera", required=True, help="camera name (the key files are named after it)")
    g.add_argument("--out", type=Path, required=True, help="directory for the key files")
    p.set_defaults(handler=_run_keys)


def _run_keys(args: argparse.Namespace) -> int:
    from detector import keys

    key_path, pub_path, kid = keys.generate(args.camera, args.out)
    print(f"keyid {kid}: private key {key_path}, public key {pub_path}")
    return 0


def _add_backend(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("backend", help="scoring backend: serve the API, revoke keys")
    bsub = p.add_subparsers(dest="backend_cmd", metavar="{serve,revoke}", required=True)
    s = bsub.add_parser("serve", help="run the HTTP API (see configs/backend.example.yaml)")
    s.add_argument("--config", type=Path, required=True, help="backend YAML config")
    s.add_argument("--host", default=None, help="override listen.host")
    s.add_argument("--port", type=int, default=None, help="override listen.port")
    r = bsub.add_parser("revoke", help="revoke a camera key id in the backend's store")
    r.add_argument("keyid", help="16 hex digits, as printed by `detector keys generate`")
    r.add_argument("--config", type=Path, required=True, help="backend YAML config")
    r.add_argument("--reason", default="", help="free text kept with the revocation")
    p.set_defaults(handler=_run_backend)


def _run_backend(args: argparse.Namespace) -> int:
    from detector.backend import app

    if args.backend_cmd == "serve":
        return app.serve(args.config, args.host, args.port)
    return app.revoke(args.config, args.keyid, args.reason)


def _add_verify(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify", help="check the signatures and hash chain of an events JSON-lines file")
    p.add_argument("events", type=Path, help="events file written by `detector replay --events`")
    p.add_argument("--pubkey", required=True, help="camera public key (PEM file or inline base64)")
    p.set_defaults(handler=_run_verify)


def _run_verify(args: argparse.Namespace) -> int:
    from detector import verify

    return verify.run(args.events, args.pubkey)


def _add_outbox(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("outbox", help="edge outbox: deliver pending events, show status")
    osub = p.add_subparsers(dest="outbox_cmd", metavar="{send,status}", required=True)
    s = osub.add_parser("send", help="deliver the outbox's pending events to a backend, retrying until acknowledged")
    s.add_argument("--db", type=Path, required=True, help="outbox SQLite file")
    s.add_argument("--url", required=True, help="backend base URL, e.g. http://127.0.0.1:8080")
    s.add_argument("--batch", type=int, default=100, help="events per request (default 100)")
    s.add_argument("--once", action="store_true", help="exit when nothing is pending")
    s.add_argument("--max-backoff", type=float, default=30.0, help="longest wait between retries, seconds (default 30)")
    st = osub.add_parser("status", help="count kept and pending events")
    st.add_argument("--db", type=Path, required=True)
    p.set_defaults(handler=_run_outbox)


def _run_outbox(args: argparse.Namespace) -> int:
    from detector import outbox

    if args.outbox_cmd == "send":
        return outbox.send_command(args.db, args.url, args.batch, args.once, args.max_backoff)
    return outbox.status_command(args.db)


GROUPS += [_add_keys, _add_backend, _add_verify, _add_outbox]
# -- end issue 4 -----------------------------------------------------------------------------


# -- issue 5: live site ------------------------------------------------------------------------
def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run every camera of a site (one worker process each) until stopped",
        description="Run a live site: one worker process per camera (RTSP or file), restarted when it "
        "crashes, with face-blurred evidence, a durable outbox, optional MQTT/HTTP delivery, and "
        "Prometheus /metrics plus /healthz. Stops cleanly on SIGTERM or Ctrl-C.",
    )
    p.add_argument("--config", type=Path, required=True, help="site YAML (see configs/site.example.yaml)")
    p.add_argument("--metrics-port", type=int, default=None, help="override metrics.port (0: any free port)")
    p.add_argument("--check", action="store_true", help="validate the config and exit")
    p.set_defaults(handler=_run_run)


def _run_run(args: argparse.Namespace) -> int:
    from detector import supervisor

    return supervisor.run_site(args.config, args.metrics_port, args.check)


GROUPS.append(_add_run)
# -- end issue 5 -------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="detector",
        description="Littering and clean-up act detector for fixed cameras. It detects acts, never people.",
    )
    parser.add_argument("--version", action="version", version=f"detector {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in GROUPS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # FFmpeg and OpenCV print their own multi-line warnings for bad files; our one-line
    # errors say the same thing. Set before cv2 is first imported (handlers import lazily).
    os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except UserError as e:
        print(f"detector: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("detector: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
