"""Copy a trained model into the package as the bundled default (``src/lungspread/weights``).

    .venv/bin/python scripts/bundle_model.py RUN [--threshold 0.5] [--min-lesion-mm3 30]
        [--min-peak 0.5] [--version NAME]

Copies ``RUN/model.json`` and ``RUN/model.safetensors`` (a ``lungspread train`` run folder or
any model folder), adds the post-processing settings analyze uses with this model
(``extra.postprocess``) and its inference window settings (``extra.inference``), checks that
the weights load, and refuses weights over 25 MB. The model card (MODEL_CARD.md beside them)
is written by hand from the measured figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = REPO / "src" / "lungspread" / "weights"
MAX_BYTES = 25 * 1024 * 1024


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="bundle a trained model as lungspread's default")
    ap.add_argument("run", type=Path)
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--min-lesion-mm3", type=float, default=30.0)
    ap.add_argument("--min-peak", type=float, default=0.5)
    ap.add_argument("--lung-margin-mm", type=float, default=10.0)
    ap.add_argument("--min-fraction-in-lungs", type=float, default=0.25)
    ap.add_argument("--overlap", type=float, default=0.25)
    ap.add_argument("--version", default="fast3d-1")
    ap.add_argument("--out", type=Path, default=WEIGHTS)
    args = ap.parse_args(argv)

    from lungspread.models.checkpoint import SPEC_NAME, WEIGHTS_NAME, load_checkpoint

    src_spec, src_weights = args.run / SPEC_NAME, args.run / WEIGHTS_NAME
    if not (src_spec.is_file() and src_weights.is_file()):
        print(f"error: {args.run} holds no {SPEC_NAME} + {WEIGHTS_NAME}", file=sys.stderr)
        return 2
    size = src_weights.stat().st_size
    if size > MAX_BYTES:
        print(f"error: weights are {size / 1e6:.1f} MB, over the 25 MB limit", file=sys.stderr)
        return 2
    spec = json.loads(src_spec.read_text(encoding="utf-8"))
    extra = dict(spec.get("extra") or {})
    extra["version"] = args.version
    extra["postprocess"] = {
        "threshold": args.threshold,
        "min_lesion_mm3": args.min_lesion_mm3,
        "min_peak_probability": args.min_peak,
        "lung_margin_mm": args.lung_margin_mm,
        "min_fraction_in_lungs": args.min_fraction_in_lungs,
    }
    extra["inference"] = {"overlap": args.overlap, "max_window_voxels": 8_000_000}
    spec["extra"] = extra
    spec["threshold"] = args.threshold
    args.out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src_weights, args.out / WEIGHTS_NAME)
    (args.out / SPEC_NAME).write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
    load_checkpoint(args.out)  # the bundled files must load
    print(f"bundled {args.run} -> {args.out} ({size / 1e6:.1f} MB of weights)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
