#!/usr/bin/env python3
"""Every job of the project, for people and CI alike: ``python tasks.py JOB``.

The first run makes a virtual environment in ``.venv`` and installs the
project into it with every extra and the dev tools; later runs reuse it and
reinstall only when ``pyproject.toml`` changed. Only Python and pip are needed.

Jobs:
  demo         run `tongyi-vision demo` (emulator unless an API key is set)
  check        everything CI runs: lint, typecheck, unit, integration, coverage, examples, docs
  lint         ruff check, ruff format --check, and the import contracts (lint-imports)
  format       ruff format and ruff check --fix
  typecheck    mypy --strict on src/, tests/ and integration_tests/
  unit         unit tests (tests/conftest.py blocks network sockets), with coverage
  integration  tests against a real emulator process on 127.0.0.1, with coverage
  coverage     the coverage report of the last unit and integration runs
  examples     run every script in examples/ against the emulator
  docs         build the documentation (and its API reference) with mkdocs, strict
  bench        run every benchmark and rewrite docs/benchmarks.md
  screenshots  drive the web page in headless Chromium and rewrite the pictures in docs/images/
  system       install the system packages some tests drive (Chromium, its driver, Redis)
  install      only create or update .venv
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("TONGYI_VISION_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".tongyi-vision-installed"
LINT_PATHS = [
    "src",
    "tests",
    "integration_tests",
    "examples",
    "benchmarks",
    "docs/hooks.py",
    "docs/screenshots.py",
    "tasks.py",
]


def run(*args: str | Path, env: dict[str, str] | None = None) -> None:
    """Run a command from the repository root; stop with its exit code if it fails."""
    printable = " ".join(str(a) for a in args)
    print(f"\n$ {printable}", flush=True)
    merged = {**os.environ, **(env or {})}
    code = subprocess.call([str(a) for a in args], cwd=ROOT, env=merged)
    if code != 0:
        print(f"\nfailed ({code}): {printable}", file=sys.stderr)
        sys.exit(code)


def install() -> None:
    """Create .venv and install the project with all extras and dev tools, when needed."""
    if not PYTHON.exists():
        run(sys.executable, "-m", "venv", VENV)
    pyproject = ROOT / "pyproject.toml"
    if STAMP.exists() and STAMP.stat().st_mtime >= pyproject.stat().st_mtime:
        return
    run(PYTHON, "-m", "pip", "install", "--disable-pip-version-check", "-q", "-e", ".[all,dev]")
    STAMP.touch()


# Debian packages the browser and Redis tests drive: command -> package.
SYSTEM_PACKAGES = {
    "chromium": "chromium",
    "chromedriver": "chromium-driver",
    "redis-server": "redis-server",
}


def system() -> None:
    """Install the missing system packages with apt-get, when this is a Debian machine run as
    root; elsewhere say what is missing (the tests that need it skip, unless
    TONGYI_VISION_REQUIRE_SYSTEM=1, as in CI, makes them fail)."""
    import shutil

    missing = sorted({pkg for cmd, pkg in SYSTEM_PACKAGES.items() if shutil.which(cmd) is None})
    if not missing:
        return
    apt = shutil.which("apt-get")
    if apt is None or not hasattr(os, "geteuid") or os.geteuid() != 0:
        print(f"not installed (tests that need them skip): {', '.join(missing)}", file=sys.stderr)
        return
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    run(apt, "update", "-q", env=env)
    run(apt, "install", "-y", "-q", "--no-install-recommends", *missing, env=env)


def tool(name: str) -> Path:
    return BIN / name


def demo() -> None:
    run(tool("tongyi-vision"), "demo")


def lint() -> None:
    run(tool("ruff"), "check", *LINT_PATHS)
    run(tool("ruff"), "format", "--check", *LINT_PATHS)
    # The one-way arrows between the layers, and no import cycle (pyproject.toml).
    run(tool("lint-imports"))


def format_() -> None:
    run(tool("ruff"), "format", *LINT_PATHS)
    run(tool("ruff"), "check", "--fix", *LINT_PATHS)


def typecheck() -> None:
    run(tool("mypy"))  # the files and settings are in pyproject.toml


# pytest exits with 5 when it collects no test: a folder emptied by mistake must fail too.
PYTEST = ("-m", "pytest", "-p", "no:cacheprovider", "-q", "--cov=tongyi_vision", "--cov-report=")


def unit() -> None:
    # tests/conftest.py blocks network sockets itself, so no flag is needed for that here.
    run(PYTHON, *PYTEST, "tests")


def integration() -> None:
    run(PYTHON, *PYTEST, "--cov-append", "integration_tests")


def coverage() -> None:
    run(tool("coverage"), "report", "--skip-covered", "--sort=cover")


def examples() -> None:
    scripts = sorted((ROOT / "examples").glob("*.py"))
    if not scripts:
        print("no examples to run", file=sys.stderr)
        sys.exit(1)
    # An API key in the environment would send the examples to the live service.
    env = {"EMPIRIOLABS_API_KEY": "", "DASHSCOPE_API_KEY": ""}
    for script in scripts:
        run(PYTHON, script, env=env)


def docs() -> None:
    run(tool("mkdocs"), "build", "--strict", "--site-dir", ROOT / "site")


def bench() -> None:
    run(PYTHON, ROOT / "benchmarks" / "run.py")


def screenshots() -> None:
    system()
    run(PYTHON, ROOT / "docs" / "screenshots.py")


def check() -> None:
    started = time.monotonic()
    for job in (lint, typecheck, system, unit, integration, coverage, examples, docs):
        job()
    print(f"\nall checks passed in {time.monotonic() - started:.0f} s")


JOBS: dict[str, Callable[[], None]] = {
    "demo": demo,
    "check": check,
    "lint": lint,
    "format": format_,
    "typecheck": typecheck,
    "unit": unit,
    "integration": integration,
    "coverage": coverage,
    "examples": examples,
    "docs": docs,
    "bench": bench,
    "screenshots": screenshots,
    "system": system,
    "install": lambda: None,
}


def main(argv: Sequence[str]) -> int:
    if not argv or argv[0] not in JOBS:
        print(__doc__)
        return 2
    install()
    for name in argv:
        if name not in JOBS:
            print(f"unknown job {name!r}\n{__doc__}", file=sys.stderr)
            return 2
        JOBS[name]()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
