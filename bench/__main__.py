"""Run the benchmarks and print one table: each figure beside its bare baseline, the ratio and the target.

    python -m bench [--quick] [--only import|send|webhook|dashboard|pull|soak]... [--soak] [--json FILE]

Each benchmark runs as its own process (``bench/*_bench.py``, the soak ``bench/soak.py``) with its output
forwarded to stderr as progress; its figures come back through its ``--json`` file (the send benchmark's
from the lines it prints). ``--quick`` runs them on small sizes, a smoke test of the whole set rather than
figures to quote. Below the table: how each dashboard page's p95 grows from the small to the large
database, and the soak's summary when it ran. The exit status is 1 if a benchmark could not run or the
soak lost something; a missed target is reported, not an error.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.common import ROOT, machine, progress, write_json

NAMES = ("import", "send", "webhook", "dashboard", "pull", "soak")
FULL: dict[str, list[str]] = {name: [] for name in NAMES}
QUICK: dict[str, list[str]] = {
    "import": ["--rows", "5000", "--repeat", "1", "--memory-rows", "20000"],
    "send": ["--messages", "300", "--launch-contacts", "5000"],
    "webhook": ["--requests", "300", "--warmup", "20", "--repeat", "1"],
    "dashboard": ["--sizes", "1000,3000", "--requests", "5", "--every", "0.05"],
    "pull": ["--responses", "1000"],
    "soak": ["--contacts", "300", "--webhooks", "200", "--minutes", "0.1", "--progress-every", "3"],
}


def command(name: str) -> list[str]:
    if name == "soak":
        return [sys.executable, "-m", "bench.soak"]
    return [sys.executable, str(ROOT / "bench" / f"{name}_bench.py")]


@dataclass
class Row:
    benchmark: str
    surveybot: float | None
    baseline: float | None
    unit: str
    ratio: float | None
    target: str
    met: bool | None


@dataclass
class Outcome:
    name: str
    returncode: int
    output: str
    figures: dict[str, Any] | None
    seconds: float


def run(name: str, extra: list[str], folder: Path) -> Outcome:
    """Run one benchmark, its output forwarded line by line to stderr; its figures from its JSON file."""
    figures_path = folder / f"{name}.json"
    argv = [*command(name), *extra]
    if name != "send":  # the send benchmark only prints its figures
        argv += ["--json", str(figures_path)]
    progress(f"{name}: {' '.join(argv[1:])}")
    started = time.monotonic()
    lines: list[str] = []
    with subprocess.Popen(
        argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            print(f"  [{name}] {line.rstrip()}", file=sys.stderr, flush=True)
    seconds = time.monotonic() - started
    figures = json.loads(figures_path.read_text()) if figures_path.exists() else None
    if name == "send":
        figures = send_figures("".join(lines))
    progress(f"{name}: {'done' if proc.returncode == 0 else f'FAILED (exit {proc.returncode})'} in {seconds:.0f} s")
    return Outcome(name, proc.returncode, "".join(lines), figures, seconds)


def _number(pattern: str, text: str) -> float | None:
    found = re.search(pattern, text)
    return float(found.group(1).replace(",", "")) if found else None


def send_figures(text: str) -> dict[str, Any] | None:
    """The send benchmark's figures, read from the lines it prints."""
    ours = _number(r"surveybot[^:\n]*:\s*([\d,.]+) msgs/s", text)
    bare = _number(r"baseline[^:\n]*:\s*([\d,.]+) msgs/s", text)
    if ours is None or bare is None:
        return None
    return {
        "messages": _number(r"messages: ([\d,]+)", text),
        "surveybot_per_s": ours,
        "baseline_per_s": bare,
        "ratio": ours / bare,
        "launch_contacts": _number(r"launching a wave of ([\d,]+) contacts", text),
        "launch_seconds": _number(r"launching a wave of [\d,]+ contacts[^:\n]*:\s*([\d.]+) s", text),
    }


def rows_for(name: str, f: dict[str, Any]) -> list[Row]:
    if name == "import":
        found = [
            Row(
                f"import, {f['rows']:,} rows",
                f["surveybot_rows_per_s"],
                f["baseline_rows_per_s"],
                "rows/s",
                f["ratio"],
                "time ratio <= 2.5",
                f["ratio"] <= f["target_ratio_max"],
            )
        ]
        if f.get("peak_memory_mb") is not None:
            peak = f["peak_memory_mb"]
            found.append(
                Row(f"import peak memory, {f['memory_rows']:,} rows", peak, None, "MB", None, "< 300 MB", peak < 300)
            )
        return found
    if name == "send":
        found = [
            Row(
                f"send, {f['messages'] or 0:,.0f} messages to SMTP",
                f["surveybot_per_s"],
                f["baseline_per_s"],
                "msgs/s",
                f["ratio"],
                ">= 0.8",
                f["ratio"] >= 0.8,
            )
        ]
        if f.get("launch_seconds") is not None:
            found.append(
                Row(
                    f"launch of a {f['launch_contacts'] or 0:,.0f}-contact wave",
                    f["launch_seconds"],
                    None,
                    "s",
                    None,
                    "< 10 s",
                    f["launch_seconds"] < 10,
                )
            )
        return found
    if name == "webhook":
        p99, bare99 = f["surveybot_p99_ms"], f["baseline_p99_ms"]
        return [
            Row(
                f"webhooks accepted, {f['concurrency']} concurrent",
                f["surveybot_per_s"],
                f["baseline_per_s"],
                "/s",
                f["ratio"],
                ">= 0.5",
                f["ratio"] >= f["target_ratio_min"],
            ),
            Row("webhook latency p99", p99, bare99, "ms", p99 / bare99 if bare99 else None, "< 50 ms", p99 < 50),
            Row(
                "webhook inbox rows per accepted",
                f["inbox_rows"],
                f["accepted"],
                "",
                f["inbox_rows"] / f["accepted"] if f["accepted"] else None,
                "= 1",
                f["inbox_rows"] == f["accepted"],
            ),
        ]
    if name == "dashboard":
        return dashboard_rows(f)
    if name == "pull":
        return [
            Row(
                f"Qualtrics export pulled, {f['responses']:,} responses",
                f["surveybot_per_s"],
                f["baseline_per_s"],
                "responses/s",
                f["ratio"],
                "-",
                None,
            ),
            Row(
                "pull peak memory (Python)",
                f["surveybot_peak_mb"],
                f["baseline_peak_mb"],
                "MB",
                f["surveybot_peak_mb"] / f["baseline_peak_mb"] if f["baseline_peak_mb"] else None,
                "flat",
                None,
            ),
        ]
    if name == "soak":
        hook, mem = f["webhook"], f["memory_mb"]
        return [
            Row(
                f"soak webhook p99 ({f['webhooks']:,} in {f['minutes']:g} min)",
                hook["p99_ms"],
                None,
                "ms",
                None,
                "-",
                None,
            ),
            Row(
                f"soak serve memory growth (RSS {mem['start']:.0f} MB at start, peak {mem['peak']:.0f} MB)",
                mem["growth"],
                None,
                "MB",
                None,
                "-",
                None,
            ),
            Row("soak nothing lost", sum(f["problems"].values()), None, "lost", None, "0", f["nothing_lost"]),
        ]
    return []


def growth(f: dict[str, Any]) -> list[dict[str, Any]]:
    """Each page and mode: p95 and the figures' compute time at the smallest and the largest size."""
    small, large = min(f["sizes"]), max(f["sizes"])
    by = {(p["page"], p["mode"], p["size"]): p for p in f["pages"]}
    found = []
    for page, mode in dict.fromkeys((p["page"], p["mode"]) for p in f["pages"]):
        a, b = by[(page, mode, small)], by[(page, mode, large)]
        found.append(
            {
                "page": page,
                "mode": mode,
                "small": small,
                "large": large,
                "p95_small_ms": a["p95"],
                "p95_large_ms": b["p95"],
                "p95_ratio": b["p95"] / a["p95"] if a["p95"] else None,
                "compute_small_ms": a["compute"],
                "compute_large_ms": b["compute"],
                "compute_ratio": b["compute"] / a["compute"] if a["compute"] else None,
            }
        )
    return found


def dashboard_rows(f: dict[str, Any]) -> list[Row]:
    grown = growth(f)
    slowest = max(grown, key=lambda g: g["p95_large_ms"])
    steepest = max(grown, key=lambda g: g["p95_ratio"] or 0.0)
    return [
        Row(
            f"dashboard p95 at {slowest['large']:,} (slowest: {slowest['page']}, {slowest['mode']})",
            slowest["p95_large_ms"],
            slowest["p95_small_ms"],
            "ms",
            slowest["p95_ratio"],
            "< 200 ms",
            slowest["p95_large_ms"] < f["target_p95_ms_max"],
        ),
        Row(
            f"dashboard growth {steepest['small']:,}->{steepest['large']:,} "
            f"(steepest: {steepest['page']}, {steepest['mode']})",
            steepest["p95_large_ms"],
            steepest["p95_small_ms"],
            "ms",
            steepest["p95_ratio"],
            "ratio < 3",
            steepest["p95_ratio"] is not None and steepest["p95_ratio"] < f["target_growth_max"],
        ),
    ]


def _figure(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,} {unit}".strip()
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"
    return f"{text} {unit}".strip()


def table(rows: list[Row]) -> list[str]:
    cells = [["benchmark", "surveybot", "baseline", "ratio", "target", "met?"]]
    for r in rows:
        met = "-" if r.met is None else "met" if r.met else "MISSED"
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}" if r.ratio < 10 else f"{r.ratio:,.0f}"
        cells.append([r.benchmark, _figure(r.surveybot, r.unit), _figure(r.baseline, r.unit), ratio, r.target, met])
    widths = [max(len(c[i]) for c in cells) for i in range(len(cells[0]))]
    lines = []
    for n, c in enumerate(cells):
        lines.append("  ".join(c[0].ljust(widths[0]) if i == 0 else c[i].rjust(widths[i]) for i in range(len(c))))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def growth_table(grown: list[dict[str, Any]]) -> list[str]:
    small, large = grown[0]["small"], grown[0]["large"]
    lines = [
        f"dashboard cost from {small:,} to {large:,} contacts (p95 of a page request; compute: its figures "
        "computed once, nothing kept)",
        f"{'page':<24}{'mode':<9}{f'p95 {small:,}':>12}{f'p95 {large:,}':>14}{'ratio':>8}"
        f"{f'compute {small:,}':>16}{f'compute {large:,}':>18}{'ratio':>8}",
    ]
    for g in grown:
        p95r = "-" if g["p95_ratio"] is None else f"{g['p95_ratio']:.2f}x"
        cr = "-" if g["compute_ratio"] is None else f"{g['compute_ratio']:.1f}x"
        lines.append(
            f"{g['page']:<24}{g['mode']:<9}{g['p95_small_ms']:>9.1f} ms{g['p95_large_ms']:>11.1f} ms{p95r:>8}"
            f"{g['compute_small_ms']:>13.1f} ms{g['compute_large_ms']:>15.1f} ms{cr:>8}"
        )
    return lines


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test of every benchmark (< 60 s)")
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help=f"run only this benchmark ({', '.join(NAMES)}); repeat or separate with commas for several",
    )
    parser.add_argument("--soak", action="store_true", help="include the soak (5 minutes; seconds with --quick)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="save the table and every figure to FILE")
    args = parser.parse_args(argv)
    chosen = [n.strip() for item in args.only or [] for n in item.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in NAMES]
    if unknown:
        parser.error(f"--only: no benchmark named {', '.join(unknown)} (choose from {', '.join(NAMES)})")
    args.names = [n for n in NAMES if n in chosen] if chosen else [n for n in NAMES if n != "soak" or args.soak]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    before = machine()
    progress(f"running {', '.join(args.names)}{' (quick)' if args.quick else ''}; {before}")
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="surveybot-bench-") as tmp:
        for name in args.names:
            outcomes.append(run(name, (QUICK if args.quick else FULL)[name], Path(tmp)))
    rows: list[Row] = []
    failed: list[str] = []
    grown: list[dict[str, Any]] = []
    for outcome in outcomes:
        broken = outcome.figures is None or (outcome.returncode != 0 and outcome.name != "soak")
        if broken:
            failed.append(outcome.name)
            rows.append(Row(f"{outcome.name}: FAILED (exit {outcome.returncode})", None, None, "", None, "-", False))
            continue
        assert outcome.figures is not None
        rows.extend(rows_for(outcome.name, outcome.figures))
        if outcome.name == "dashboard":
            grown = growth(outcome.figures)
    soak = next((o.figures for o in outcomes if o.name == "soak" and o.figures), None)
    after = machine()

    print(f"surveybot benchmarks{' (quick sizes: a smoke test, not figures to quote)' if args.quick else ''}")
    print(
        f"{after['cpus']} CPUs; load average before {before['load_average'][0]}, after {after['load_average'][0]}; "
        "ratio = surveybot/baseline (import: time ratio, lower is better; dashboard: baseline = same page at "
        "the small size)"
    )
    print()
    for line in table(rows):
        print(line)
    if grown:
        print()
        for line in growth_table(grown):
            print(line)
    if soak:
        print()
        soak_lines = next(o.output for o in outcomes if o.name == "soak").splitlines()
        for line in soak_lines:
            if not line.startswith("["):  # its progress lines were on stderr already
                print(line)
    if failed:
        print(f"\nnot run to the end: {', '.join(failed)} (its output is above, on stderr)")
    if args.json:
        write_json(
            args.json,
            {
                "quick": args.quick,
                "benchmarks": args.names,
                "machine_before": before,
                "machine_after": after,
                "rows": [asdict(r) for r in rows],
                "dashboard_growth": grown,
                "soak": soak,
                "failed": failed,
                "figures": {o.name: o.figures for o in outcomes},
                "seconds": {o.name: round(o.seconds, 1) for o in outcomes},
            },
        )
    lost = soak is not None and not soak["nothing_lost"]
    return 1 if failed or lost else 0


if __name__ == "__main__":
    sys.exit(main())
