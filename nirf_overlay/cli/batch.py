"""`nirf-overlay batch`: analyse many recorded sessions on a Dask cluster."""

from __future__ import annotations

import argparse


def add_parser(parser: argparse.ArgumentParser) -> None:
    from .common import add_transfer_argument, positive_count

    parser.add_argument("sessions", nargs="+", metavar="SESSION", help="recorded session directories")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    parser.add_argument("--workers", type=positive_count, default=2, metavar="N",
                        help="worker processes of the local cluster (default 2)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="use an existing Dask cluster, e.g. tcp://10.0.0.5:8786")
    parser.add_argument("--settings", metavar="F", help="settings JSON for every session")
    parser.add_argument("--calibration", metavar="P",
                        help="calibration profile for every session (default: each session's own)")
    add_transfer_argument(parser)
    parser.add_argument("--chunk-frames", type=positive_count, default=None, metavar="N",
                        help="frames per task (default 1800, one minute at 30 fps)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--keep-paths", action="store_true",
                        help="name sessions by their paths as given in summary.csv and the "
                             "report (default: folder names; folder names can carry patient names)")
    tls = parser.add_argument_group("TLS (a tls:// scheduler; default: Dask's configuration, "
                                    "distributed.comm.tls)")
    tls.add_argument("--tls-ca-file", metavar="PEM", help="certificate authority to trust")
    tls.add_argument("--tls-cert", metavar="PEM", help="this client's certificate")
    tls.add_argument("--tls-key", metavar="PEM", help="its private key (if not in --tls-cert)")


def run(args) -> int:
    import os
    import sys

    from ..batch import DEFAULT_CHUNK_FRAMES, run_batch, tls_security
    from ..errors import NirfError
    from .common import prepare_kernels, settings_from_args, transfer_from_args

    if args.workers < 1:
        raise NirfError(f"--workers: {args.workers} must be at least 1")
    if args.chunk_frames is not None and args.chunk_frames < 1:
        raise NirfError(f"--chunk-frames: {args.chunk_frames} must be at least 1")
    security = tls_security(args.scheduler, ca_file=args.tls_ca_file, cert=args.tls_cert,
                            key=args.tls_key)
    warned = set()

    def prepare():  # once run_batch's refusals have passed, before its cluster starts
        for i, s in enumerate(args.sessions):
            if not os.path.exists(s):
                # reported in the summary like any unreadable session, but say it now (once)
                print(f"nirf-overlay: warning: {s}: no such directory", file=sys.stderr)
                warned.add(i)
        prepare_kernels()  # once, one progress line; the workers load them from the cache

    settings = settings_from_args(args)
    transfer = transfer_from_args(args)  # a bad curve or LUT is refused before any worker starts
    out = run_batch(args.sessions, args.out, settings=settings, calibration=args.calibration,
                    nir_transfer=transfer,
                    workers=args.workers, scheduler=args.scheduler, security=security,
                    prepare=prepare,
                    chunk_frames=args.chunk_frames or DEFAULT_CHUNK_FRAMES,
                    keep_paths=args.keep_paths,
                    progress=not args.no_progress and sys.stderr.isatty())
    failed = [s for s in out["summary"] if s["error"]]
    for i, s in enumerate(out["summary"]):
        if s["error"] and i not in warned:
            print(f"nirf-overlay: warning: {s['error']}", file=sys.stderr)
    display = [s["session"] for s in out["summary"] if s.get("nir_signal") == "display"]
    if display:
        print(f"nirf-overlay: warning: batch: {len(display)} recording(s) with 8-bit display-encoded "
              f"NIR measured as display values ({', '.join(display)}); give --nir-transfer "
              f"gamma:G, srgb or lut:FILE.csv (or a --calibration profile with an nir_transfer)",
              file=sys.stderr)
    lost = f" ({out['workers_lost']} lost during the run)" if out.get("workers_lost") else ""
    print(f"batch: {len(out['summary']) - len(failed)}/{len(out['summary'])} recordings, "
          f"{out['frames']} frames in {out['seconds']:.1f} s on {out['workers']} workers{lost} "
          f"({out['fps_per_worker']:.1f} frames/s per worker) -> {out['out_dir']}/report.html")
    return 1 if failed and len(failed) == len(out["summary"]) else 0
