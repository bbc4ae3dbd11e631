"""Benchmark crmkit against the floors of the machine, at realistic sizes.

    python benchmarks/run.py                    # 1k/10k and 10k/100k
    python benchmarks/run.py --sizes 1000:10000
    python benchmarks/run.py --crmkit OTHER/bin/crmkit --crmkit .venv/bin/crmkit

For each size it generates a workspace (benchmarks/generate.py) and measures,
each in a fresh process, side by side:

* the parse floor: one process reading every file with PyYAML's C loader;
* the I/O floor: an os.scandir walk with a stat of every file;
* cold (no cache), warm (nothing changed: the output is replayed) and
  one-file-changed (from the state the last run kept, no replay) `crmkit check`
  and `crmkit report weekly --format md --out -`;
* `crmkit show` on an unchanged workspace right after `check` (a different
  read-only command: nothing to replay);
* a cold `crmkit build` (no cache, no output folder): every report, the
  calendar and the site with a page per customer;
* `crmkit watch`: the time from saving one file (an edited customer, a logged
  call that resolves an overdue follow-up, a purchase dated today, one dated
  yesterday) to the end of the re-render;
* the peak memory (max RSS) of each crmkit run.

Every timed row is the fastest of three runs (on a machine shared with others,
the fastest run is the one least disturbed); watch rows are medians of three.

With several ``--crmkit`` executables (say, of the last release and of this
checkout), each is measured on the same workspace, one after the other, so that
both tables come from one run on one machine.  Each package's Python files are
compiled first (as pip does when it installs), and before each timed command the
benchmark waits until crmkit's background work after the previous one is done
(docs/performance.md), so that no two runs overlap.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import resource  # noqa: F401  (os.wait4 returns its struct)
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from generate import generate  # noqa: E402

CRMKIT = str(Path(sys.executable).parent / "crmkit")
TODAY = "2026-11-11"
#: Each command is timed this often; the table shows the fastest run.
REPEAT = 3
YESTERDAY = "2026-11-10"
BACKGROUND_LOCK = Path(".crmkit") / "cache" / "background.lock"

PARSE_FLOOR = """
import os, sys, yaml
n = 0
for folder in ("customers", "interactions"):
    for dirpath, _, names in os.walk(os.path.join(sys.argv[1], folder)):
        for name in names:
            with open(os.path.join(dirpath, name), "rb") as f:
                yaml.load(f.read(), Loader=yaml.CSafeLoader)
            n += 1
print(n)
"""
IO_FLOOR = """
import os, sys
def walk(path):
    n = 0
    with os.scandir(path) as it:
        for e in it:
            if e.is_dir(follow_symlinks=False):
                n += walk(e.path)
            else:
                e.stat(); n += 1
    return n
root = sys.argv[1]
print(walk(os.path.join(root, "customers")) + walk(os.path.join(root, "interactions")))
"""


def settle(root: Path) -> None:
    """Wait until crmkit's background work after the last command is done (keeping its
    state, computing the rest of the day's rules: docs/performance.md)."""
    import fcntl

    try:
        fd = os.open(root / BACKGROUND_LOCK, os.O_RDWR)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    finally:
        os.close(fd)


def compile_packages(crmkit: str) -> None:
    """Compile the installation's Python files, as pip does (an editable install, or
    ``PYTHONDONTWRITEBYTECODE``, would compile them on every run instead)."""
    python = str(Path(crmkit).parent / "python")
    found = subprocess.run(
        [python, "-c", "import importlib.util as u\nfor n in ('crmkit', 'crmkit_plugins'):\n"
         "    s = u.find_spec(n)\n    if s: print(*s.submodule_search_locations, sep='\\n')"],
        capture_output=True, text=True, check=True).stdout.split()
    subprocess.run([python, "-m", "compileall", "-q", *found], check=True,
                   stdout=subprocess.DEVNULL)


def fresh(root: Path) -> None:
    """Remove everything crmkit keeps (once its background work is done)."""
    settle(root)
    shutil.rmtree(root / ".crmkit", ignore_errors=True)


def best(repeat: int, prepare: Callable[[], object], args: list[str], cwd: Path
         ) -> tuple[float, float]:
    """The fastest of ``repeat`` runs, each after ``prepare()`` (on a machine shared
    with others, the fastest run is the one least disturbed), and the largest peak."""
    runs = []
    for _ in range(repeat):
        prepare()
        runs.append(timed(args, cwd))
    return min(r[0] for r in runs), max(r[1] for r in runs)


def timed(args: list[str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and peak memory (MB) of one process."""
    settle(cwd)
    started = time.perf_counter()
    process = subprocess.Popen(args, cwd=cwd, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        raise SystemExit(f"{' '.join(args)} failed")
    return elapsed, usage.ru_maxrss / 1024


def watch_changes(crmkit: str, root: Path) -> dict[str, float]:
    """Seconds from saving a file to the end of the re-render, for an edited customer,
    a logged call that resolves an overdue follow-up, a purchase dated today and one
    dated yesterday (the median of three each)."""
    settle(root)
    listed = subprocess.run([crmkit, "--today", TODAY, "reminders", "--format", "json"],
                            cwd=root, capture_output=True, text=True, check=True).stdout
    followed_up = list(dict.fromkeys(
        r["customer"] for r in json.loads(listed) if r["kind"] == "follow_up" and r["overdue"]))
    if len(followed_up) < 3:
        raise SystemExit("the generated workspace has fewer than 3 overdue follow-ups")
    settle(root)
    process = subprocess.Popen([crmkit, "--today", TODAY, "watch"], cwd=root,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in process.stdout], daemon=True).start()

    def wait_for(pattern: str, timeout: float = 600) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if re.search(pattern, line):
                return line
        raise SystemExit(f"watch: no line matching {pattern!r}")

    def save(rel: str, text: str) -> float:
        started = time.perf_counter()
        (root / rel).write_text(text, encoding="utf-8")
        wait_for(re.escape(rel) + ": wrote")
        elapsed = time.perf_counter() - started
        time.sleep(1)
        return elapsed

    wait_for("watching for changes")
    time.sleep(3)  # let the files' mtimes age past the cache's racy window
    customer = root / "customers" / "c000001.yaml"
    original = customer.read_text(encoding="utf-8")
    edits = [save("customers/c000001.yaml", f"{original}notes: changed {n}\n")
             for n in range(3)]
    customer.write_text(original, encoding="utf-8")
    calls = [save(f"interactions/bench-call-{n}.yaml",
                  f"customer: {followed_up[n]}\ndate: {TODAY}\ntype: call\nsummary: caught up\n")
             for n in range(3)]
    purchases = [save(f"interactions/bench-{n}.yaml",
                      f"customer: c00000{n + 2}\ndate: {TODAY}\ntype: purchase\n"
                      f"amount: {100 + n}\n") for n in range(3)]
    yesterdays = [save(f"interactions/bench-y{n}.yaml",
                       f"customer: c00001{n + 2}\ndate: {YESTERDAY}\ntype: purchase\n"
                       f"amount: {100 + n}\n") for n in range(3)]
    process.terminate()
    process.wait(timeout=30)
    for name in [f"bench-{kind}{n}.yaml" for kind in ("", "call-", "y") for n in range(3)]:
        (root / "interactions" / name).unlink()
    return {"customer edited": sorted(edits)[1],
            "call logged": sorted(calls)[1],
            "purchase dated today added": sorted(purchases)[1],
            "purchase dated yesterday added": sorted(yesterdays)[1]}


def touch_one_file(root: Path) -> None:
    """Change one interaction file (backdated past the racy window): the next run
    cannot replay, and parses just that file."""
    target = next((root / "interactions").rglob("*.yaml"))
    stat = target.stat()
    target.write_text(target.read_text(encoding="utf-8") + "# changed\n", encoding="utf-8")
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def bench(customers: int, interactions: int, executables: list[str]
          ) -> dict[str, list[tuple[str, float, str, str]]]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ws"
        generate(root, customers, interactions)
        past = time.time() - 3600
        for path in root.rglob("*"):
            os.utime(path, (past, past))
        parse_floor, _ = best(REPEAT, lambda: None,
                              [sys.executable, "-c", PARSE_FLOOR, str(root)], root)
        io_floor, _ = best(REPEAT, lambda: None,
                           [sys.executable, "-c", IO_FLOOR, str(root)], root)
        tables = {}
        for crmkit in executables:
            rows = [("parse floor (1 process, C loader)", parse_floor, "", ""),
                    ("I/O floor (scandir + stat)", io_floor, "", "")]
            for name, args in (("check", ["check"]),
                               ("report weekly", ["report", "weekly", "--format", "md",
                                                  "--out", "-"])):
                command = [crmkit, "--today", TODAY, *args]
                cold, cold_mem = best(REPEAT, lambda: fresh(root), command, root)
                warm, warm_mem = best(REPEAT, lambda: None, command, root)
                rows.append((f"cold {name}", cold, f"{cold / parse_floor:.2f}× parse floor",
                             f"{cold_mem:.0f} MB"))
                rows.append((f"warm {name}", warm, f"{warm / io_floor:.2f}× I/O floor",
                             f"{warm_mem:.0f} MB"))
                changed, changed_mem = best(REPEAT, lambda: touch_one_file(root), command,
                                            root)
                rows.append((f"{name}, one file changed", changed,
                             f"{changed / io_floor:.2f}× I/O floor", f"{changed_mem:.0f} MB"))

            def after_check(crmkit: str = crmkit) -> None:
                fresh(root)
                timed([crmkit, "--today", TODAY, "check"], root)

            show, show_mem = best(REPEAT, after_check,
                                  [crmkit, "--today", TODAY, "show", "c000042"], root)
            rows.append(("show after check (unchanged workspace)", show,
                         f"{show / io_floor:.2f}× I/O floor", f"{show_mem:.0f} MB"))

            def no_site(root: Path = root) -> None:
                fresh(root)
                shutil.rmtree(root / "out", ignore_errors=True)

            built, built_mem = best(REPEAT, no_site, [crmkit, "--today", TODAY, "build"], root)
            rows.append(("cold build (reports, calendar, every customer page)", built,
                         f"{built / parse_floor:.2f}× parse floor", f"{built_mem:.0f} MB"))
            for what, seconds in watch_changes(crmkit, root).items():
                rows.append((f"watch: {what} → re-rendered", seconds, "", ""))
            fresh(root)
            tables[crmkit] = rows
        return tables


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="*", default=["1000:10000", "10000:100000"],
                        help="CUSTOMERS:INTERACTIONS pairs")
    parser.add_argument("--crmkit", action="append", metavar="EXECUTABLE",
                        help="a crmkit executable to measure (repeatable; default: the one "
                             "next to this Python)")
    args = parser.parse_args()
    executables = args.crmkit or [CRMKIT]
    for crmkit in executables:
        compile_packages(crmkit)
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    for size in args.sizes:
        customers, interactions = (int(x) for x in size.split(":"))
        for crmkit, rows in bench(customers, interactions, executables).items():
            print(f"\n{customers} customers / {interactions} interactions: {crmkit}")
            print(f"{'':54}{'seconds':>9}  {'ratio':<22}{'peak memory':>11}")
            for name, seconds, ratio, memory in rows:
                print(f"{name:54}{seconds:>9.2f}  {ratio:<22}{memory:>11}")


if __name__ == "__main__":
    main()
