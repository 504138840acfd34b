"""The code says what it does, not what it measured: no measured figures (dB values, speed-ups, timings,
"x real time") and no experiment history ("round N") in the package's source, its comments,
docstrings and help texts.  Measurements belong in docs/ and benchmarks/results/.

A pattern needs a literal number, so a name such as ``gain_db`` or a unit after a format
field (``f"{sdr:.2f} dB"``) is no hit."""

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

PATTERNS = {
    "a figure in dB": re.compile(r"(?<![\w.{])[+-]?\d+(\.\d+)? ?dB\b"),
    "an experiment round": re.compile(r"\b[Rr]ound \d+"),
    "a real-time factor": re.compile(r"\d+(\.\d+)? ?x (faster than )?real[ -]?time"),
    "a speed-up": re.compile(r"\d+(\.\d+)? ?(x|times) (faster|slower|as fast)\b|\d+(\.\d+)? times the time"),
    "a measurement": re.compile(r"\b[Mm]easured\b.{0,40}\d|\d.{0,60}\(measured\b"),
    "a timing": re.compile(r"\b(takes|took|costs?|take about|runs? in) (about |only |under )?"
                           r"(\d+(\.\d+)? ?(s|ms|seconds?|minutes?|hours?)|(a|half an?) (second|minute|hour)s?)\b"
                           r"|\babout \d+(\.\d+)? ?(s|ms|seconds?|minutes?) (for|per)\b"),
}


def hits(paths):
    found = []
    for path in paths:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for what, pattern in PATTERNS.items():
                m = pattern.search(line)
                if m:
                    found.append(f"{path}:{number}: {what}: {m.group(0)!r} in {line.strip()[:120]!r}")
    return found


def test_no_measured_figures_in_the_source():
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 20
    found = hits(files)
    assert not found, "measured figures or experiment history in src/ (say what the code does):\n" + "\n".join(found)


def test_the_patterns_find_figures(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        'x = 1  # measured +0.6 dB NSDR\n'
        '"""Round 11 showed it"""\n'
        'y = 2  # 1.75x faster\n'
        'z = 3  # 40x real time\n'
        'w = 4  # costs 1 s per 3 minutes (measured)\n'
        'ok = f"{sdr:.2f} dB"  # gain_db, a unit after a field\n'
        '"""checksums (about 0.5 s for a checkpoint)"""\n'
        'v = 5  # they take about a second\n'
        'fine = 6  # last about as long as the original, take 3 seconds of it, a window of about 50 ms\n'
    )
    assert [h.split(": ")[1] for h in hits([bad])] == ["a figure in dB", "a measurement", "an experiment round", "a speed-up",
                                                        "a real-time factor", "a measurement", "a timing", "a timing", "a timing"]
