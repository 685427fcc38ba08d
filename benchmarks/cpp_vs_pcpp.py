"""Benchmark: the collection's LCFG preprocessor (plugins/plugin_utils/lcfg/cpp.py) against pcpp.

Three parts, GNU cpp (``cpp -P``) as the reference where it is installed:

1. Correctness on the repository's profiles (tests/fixtures/profiles, lcfg/profiles and
   lcfg/seed/): the active statement lines each preprocessor produces, whitespace
   collapsed, blank lines dropped, compared line by line.
2. One small case per feature: object-like and function-like macros, ``##``, ``#line``,
   ``#if`` arithmetic, macros in string literals, comments across lines, error positions
   (``#error`` in an included header, an unterminated ``#if``, after ``#line``), and an
   ``#include`` outside the include path (profiles are untrusted).
3. Speed on the inventory benchmark's synthetic site (benchmarks/inventory/run.py's
   generator; default 2,000 profiles, 10 guests each): every profile preprocessed in one
   process, median of N repetitions, the two interleaved. Ours starts each repetition with
   an empty header cache (as one ``ansible-inventory`` run does) and expands the macros of
   every statement, as the statement reader would.

    .venv/bin/python benchmarks/cpp_vs_pcpp.py               # full size, 5 repetitions
    .venv/bin/python benchmarks/cpp_vs_pcpp.py --hosts 200 --runs 3

Needs pcpp (requirements.txt, a dev tool only: the collection does not use it).
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / ".collections"))
sys.path.insert(0, str(ROOT / "benchmarks" / "inventory"))

import pcpp  # noqa: E402
from run import HEADER, HW, MACROS, profile_text  # noqa: E402

from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg import cpp as ours  # noqa: E402
from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg.errors import LcfgError  # noqa: E402

OUT = ROOT / "benchmarks" / "output" / "cpp"
GNU_CPP = shutil.which("cpp")


class Failed(Exception):
    """A preprocessor rejected its input: ``where`` is "file:line" (or None), ``message`` why."""

    def __init__(self, where: str | None, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message


def _lines(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        line = " ".join(line.split())
        if line and not line.startswith("#"):
            out.append(line)
    return out


def run_ours(path: Path, include: list[Path]) -> list[str]:
    pp = ours.Preprocessor(include_path=[str(p) for p in include])
    out: list[str] = []

    def on_statement(_file: str, ll: ours.LogicalLine) -> None:
        out.append(" ".join(pp.expand(ll.text).split()))

    try:
        pp.run(str(path), None, on_statement)
    except LcfgError as exc:
        where = f"{os.path.basename(exc.file)}:{exc.line}" if exc.file and exc.line else exc.file
        raise Failed(where, exc.problem) from None
    return [line for line in out if line]


class _Pcpp(pcpp.Preprocessor):
    def __init__(self) -> None:
        super().__init__()
        self.line_directive = None  # like cpp -P
        self.errors: list[tuple[str, int, str]] = []

    def on_error(self, file: str, line: int, msg: str) -> None:
        self.errors.append((file, line, " ".join(msg.split())))
        self.return_code += 1

    def on_directive_unknown(self, directive, toks, ifpassthru, precedingtoks):  # noqa: ANN001
        if directive.value == "error":  # the default prints to stderr and goes on
            self.on_error(directive.source, directive.lineno, "#error " + "".join(t.value for t in toks).strip())
            return True
        if directive.value == "warning":
            return True
        return super().on_directive_unknown(directive, toks, ifpassthru, precedingtoks)

    def on_include_not_found(self, is_malformed, is_system_include, curdir, includepath):  # noqa: ANN001
        self.on_error(self.lastdirective.source, self.lastdirective.lineno, f"include not found: {includepath}")
        raise pcpp.OutputDirective(pcpp.Action.IgnoreAndRemove)


def run_pcpp(path: Path, include: list[Path]) -> list[str]:
    p = _Pcpp()
    for d in include:
        p.add_path(str(d))
    p.parse(path.read_text(), str(path))
    buf = io.StringIO()
    p.write(buf)
    if p.errors:
        file, line, msg = p.errors[0]
        raise Failed(f"{os.path.basename(file)}:{line}", msg)
    return _lines(buf.getvalue())


def run_gnu(path: Path, include: list[Path]) -> list[str]:
    cmd = [GNU_CPP, "-P", "-undef", "-nostdinc", "-w", *[f"-I{d}" for d in include], str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode:
        m = re.search(r"^(\S+?):(\d+):(?:\d+:)? (?:fatal )?error: (.*)$", proc.stderr, re.M)
        if m:
            raise Failed(f"{os.path.basename(m.group(1))}:{m.group(2)}", m.group(3))
        raise Failed(None, proc.stderr.strip())
    return _lines(proc.stdout)


RUNNERS = {"ours": run_ours, "pcpp": run_pcpp}
if GNU_CPP:
    RUNNERS["gnu cpp"] = run_gnu


def outcome(fn, path: Path, include: list[Path]) -> tuple[str, object]:  # noqa: ANN001
    try:
        return "ok", fn(path, include)
    except Failed as exc:
        return "error", (exc.where, exc.message)
    except Exception as exc:  # a crash is an outcome too
        return "crash", f"{type(exc).__name__}: {exc}"


# ---------------------------------------------------------------- 1. the repository's profiles


def repo_profiles() -> list[tuple[Path, list[Path]]]:
    fixtures = ROOT / "tests" / "fixtures" / "profiles"
    sets = [
        (fixtures / "source", [fixtures / "include"]),
        (fixtures / "variants", [fixtures / "include"]),
        (ROOT / "lcfg" / "profiles", [ROOT / "lcfg" / "include"]),
        (ROOT / "lcfg" / "seed", [ROOT / "lcfg" / "include"]),
    ]
    return [(p, inc) for d, inc in sets for p in sorted(d.iterdir()) if p.is_file()]


def compare_repo() -> int:
    """GNU cpp (C mode) cuts a line at ``//``; LCFG profiles keep URLs (docs/lcfg-language.md)."""
    print("1. The repository's profiles: active statements, compared with", "GNU cpp -P" if GNU_CPP else "ours")
    differing = 0
    for path, include in repo_profiles():
        results = {name: outcome(fn, path, include) for name, fn in RUNNERS.items()}
        ref = results.get("gnu cpp", results["ours"])
        verdict = []
        for name, res in results.items():
            if name == "gnu cpp":
                continue
            same = res == ref
            url_only = (
                not same
                and res[0] == ref[0] == "ok"
                and len(res[1]) == len(ref[1])
                and all(a == b or ("//" in a and a.startswith(b.rstrip())) for a, b in zip(res[1], ref[1], strict=True))
            )
            differing += not same
            word = "same" if same else "differs only by keeping // (LCFG)" if url_only else "DIFFERS"
            verdict.append(f"{name} {word}")
        lines = len(ref[1]) if ref[0] == "ok" else ref
        print(f"   {path.relative_to(ROOT)}: {lines} lines; {', '.join(verdict)}")
        if ref[0] == "ok":
            for name, res in results.items():
                if res != ref and res[0] == "ok":
                    for mine, theirs in zip(res[1], ref[1], strict=False):
                        if mine != theirs:
                            print(f"      {name}: {mine!r}, reference: {theirs!r}")
                            break
    return differing


# ---------------------------------------------------------------- 2. one case per feature

CASES: list[tuple[str, dict[str, str]]] = [
    ("object-like macro", {"p": "#define MEM 512\n!xen.memory_a mSET(MEM)\n"}),
    ("function-like macro", {"p": "#define MEM(n) n ## 00\n#define TWICE(x) x x\n!a.b mSET(TWICE(y))\n"}),
    ("token pasting ##", {"p": "#define CAT(a, b) a ## b\n!xen.name_g mSET(CAT(web, 01))\n"}),
    ("#line then a statement", {"p": '#line 100 "other"\n!a.b mSET(c)\n'}),
    ("URL with // (LCFG: not a comment)", {"p": "!a.url mSET(http://lcfg.example.org/profiles/)\n"}),
    (
        "#if arithmetic",
        {"p": "#define N 4\n#if N * 2 > 7 && defined(N)\n!a.b mSET(yes)\n#else\n!a.b mSET(no)\n#endif\n"},
    ),
    ("macro inside a string", {"p": '#define DIR /srv\n!a.b mSET("DIR" DIR)\n'}),
    ("comment across lines", {"p": "/* one\n   two */ !a.b mSET(c) /* x */\n!a.c mSET(d)\n"}),
    ("#error in an included header", {"p": "!a.b mSET(c)\n#include <h.h>\n", "h.h": "\n\n#error stop here\n"}),
    ("unterminated #if", {"p": "!a.b mSET(c)\n#if 1\n!a.c mSET(d)\n"}),
    ("#error after #line", {"p": '#line 100 "other"\n\n#error stop\n'}),
    (
        "#include outside the include path",
        {"p": "#include <../../outside.h>\n!a.b mSET(c)\n", "../../outside.h": "!x.y mSET(secret)\n"},
    ),
]


def compare_cases() -> None:
    print("\n2. One case per feature (ok: statements produced; error: file:line and message)")
    for title, files in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            inc = Path(tmp) / "site" / "include"
            inc.mkdir(parents=True)
            for name, text in files.items():
                target = (inc / name) if name != "p" else (Path(tmp) / "site" / "p")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
            print(f"   {title}:")
            for name, fn in RUNNERS.items():
                kind, value = outcome(fn, Path(tmp) / "site" / "p", [inc])
                if kind == "error":
                    value = f"{value[0]}: {value[1][:90]}"
                print(f"      {name:8} {kind}: {value}")


# ---------------------------------------------------------------- 3. speed


def generate(hosts: int, guests: int) -> tuple[list[Path], Path]:
    site = OUT / "site"
    if site.exists():
        shutil.rmtree(site)
    (site / "profiles").mkdir(parents=True)
    for sub, text in (("site/xen.h", HEADER), ("site/macros.h", MACROS), ("hw/generic.h", HW)):
        path = site / "include" / sub
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    paths = []
    for index in range(hosts):
        path = site / "profiles" / f"h{index:05d}"
        path.write_text(profile_text(index, guests))
        paths.append(path)
    return paths, site / "include"


def time_all(fn, paths: list[Path], include: Path) -> tuple[float, list[list[str]]]:  # noqa: ANN001
    ours.clear_cache()
    start = time.process_time()
    outputs = [fn(p, [include]) for p in paths]
    return time.process_time() - start, outputs


def speed(hosts: int, guests: int, runs: int) -> None:
    paths, include = generate(hosts, guests)
    print(f"\n3. Speed: {hosts} profiles x {guests} guests (benchmarks/inventory generator), {runs} runs, CPU seconds")
    times: dict[str, list[float]] = {"ours": [], "pcpp": []}
    outputs: dict[str, list[list[str]]] = {}
    for _run in range(runs):
        for name in times:  # interleaved
            spent, outputs[name] = time_all(RUNNERS[name], paths, include)
            times[name].append(spent)
    for name, values in times.items():
        med = statistics.median(values)
        runs_text = ", ".join(f"{v:.3f}" for v in values)
        print(f"   {name:5} median {med:7.3f} s  ({med / hosts * 1000:.2f} ms per profile; runs {runs_text})")
    ratio = statistics.median(times["pcpp"]) / statistics.median(times["ours"])
    print(f"   pcpp / ours: {ratio:.1f}x")
    same = outputs["ours"] == outputs["pcpp"]
    print(f"   outputs of the {hosts} profiles identical: {same}")
    if GNU_CPP:
        sample = paths[:: max(1, hosts // 20)]
        agree = all(run_gnu(p, [include]) == run_ours(p, [include]) for p in sample)
        print(f"   ours agrees with GNU cpp on {len(sample)} sampled profiles: {agree}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    ap.add_argument("--hosts", type=int, default=2000)
    ap.add_argument("--guests", type=int, default=10)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    print(f"pcpp {pcpp.__version__ if hasattr(pcpp, '__version__') else '?'}, Python {sys.version.split()[0]}")
    differing = compare_repo()
    print(f"   profiles where ours or pcpp differs from the reference: {differing}")
    compare_cases()
    speed(args.hosts, args.guests, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
