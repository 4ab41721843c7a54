"""Rebuild the example PDFs from their extracted text (``pdf_text/*.txt`` -> ``pdfs/*.pdf``).

The PDFs stand in for 510(k) summaries downloaded from accessdata.fda.gov: small, valid,
Flate-compressed PDF 1.4 files with one Courier text page per 60 lines. Output is
byte-for-byte reproducible (fixed dates, no random IDs). Run from anywhere:

    python examples/build_pdfs.py
"""

from __future__ import annotations

import zlib
from pathlib import Path

PROJECTS = Path(__file__).resolve().parent / "projects"
LINES_PER_PAGE = 60
CREATED = "D:20240514091502Z"


def _escape(line: str) -> str:
    return line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _page_stream(lines: list[str]) -> bytes:
    ops = ["BT", "/F1 9 Tf", "11 TL", "50 760 Td"]
    ops += [f"({_escape(line)}) '" for line in lines]
    ops.append("ET")
    return "\n".join(ops).encode("latin-1")


def build_pdf(text: str, title: str) -> bytes:
    """A minimal valid PDF showing ``text`` in Courier, one page per 60 lines."""
    lines = text.splitlines()
    pages = [lines[i : i + LINES_PER_PAGE] for i in range(0, len(lines), LINES_PER_PAGE)]
    first_page = 5  # 1 catalog, 2 pages, 3 font, 4 info, then page/content pairs
    kids = " ".join(f"{first_page + 2 * n} 0 R" for n in range(len(pages)))
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Courier /Encoding /WinAnsiEncoding >>",
        f"<< /Title ({_escape(title)}) /Producer (fda-vault examples/build_pdfs.py) "
        f"/CreationDate ({CREATED}) >>".encode("latin-1"),
    ]
    for n, page in enumerate(pages):
        content = zlib.compress(_page_stream(page), 9)
        page_dict = (
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {first_page + 2 * n + 1} 0 R >>"
        )
        objects.append(page_dict.encode())
        objects.append(
            f"<< /Length {len(content)} /Filter /FlateDecode >>\nstream\n".encode()
            + content
            + b"\nendstream"
        )
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info 4 0 R >>\n"
        f"startxref\n{xref}\n%%EOF\n"
    ).encode()
    return bytes(out)


def main() -> None:
    """Write ``pdfs/<name>.pdf`` for every ``pdf_text/<name>.txt`` of every project."""
    for source in sorted(PROJECTS.glob("*/pdf_text/*.txt")):
        target = source.parent.parent / "pdfs" / f"{source.stem}.pdf"
        target.parent.mkdir(exist_ok=True)
        title = f"510(k) Summary {source.stem.split('_')[0]}"
        target.write_bytes(build_pdf(source.read_text(encoding="utf-8"), title))
        print(f"wrote {target.relative_to(PROJECTS.parent)} ({target.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
