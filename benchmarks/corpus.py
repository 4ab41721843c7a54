"""Deterministic benchmark corpus shaped like real FDA 510(k) project folders.

The same seed, scale and variant always give byte-identical files (names, contents and
mtimes), so every tool and every run sees the same input. Generation is fast: text comes
from slices of a pre-built, seeded word pool and incompressible "PDFs" from
``random.Random.randbytes``, so the default ~500 MB corpus takes seconds.

    python benchmarks/corpus.py --out /tmp/fda-vault-bench/corpus           # ~500 MB
    python benchmarks/corpus.py --scale 0.1 --out /tmp/small                # ~50 MB
    python benchmarks/corpus.py --many-small --out /tmp/many                # 20,000+ files

Layout: ``OUT/projects/<project>/...`` (pass ``OUT/projects`` as ``--projects-dir``) and
``OUT/corpus.json``, the marker that records the parameters and totals. A second run with
the same parameters finds the marker and does nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

GENERATOR_VERSION = 2
MARKER = "corpus.json"
MB = 1_000_000
DEFAULT_SEED = 510
# 2026-01-01T00:00:00Z: mtimes are fixed so archives of the corpus are reproducible.
BASE_MTIME = 1_767_225_600

PROJECTS = [
    "K241234_cardiac_monitor",
    "K239876_glucose_meter",
    "K242210_infusion_pump",
    "K240555_pulse_oximeter",
    "K238801_orthopedic_screw",
    "K243317_wound_dressing",
    "K241902_ultrasound_probe",
    "K240077_surgical_stapler",
    "K242468_dental_implant",
]

# Domain words first: the Zipf weights make them the most frequent.
_DOMAIN_TEXT = """
the of and to in a is that for device with as be on by this are or predicate
substantial equivalence intended use indications patient clinical performance testing
510(k) submission FDA CFR class II product code regulation number applicant
biocompatibility sterilization shelf life software verification validation risk
analysis hazard mitigation ISO 10993 IEC 60601 electrical safety electromagnetic
compatibility labeling instructions warnings contraindications adverse event MAUDE
recall cleared decision date review panel cardiovascular general hospital orthopedic
dental radiology sensor accuracy bench data human factors usability cybersecurity
firmware battery alarm display measurement range tolerance specification material
polymer titanium stainless steel silicone coating packaging transport simulation
expiration labeling summary comparison table technological characteristics
differences questions raise new safety effectiveness special traditional abbreviated
guidance document consensus standard recognized declaration conformity test report
sample size acceptance criteria results passed protocol deviation statistical
confidence interval sensitivity specificity mean standard deviation study subjects
"""
DOMAIN_WORDS = _DOMAIN_TEXT.split()

HEADINGS = [
    "Device Description",
    "Indications for Use",
    "Predicate Device Comparison",
    "Substantial Equivalence Discussion",
    "Performance Testing — Bench",
    "Biocompatibility",
    "Software Documentation",
    "Electrical Safety and EMC",
    "Sterilization and Shelf Life",
    "Labeling",
    "Risk Analysis",
    "Conclusion",
]

PRODUCT_CODES = ["DXN", "NBW", "FRN", "DQA", "HWC", "FRO", "IYO", "GAG", "DZE", "MHX", "QBJ"]
STATES = ["MN", "CA", "MA", "IL", "TX", "OH", "IN", "NJ", "PA", "FL", "WA", "CO", "UT"]
COMPANY_WORDS = ["Medical", "Devices", "Health", "Systems", "Bio", "Surgical", "Diagnostics"]
DECISIONS = ["SESE", "SESD", "SESU", "SESK", "SESP"]

# Names a real consultant's folder holds: accents, CJK, an en dash, parentheses, spaces.
UNICODE_NAMES = [
    "Prüfbericht_Biokompatibilität.md",
    "résumé_du_prédicat.txt",
    "試験報告書_電気安全.txt",
    "predicate comparison – K183421.md",
    "510(k) summary (draft v3).md",
    "Ελληνικά_σημειώσεις.md",
]


@dataclass
class Category:
    """One kind of file: where it goes, how many, how large, how it is made."""

    folder: str
    extension: str
    count: int
    min_size: int
    max_size: int
    kind: str  # "record", "query", "csv", "markdown", "text", "pdf"


@dataclass
class BigFile:
    """One of the few 50-100 MB files; its size scales with --scale."""

    project: str
    path: str
    size: int
    kind: str


@dataclass
class Params:
    """Everything that determines the corpus bytes (recorded in the marker)."""

    seed: int = DEFAULT_SEED
    scale: float = 1.0
    many_small: bool = False
    generator_version: int = GENERATOR_VERSION


@dataclass
class Summary:
    """What was generated (stored in the marker next to the parameters)."""

    params: Params
    files: int = 0
    bytes: int = 0
    folders: int = 0
    empty_folders: int = 0
    by_kind: dict[str, list[int]] = field(default_factory=dict)  # kind -> [files, bytes]
    seconds: float = 0.0


def default_categories(many_small: bool) -> list[Category]:
    """Per-project file categories at scale 1."""
    if many_small:
        # ~2,700 files per project, ~24,000 in all, ~5 KB on average.
        return [
            Category("openfda/510k", ".json", 1500, 600, 6_000, "record"),
            Category("openfda/maude", ".json", 500, 800, 8_000, "record"),
            Category("notes", ".md", 350, 500, 12_000, "markdown"),
            Category("data/tables", ".csv", 250, 1_000, 20_000, "csv"),
            Category("pdfs/attachments", ".pdf", 100, 5_000, 60_000, "pdf"),
        ]
    return [
        Category("openfda/510k", ".json", 300, 800, 8_000, "record"),
        Category("openfda/queries", ".json", 6, 200_000, 3_000_000, "query"),
        Category("data", ".csv", 6, 100_000, 4_000_000, "csv"),
        Category("drafts", ".md", 25, 5_000, 60_000, "markdown"),
        Category("pdf_text", ".txt", 30, 20_000, 600_000, "text"),
        Category("pdfs", ".pdf", 20, 50_000, 2_500_000, "pdf"),
    ]


def default_big_files(many_small: bool) -> list[BigFile]:
    """The few large files of the default corpus (none in --many-small)."""
    if many_small:
        return []
    return [
        BigFile(PROJECTS[0], "pdfs/scans/clinical_study_full_scan.pdf", 90 * MB, "pdf"),
        BigFile(PROJECTS[1], "openfda/bulk/device-510k-0001-of-0001.json", 65 * MB, "query"),
        BigFile(PROJECTS[2], "pdf_text/complete_submission_text.txt", 55 * MB, "text"),
    ]


class TextPool:
    """A few MB of seeded pseudo-English; files are built from random slices of it.

    Random offsets keep every file distinct (fair to deduplicating peers), while the
    word statistics give deflate a realistic ~3x ratio instead of repeated bytes.
    """

    def __init__(self, rng: random.Random, size: int = 6 * MB) -> None:
        vocab = list(dict.fromkeys(DOMAIN_WORDS)) + self._pseudo_words(rng, 1500)
        weights = [1.0 / (rank + 1) ** 1.0 for rank in range(len(vocab))]
        words = rng.choices(vocab, weights=weights, k=size // 6)
        sentences: list[str] = []
        i = 0
        while i < len(words):
            n = rng.randint(6, 24)
            sentence = " ".join(words[i : i + n])
            sentences.append(sentence[:1].upper() + sentence[1:] + ".")
            if rng.random() < 0.18:
                sentences.append("\n\n")
            i += n
        self.text = " ".join(sentences).replace(" \n\n ", "\n\n").encode()
        self.rng = rng
        self._records: list[bytes] = []
        self._rows: list[str] = []
        self._names: dict[str, list[str]] = {}

    def name(self, rng: random.Random, kind: str, length: int) -> str:
        """A value from a small per-kind set: real records repeat cities, devices, people."""
        if kind not in self._names:
            self._names[kind] = [self.sentence(self.rng, length).title() for _ in range(150)]
        return rng.choice(self._names[kind])

    def records(self) -> list[bytes]:
        """Serialized openFDA records without their leading '{"k_number": ...' field."""
        if not self._records:
            for _ in range(3000):
                record = openfda_record(self.rng, self)
                del record["k_number"]
                # Pretty-printed as the openFDA API serves it, nested in "results": [...].
                text = json.dumps(record, indent=2, ensure_ascii=False).replace("\n", "\n    ")
                self._records.append(text[1:].encode())
        return self._records

    def rows(self) -> list[str]:
        """CSV rows after their first column (the 510(k) number)."""
        if not self._rows:
            rng = self.rng
            self._rows = [
                f',"{company(rng)}",{rng.choice(PRODUCT_CODES)},'
                f"{date(rng)},{rng.choice(DECISIONS)},{rng.randint(20, 400)},"
                f'"{self.name(rng, "device", 60)[:40]}",{rng.uniform(0.8, 1):.4f},'
                f"{rng.uniform(0.8, 1):.4f},{rng.randint(10, 3000)}\n"
                for _ in range(8000)
            ]
        return self._rows

    @staticmethod
    def _pseudo_words(rng: random.Random, n: int) -> list[str]:
        syllables = ["ra", "to", "mi", "ne", "lo", "ka", "si", "ter", "ven", "dor", "pli", "ex"]
        syllables += ["cal", "tri", "ment", "ous", "ic", "al", "ion", "ure", "pha", "gen"]
        return ["".join(rng.choices(syllables, k=rng.randint(1, 4))) for _ in range(n)]

    def slice(self, rng: random.Random, n: int) -> bytes:
        """n bytes of text starting at a random offset (n below the pool size)."""
        start = rng.randrange(0, len(self.text) - n)
        return self.text[start : start + n]

    def take(self, rng: random.Random, n: int) -> bytes:
        """n bytes of text made of random slices of 4-64 KB."""
        parts: list[bytes] = []
        left = n
        while left > 0:
            piece = min(left, rng.randint(4_096, 65_536))
            parts.append(self.slice(rng, piece))
            left -= piece
        return b"".join(parts)

    def sentence(self, rng: random.Random, n: int = 120) -> str:
        """A short run of words (for JSON fields and CSV cells)."""
        raw = self.slice(rng, n).decode(errors="ignore")
        return " ".join(raw.split()[1:-1])


def company(rng: random.Random) -> str:
    """A made-up applicant name."""
    stem = "".join(rng.choices("BCDFGKLMNPRSTVZ", k=1) + rng.choices("aeiou", k=1))
    stem += "".join(rng.choices("nrlxtv", k=1)) + rng.choice(["a", "o", "ix", "en", "us"])
    return f"{stem} {rng.choice(COMPANY_WORDS)} {rng.choice(['Inc.', 'LLC', 'GmbH', 'Corp.'])}"


def k_number(rng: random.Random) -> str:
    """A plausible 510(k) number."""
    # getrandbits rather than randint: this runs a million times for the large tables.
    n = rng.getrandbits(24)
    return f"K{10 + (n >> 20) % 16:02d}{(n & 0xFFFFF) % 10000:04d}"


def date(rng: random.Random) -> str:
    """A date in openFDA's YYYYMMDD form."""
    return f"{rng.randint(2010, 2025)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"


def openfda_record(rng: random.Random, pool: TextPool) -> dict[str, object]:
    """One openFDA device/510k-style result."""
    code = rng.choice(PRODUCT_CODES)
    return {
        "k_number": k_number(rng),
        "applicant": company(rng),
        "contact": pool.name(rng, "contact", 30)[:24],
        "address_1": f"{rng.randint(1, 9999)} {pool.name(rng, 'street', 40)[:28]} Road",
        "city": pool.name(rng, "city", 30)[:16] or "Minneapolis",
        "state": rng.choice(STATES),
        "zip_code": f"{rng.randint(10000, 99999)}",
        "country_code": "US",
        "date_received": date(rng),
        "decision_date": date(rng),
        "decision_code": rng.choice(DECISIONS),
        "decision_description": "Substantially Equivalent",
        "product_code": code,
        "device_name": pool.name(rng, "device", 60)[:48],
        "statement_or_summary": rng.choice(["Summary", "Statement"]),
        "clearance_type": rng.choice(["Traditional", "Special", "Abbreviated"]),
        "third_party_flag": rng.choice(["N", "Y"]),
        "expedited_review_flag": "N",
        "openfda": {
            "device_name": pool.name(rng, "device", 60),
            "medical_specialty_description": rng.choice(
                ["Cardiovascular", "General Hospital", "Orthopedic", "Dental", "Radiology"]
            ),
            "regulation_number": f"{rng.randint(862, 892)}.{rng.randint(1000, 6000)}",
            "device_class": rng.choice(["1", "2", "3"]),
            "fei_number": [str(rng.randint(10**9, 10**10 - 1))],
            "registration_number": [str(rng.randint(10**6, 10**7 - 1))],
        },
        "summary_excerpt": pool.sentence(rng, rng.randint(80, 400)),
    }


def make_record_file(rng: random.Random, pool: TextPool, size: int) -> bytes:
    """A small JSON file: one query's meta block and results, about `size` bytes."""
    results: list[dict[str, object]] = []
    body = b""
    while not results or len(body) < size:
        results.append(openfda_record(rng, pool))
        doc = {
            "meta": {
                "disclaimer": "Do not rely on openFDA to make decisions regarding medical care.",
                "last_updated": "2025-11-20",
                "results": {"skip": 0, "limit": 100, "total": len(results)},
            },
            "results": results,
        }
        body = json.dumps(doc, indent=2, ensure_ascii=False).encode()
    return body


def make_query_file(rng: random.Random, pool: TextPool, size: int) -> bytes:
    """A large openFDA query result: pooled records, each with its own 510(k) number."""
    parts = [b'{\n  "meta": {"last_updated": "2025-11-20", "results": {"skip": 0}},\n']
    parts.append(b'  "results": [\n')
    total = sum(len(p) for p in parts)
    records = pool.records()
    while total < size:
        for record in rng.choices(records, k=64):
            number = k_number(rng).encode()
            piece = b'    {\n      "k_number": "%s",%s,\n' % (number, record)
            parts.append(piece)
            total += len(piece)
    parts.append(b'    {\n      "k_number": "K000000"\n    }\n  ]\n}\n')
    return b"".join(parts)


def make_csv_file(rng: random.Random, pool: TextPool, size: int) -> bytes:
    """A CSV table of 510(k) clearances, rows drawn from a seeded row pool."""
    header = (
        "k_number,applicant,product_code,decision_date,decision_code,"
        "review_days,device_name,sensitivity,specificity,sample_size\n"
    )
    rows = pool.rows()
    out = [header]
    total = len(header)
    while total < size:
        for row in rng.choices(rows, k=256):
            line = k_number(rng) + row
            out.append(line)
            total += len(line)
    return "".join(out).encode()


def make_markdown_file(rng: random.Random, pool: TextPool, size: int) -> bytes:
    """A submission draft: headings, prose, a comparison table."""
    parts = [f"# {rng.choice(HEADINGS)}\n\n".encode()]
    total = len(parts[0])
    while total < size:
        heading = f"\n## {rng.choice(HEADINGS)}\n\n".encode()
        prose = pool.slice(rng, rng.randint(600, 4_000)) + b"\n"
        table = (
            "\n| characteristic | subject device | predicate |\n| --- | --- | --- |\n"
            + "".join(
                f"| {pool.sentence(rng, 40)[:24]} | {pool.sentence(rng, 40)[:24]} | "
                f"{k_number(rng)} |\n"
                for _ in range(rng.randint(2, 6))
            )
        ).encode()
        for piece in (heading, prose, table):
            parts.append(piece)
            total += len(piece)
    return b"".join(parts)


def make_text_file(rng: random.Random, pool: TextPool, size: int) -> bytes:
    """Text extracted from a PDF: page markers between slices of prose."""
    parts: list[bytes] = []
    total = 0
    page = 1
    while total < size:
        # Running headers and footers, as text extracted from a PDF has on every page.
        header = f"\n\f510(k) Summary — CONFIDENTIAL\nSection {1 + page // 25}\n\n".encode()
        footer = f"\n\nPage {page} — Traditional 510(k) Submission\n".encode()
        piece = header + pool.take(rng, rng.randint(2_000, 6_000)) + footer
        parts.append(piece)
        total += len(piece)
        page += 1
    return b"".join(parts)


def make_pdf_file(rng: random.Random, pool: TextPool, size: int) -> bytes:
    """PDF-like bytes that do not compress: a %PDF header, random streams, %%EOF."""
    head = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\nstream\n"
    tail = b"\nendstream\n%%EOF\n"
    body = max(0, size - len(head) - len(tail))
    if body < 256 << 20:
        return head + rng.randbytes(body) + tail
    # randbytes() of 256 MB or more overflows a C int (--scale 10): draw it in slices.
    slices = [rng.randbytes(min(64 << 20, body - i)) for i in range(0, body, 64 << 20)]
    return head + b"".join(slices) + tail


MAKERS: dict[str, Callable[[random.Random, TextPool, int], bytes]] = {
    "record": make_record_file,
    "query": make_query_file,
    "csv": make_csv_file,
    "markdown": make_markdown_file,
    "text": make_text_file,
    "pdf": make_pdf_file,
}


def sized(rng: random.Random, low: int, high: int) -> int:
    """A size between low and high, skewed to the small end (log-uniform)."""
    return int(low * (high / low) ** rng.random())


def nested(rng: random.Random, folder: str, kind: str, index: int) -> str:
    """A sub-folder path that makes trees a few levels deep, as real projects are."""
    if kind == "record":
        return f"{folder}/{2015 + index % 11}/Q{1 + rng.randrange(4)}"
    if kind in ("pdf", "text"):
        section = rng.choice(["predicates", "testing/bench", "testing/biocomp", "labeling", ""])
        return f"{folder}/{section}".rstrip("/")
    if kind == "markdown":
        return f"{folder}/{rng.choice(['sections', 'sections/appendices', 'reviews', ''])}".rstrip(
            "/"
        )
    return folder


def file_plan(params: Params) -> Iterator[tuple[str, str, int, str, random.Random]]:
    """(project, relative path, size, kind, rng) for every file, in a fixed order."""
    scale = params.scale
    for p_index, project in enumerate(PROJECTS):
        for category in default_categories(params.many_small):
            rng = random.Random(f"{params.seed}/{project}/{category.folder}")
            count = max(1, round(category.count * scale))
            for i in range(count):
                size = sized(rng, category.min_size, category.max_size)
                folder = nested(rng, category.folder, category.kind, i)
                if category.kind == "record":
                    name = f"{k_number(rng)}_{i:05d}{category.extension}"
                else:
                    name = f"{category.kind}_{i:04d}{category.extension}"
                yield project, f"{folder}/{name}", size, category.kind, rng
        # A few unicode names in every project, alternating between text and PDF content.
        rng = random.Random(f"{params.seed}/{project}/unicode")
        for u_index, name in enumerate(UNICODE_NAMES):
            kind = "pdf" if name.endswith(".pdf") else "markdown" if u_index % 2 else "text"
            size = max(2_000, int(sized(rng, 5_000, 200_000) * min(1.0, scale)))
            yield project, f"Übersicht/{name}", size, kind, rng
        if p_index == 0:
            yield project, "README.md", 3_000, "markdown", random.Random(f"{params.seed}/readme")
    for big in default_big_files(params.many_small):
        rng = random.Random(f"{params.seed}/{big.project}/{big.path}")
        yield big.project, big.path, max(1, int(big.size * scale)), big.kind, rng


def read_marker(out: Path) -> Summary | None:
    """The marker of an existing corpus, or None."""
    try:
        raw = json.loads((out / MARKER).read_text())
        params = Params(**raw.pop("params"))
        return Summary(params=params, **raw)
    except (OSError, ValueError, TypeError, KeyError):
        return None


def generate(
    out: Path,
    seed: int = DEFAULT_SEED,
    scale: float = 1.0,
    many_small: bool = False,
    log: Callable[[str], None] = print,
) -> Summary:
    """Create the corpus under out/projects (or find it there already); return its summary."""
    params = Params(seed=seed, scale=scale, many_small=many_small)
    existing = read_marker(out)
    if existing is not None and existing.params == params:
        log(f"corpus: up to date in {out} ({existing.files} files, {existing.bytes / MB:.0f} MB)")
        return existing
    if out.exists() and any(out.iterdir()):
        if existing is None:
            raise SystemExit(f"error: {out} is not empty and has no {MARKER}: refusing to clear it")
        log(f"corpus: parameters changed, regenerating {out}")
        shutil.rmtree(out)
    started = time.perf_counter()
    projects = out / "projects"
    projects.mkdir(parents=True)
    pool = TextPool(random.Random(f"{seed}/pool"))
    summary = Summary(params=params)
    folders: set[Path] = set()
    for index, (project, rel, size, kind, rng) in enumerate(file_plan(params)):
        path = projects / project / rel
        if path.parent not in folders:
            path.parent.mkdir(parents=True, exist_ok=True)
            folders.add(path.parent)
        data = MAKERS[kind](rng, pool, size)
        path.write_bytes(data)
        os.utime(path, (BASE_MTIME + index * 7, BASE_MTIME + index * 7))
        summary.files += 1
        summary.bytes += len(data)
        counts = summary.by_kind.setdefault(kind, [0, 0])
        counts[0] += 1
        counts[1] += len(data)
    # One empty folder: backups must keep it.
    empty = projects / PROJECTS[0] / "correspondence" / "pending"
    empty.mkdir(parents=True)
    summary.empty_folders = 1
    summary.folders = sum(1 for p in projects.rglob("*") if p.is_dir())
    summary.seconds = round(time.perf_counter() - started, 2)
    (out / MARKER).write_text(json.dumps(asdict(summary), indent=2) + "\n")
    log(
        f"corpus: generated {summary.files} files, {summary.bytes / MB:.0f} MB "
        f"in {summary.seconds:.1f} s under {projects}"
    )
    return summary


def main(argv: list[str] | None = None) -> int:
    """Command line: generate a corpus."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=Path("/tmp/fda-vault-bench/corpus"))
    parser.add_argument("--scale", type=float, default=1.0, help="multiply sizes (default 1)")
    parser.add_argument("--many-small", action="store_true", help="20,000+ small files")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    if args.scale <= 0:
        parser.error("--scale must be positive")
    generate(args.out, seed=args.seed, scale=args.scale, many_small=args.many_small)
    return 0


if __name__ == "__main__":
    sys.exit(main())
