"""Run every benchmark and rewrite docs/benchmarks.md with the command, the machine and every
figure.

    python benchmarks/run.py            # the full run (about 10 minutes on 2 cores)
    python benchmarks/run.py --quick    # a smoke run with small inputs; prints, writes nothing
    python tasks.py bench               # the same full run, from the project's task list

Each benchmark runs in its own process (``benchmarks/NAME.py --json FILE``), and each of those
starts the emulator as a further process, so no figure is taken with the server and the client
in one interpreter. Scripts that other parts of the project own (``emulator_throughput.py``,
``video_decode.py``) run too when present; their sections of docs/benchmarks.md, between
``<!-- section: NAME -->`` and ``<!-- end section: NAME -->``, are kept as those scripts leave
them, and so is the hand-written ``analysis`` section.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import DOC, ROOT, Result, machine, markdown_table, marked_section, print_result

HERE = Path(__file__).resolve().parent
OURS = ("throughput", "overhead", "memory")
# Scripts owned elsewhere: (file, section name, heading).
THEIRS = (
    ("rate_limit.py", "rate-limit", "Under a rate limit"),
    ("emulator_throughput.py", "emulator-throughput", "Emulator throughput"),
    ("video_decode.py", "video-decoding", "Video decoding"),
    ("token_estimate.py", "token-estimate", "Token estimate"),
    ("cache_hits.py", "cache-hits", "Cache hits"),
    ("index_search.py", "index-search", "Index search"),
    ("index_build.py", "index-build", "Index build"),
    ("ray_images.py", "ray-images", "Ray Data on one machine"),
)
KEPT = "analysis"
TIMEOUT = 900


def run_ours(name: str, quick: bool) -> Result:
    with tempfile.TemporaryDirectory(prefix="tongyi-bench-") as scratch:
        output = Path(scratch) / f"{name}.json"
        command = [sys.executable, str(HERE / f"{name}.py"), "--json", str(output)]
        if quick:
            command.append("--quick")
        print(f"\n$ {' '.join(command[1:])}", flush=True)
        started = time.perf_counter()
        try:
            code = subprocess.call(command, cwd=ROOT, timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            code = -1
        if code == 0 and output.exists():
            return Result.from_json(json.loads(output.read_text()))
        failed = Result(name, name.replace("_", " ").capitalize())
        failed.notes.append(f"the benchmark failed (exit {code}); see its output above")
        failed.seconds = time.perf_counter() - started
        return failed


def run_theirs(script: str, quick: bool) -> str | None:
    """Run another part's benchmark script; returns its stdout, or None when it is absent."""
    path = HERE / script
    if not path.exists():
        return None
    command = [sys.executable, str(path)]
    if quick:
        usage = subprocess.run(
            [*command, "--help"], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout
        if "--quick" in usage:
            command.append("--quick")
        elif "--seconds" in usage:
            command += ["--seconds", "2"]
    print(f"\n$ {' '.join(command[1:])}", flush=True)
    try:
        done = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        return f"(timed out after {TIMEOUT} s)"
    print(done.stdout, end="", flush=True)
    if done.returncode != 0:
        print(done.stderr[-2000:], file=sys.stderr, flush=True)
        return f"(failed with exit {done.returncode})\n{done.stdout}"
    return done.stdout


def section(text: str, name: str, heading: str | None = None) -> str | None:
    """A marked section of the current page, or the part under ``## heading`` when unmarked."""
    marked = re.search(
        rf"<!-- section: {re.escape(name)}\b.*?-->\n(.*?)<!-- end section: {re.escape(name)} -->",
        text,
        re.S,
    )
    if marked:
        return marked.group(1).strip("\n")
    if heading:
        found = re.search(
            rf"^## {re.escape(heading)}\s*\n(.*?)(?=^## |^<!-- |\Z)", text, re.S | re.M
        )
        if found:
            return f"## {heading}\n\n{found.group(1).strip()}"
    return None


def fresh_section(stdout: str | None, script: str, heading: str) -> str | None:
    """The markdown a script printed in this run, so the page holds this run's figures: from
    its ``## heading`` on, or all of it under that heading when it printed none."""
    if not stdout or not stdout.strip():
        return None
    found = re.search(rf"^## {re.escape(heading)}\s*$", stdout, re.M)
    if found:
        return stdout[found.start() :].strip()
    if stdout.startswith("("):  # failed or timed out: say so, with its output
        return f"## {heading}\n\n```\n{stdout.strip()}\n```"
    command = f"python benchmarks/{script}"
    return f"## {heading}\n\n```\n{command}\n```\n\n{stdout.strip()}"


def render(
    results: list[Result],
    theirs: dict[str, str | None],
    previous: str,
    quick: bool,
    total: float,
    commit_at_start: str,
) -> str:
    info = machine()
    commit = info["commit"]
    if commit != commit_at_start:
        commit = (
            f"{commit_at_start} at the start, {commit} at the end (the code changed during the run)"
        )
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        "# Benchmarks",
        "",
        "Every figure on this page comes from one run of one command, on the machine described "
        "below, against the emulator running as a separate process on 127.0.0.1:",
        "",
        "```",
        "python benchmarks/run.py          # or: python tasks.py bench",
        "```",
        "",
        "`python benchmarks/run.py --quick` (or any `benchmarks/NAME.py --quick`) is a smoke run "
        "with small inputs that prints its figures and writes nothing. Timings on a shared "
        "2-core machine are noisy, so figures are compared within one run, as ratios; no test "
        "asserts a timing.",
        "",
        "## The run",
        "",
        f"- date: {now}{' (quick run: small inputs)' if quick else ''}; "
        f"{total / 60:.1f} minutes in all",
        f"- machine: {info['cpu']}, {info['cores']} cores, {info['ram_gib']} GiB RAM, {info['os']}",
        f"- Python {info['python']}; commit {commit} (-dirty: the work tree held uncommitted "
        "changes, which the run used)"
        if "dirty" in commit
        else f"- Python {info['python']}; commit {commit}",
        "- packages: "
        + ", ".join(f"{name} {version}" for name, version in info["packages"].items()),
        "",
        "## Targets",
        "",
        "| benchmark | target | met | figures |",
        "|---|---|---|---|",
    ]
    for result in results:
        for target in result.targets:
            mark = {True: "yes", False: "**no**", None: "-"}[target.met]
            out.append(f"| {result.title} | {target.goal} | {mark} | {target.detail} |")
    kept = section(previous, KEPT)
    if kept:
        out += ["", marked_section(KEPT, "hand, after reading the figures", kept)]
    for result in results:
        out += ["", f"## {result.title}", ""]
        out += [f"- {line}" for line in result.setup]
        for table in result.tables:
            out += [""]
            if table.title:
                out += [f"**{table.title}**", ""]
            out += [markdown_table(table)]
        if result.notes:
            out += [""] + [f"- {note}" for note in result.notes]
        out += ["", f"_{result.seconds:.0f} s._"]
    for script, name, heading in THEIRS:
        body = fresh_section(theirs.get(script), script, heading) or section(
            previous, name, heading
        )
        if body is None:
            body = f"## {heading}\n\n`benchmarks/{script}` is not there yet."
        out += ["", marked_section(name, f"benchmarks/{script}", body)]
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small inputs; writes nothing")
    parser.add_argument(
        "--only", nargs="+", choices=OURS, help="run only these of our benchmarks (no page)"
    )
    parser.add_argument(
        "--doc",
        type=Path,
        help="write the page here (default: with a full run, docs/benchmarks.md)",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    commit_at_start = machine()["commit"]
    names = args.only or list(OURS)
    results = []
    for name in names:
        result = run_ours(name, args.quick)
        results.append(result)
    theirs = {} if args.only else {script: run_theirs(script, args.quick) for script, *_ in THEIRS}
    print("\n\n######## summary")
    for result in results:
        print_result(result)
    target = args.doc or (None if args.quick or args.only else DOC)
    if target is not None:
        previous = DOC.read_text() if DOC.exists() else ""
        target.parent.mkdir(parents=True, exist_ok=True)
        total = time.perf_counter() - started
        page = render(results, theirs, previous, args.quick, total, commit_at_start)
        target.write_text(page)
        print(f"\nwrote {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
