"""Fuzz every reader with mutated files: nothing but lungspread's own errors may escape.

    .venv/bin/python benchmarks/fuzz_readers.py            # 10,000 inputs per reader
    .venv/bin/python benchmarks/fuzz_readers.py -n 2000 --seed 3 --readers nrrd dicom
    .venv/bin/python benchmarks/fuzz_readers.py --readers dataset.json

Readers: NIfTI, NRRD, MetaImage, DICOM (``read_volume`` + ``assess_ct``) and ``dataset.json``
(``MSDDataset.open`` of an MSD folder, its properties and ``validate``).

Prints, per reader, how many inputs were read, refused with which lungspread error, and how
many escaped (any other exception; the offending inputs are kept and listed). Exits 1 if
anything escaped. Single process, deterministic for a seed.
"""

from __future__ import annotations

import argparse
import sys

from lungspread.io.fuzz import READERS, fuzz_reader


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--inputs", type=int, default=10_000, help="inputs per reader")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--readers", nargs="+", default=list(READERS), choices=READERS)
    args = parser.parse_args(argv)
    total_escapes = 0
    for reader in args.readers:
        report = fuzz_reader(reader, args.inputs, seed=args.seed)
        print(report.line(), flush=True)
        for line in report.escapes:
            print(f"    {line}")
        total_escapes += report.n_escapes
    print(f"total escapes: {total_escapes}")
    return 1 if total_escapes else 0


if __name__ == "__main__":
    sys.exit(main())
