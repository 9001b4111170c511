"""Contact import throughput against a bare baseline, and peak memory on a very large file.

    python bench/import_bench.py [--rows 100000] [--repeat 3] [--memory-rows 1000000]

Baseline: ``csv.DictReader`` + sqlite-utils ``insert_all`` of the same file into a fresh database, no
validation. Measured: ``surveybot.contacts.importer.import_contacts`` (encoding/delimiter detection,
SHA-256, normalisation, e-mail validation, de-duplication, provenance) into a fresh database. The best of
``--repeat`` runs of each, alternated, is reported as rows/s and as the ratio measured/baseline (lower is
better; target ≤ 2.5). Peak memory is the child process's maximum resident set size while importing
``--memory-rows`` rows (target < 300 MB).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlite_utils

FIRST = ["Ana", "José", "María", "Joseph", "Priya", "Kenji", "Lucía", "Sophie", "Karin", "Nguyễn", "Olúwaseun"]
LAST = ["Rodríguez", "Mensah", "Fernández", "Raman", "Watanabe", "Laurent", "Berg", "Rossi", "Pérez", "Okafor"]
LANGS = ["es", "English", "Español", "en-GB", "", "es-CO", "ES", "Inglés"]
REGIONS = ["Latin America", "Europe", "Africa", "Asia", "North America", "Middle East"]


def generate(path: Path, rows: int, seed: int = 2019) -> None:
    """A realistic partner list: ~3,000 cities (one domain each), accents, mixed language spellings."""
    rng = random.Random(seed)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["Full name", "E-mail", "City", "Country", "Region", "Preferred language", "Position"])
        for i in range(rows):
            city = i % 3000
            name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
            writer.writerow(
                [
                    name,
                    f"officer.{i}@city{city}.example.org",
                    f"City {city}",
                    f"Country {city % 190}",
                    REGIONS[city % len(REGIONS)],
                    rng.choice(LANGS),
                    "International Affairs Officer",
                ]
            )


def baseline(csv_path: Path, db_path: Path) -> float:
    start = time.perf_counter()
    db = sqlite_utils.Database(db_path)
    with open(csv_path, newline="", encoding="utf-8") as fh:
        db["contacts"].insert_all(csv.DictReader(fh), batch_size=1000)
    db.close()
    return time.perf_counter() - start


def measured(csv_path: Path, db_path: Path) -> float:
    from surveybot.contacts.importer import import_contacts
    from surveybot.db import open_db

    db = open_db(db_path)
    start = time.perf_counter()
    report = import_contacts(db, csv_path, "Bench")
    elapsed = time.perf_counter() - start
    assert report.imported == report.rows and report.rejected == 0, report.counts()
    db.close()
    return elapsed


def peak_memory_mb(rows: int, folder: Path) -> tuple[float, float]:
    """Import ``rows`` rows in a child process; return (peak RSS in MB, seconds)."""
    csv_path = folder / "big.csv"
    generate(csv_path, rows)
    code = (
        "import sys, time; from surveybot.db import open_db; from surveybot.contacts.importer import "
        "import_contacts; db = open_db(sys.argv[2]); t = time.perf_counter(); "
        "r = import_contacts(db, sys.argv[1], 'Bench'); print(time.perf_counter() - t, r.imported)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(csv_path), str(folder / "big.db")], capture_output=True, text=True, check=True
    )
    seconds, imported = result.stdout.split()
    assert int(imported) == rows
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, float(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--memory-rows", type=int, default=1_000_000, help="0 to skip the memory check")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to FILE as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        csv_path = folder / "contacts.csv"
        generate(csv_path, args.rows)
        bare, ours = [], []
        for n in range(args.repeat):
            bare.append(baseline(csv_path, folder / f"bare{n}.db"))
            ours.append(measured(csv_path, folder / f"ours{n}.db"))
        b, o = min(bare), min(ours)
        print(f"rows: {args.rows:,}")
        print(f"baseline (csv + sqlite-utils insert_all): {args.rows / b:,.0f} rows/s ({b:.2f} s)")
        print(f"surveybot contacts import:               {args.rows / o:,.0f} rows/s ({o:.2f} s)")
        print(f"ratio import/baseline: {o / b:.2f} (target <= 2.5)")
        if args.memory_rows:
            peak, seconds = peak_memory_mb(args.memory_rows, folder)
            print(
                f"peak memory importing {args.memory_rows:,} rows: {peak:.0f} MB in {seconds:.1f} s (target < 300 MB)"
            )
        if args.json:
            figures = {
                "rows": args.rows,
                "baseline_rows_per_s": args.rows / b,
                "surveybot_rows_per_s": args.rows / o,
                "ratio": o / b,  # time ratio: lower is better
                "target_ratio_max": 2.5,
                "memory_rows": args.memory_rows,
                "peak_memory_mb": peak if args.memory_rows else None,
                "memory_seconds": seconds if args.memory_rows else None,
                "target_memory_mb_max": 300,
            }
            args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
