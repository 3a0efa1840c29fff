"""Regenerate game_chat/protocol/unicode_tables.py from the Unicode Character Database.

    python tools/unicode_tables.py DIR [--check]

DIR holds these files of one Unicode version (17.0.0 is the one in use), as published at
https://www.unicode.org/Public/ (the Unicode Consortium's unicodetools repository on GitHub
keeps the same files under unicodetools/data/security/VERSION/ and unicodetools/data/ucd/VERSION/):

    confusables.txt            security/VERSION/confusables.txt (UTS #39)
    DerivedCoreProperties.txt  ucd/VERSION/DerivedCoreProperties.txt
    DerivedGeneralCategory.txt ucd/VERSION/extracted/DerivedGeneralCategory.txt
    DerivedCombiningClass.txt  ucd/VERSION/extracted/DerivedCombiningClass.txt
    DerivedJoiningType.txt     ucd/VERSION/extracted/DerivedJoiningType.txt
    emoji-data.txt             ucd/VERSION/emoji/emoji-data.txt

With --check, nothing is written: the exit status says whether the module is up to date.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

OUTPUT = Path(__file__).resolve().parent.parent / "game_chat" / "protocol" / "unicode_tables.py"
SOURCES = (
    "confusables.txt",
    "DerivedCoreProperties.txt",
    "DerivedGeneralCategory.txt",
    "DerivedCombiningClass.txt",
    "DerivedJoiningType.txt",
    "emoji-data.txt",
)

Ranges = list[tuple[int, int]]

LICENCE = """\
# The data below is derived from the Unicode Character Database and from the data files of
# Unicode Technical Standard #39, which come with this notice:
#
# UNICODE LICENSE V3
#
# COPYRIGHT AND PERMISSION NOTICE
#
# Copyright © 1991-2025 Unicode, Inc.
#
# NOTICE TO USER: Carefully read the following legal agreement. BY
# DOWNLOADING, INSTALLING, COPYING OR OTHERWISE USING DATA FILES, AND/OR
# SOFTWARE, YOU UNEQUIVOCALLY ACCEPT, AND AGREE TO BE BOUND BY, ALL OF THE
# TERMS AND CONDITIONS OF THIS AGREEMENT. IF YOU DO NOT AGREE, DO NOT
# DOWNLOAD, INSTALL, COPY, DISTRIBUTE OR USE THE DATA FILES OR SOFTWARE.
#
# Permission is hereby granted, free of charge, to any person obtaining a
# copy of data files and any associated documentation (the "Data Files") or
# software and any associated documentation (the "Software") to deal in the
# Data Files or Software without restriction, including without limitation
# the rights to use, copy, modify, merge, publish, distribute, and/or sell
# copies of the Data Files or Software, and to permit persons to whom the
# Data Files or Software are furnished to do so, provided that either (a)
# this copyright and permission notice appear with all copies of the Data
# Files or Software, or (b) this copyright and permission notice appear in
# associated Documentation.
#
# THE DATA FILES AND SOFTWARE ARE PROVIDED "AS IS", WITHOUT WARRANTY OF ANY
# KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF
# MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT OF
# THIRD PARTY RIGHTS.
#
# IN NO EVENT SHALL THE COPYRIGHT HOLDER OR HOLDERS INCLUDED IN THIS NOTICE
# BE LIABLE FOR ANY CLAIM, OR ANY SPECIAL INDIRECT OR CONSEQUENTIAL DAMAGES,
# OR ANY DAMAGES WHATSOEVER RESULTING FROM LOSS OF USE, DATA OR PROFITS,
# WHETHER IN AN ACTION OF CONTRACT, NEGLIGENCE OR OTHER TORTIOUS ACTION,
# ARISING OUT OF OR IN CONNECTION WITH THE USE OR PERFORMANCE OF THE DATA
# FILES OR SOFTWARE.
#
# Except as contained in this notice, the name of a copyright holder shall
# not be used in advertising or otherwise to promote the sale, use or other
# dealings in these Data Files or Software without prior written
# authorization of the copyright holder.
#
# SPDX-License-Identifier: Unicode-3.0
"""


def _lines(path: Path) -> Iterable[list[str]]:
    """The ``;``-separated fields of each data line, comments and blanks left out."""
    for line in path.read_text(encoding="utf-8-sig").splitlines():
        data = line.split("#", 1)[0].strip()
        if data:
            yield [field.strip() for field in data.split(";")]


def _code_points(field: str) -> range:
    first, _, last = field.partition("..")
    return range(int(first, 16), int(last or first, 16) + 1)


def property_ranges(path: Path, wanted: Callable[[str], bool]) -> Ranges:
    """Merged ranges of the code points whose value (second field) is ``wanted``."""
    points = sorted(cp for f in _lines(path) if wanted(f[1]) for cp in _code_points(f[0]))
    ranges: Ranges = []
    for cp in points:
        if ranges and ranges[-1][1] + 1 >= cp:
            ranges[-1] = (ranges[-1][0], max(ranges[-1][1], cp))
        else:
            ranges.append((cp, cp))
    return ranges


def confusables(path: Path) -> dict[int, str]:
    """UTS #39 confusables.txt: source code point -> prototype (every line is type MA)."""
    table: dict[int, str] = {}
    for fields in _lines(path):
        source, target, kind = fields[:3]
        if kind != "MA":
            raise SystemExit(f"confusables.txt: unknown mapping type {kind!r}")
        if int(source, 16) in table:
            raise SystemExit(f"confusables.txt: {source} mapped twice")
        table[int(source, 16)] = "".join(chr(int(cp, 16)) for cp in target.split())
    return table


def version(path: Path) -> str:
    """The Unicode version a data file names in its header, as "X.Y.Z"."""
    head = path.read_text(encoding="utf-8-sig")[:1000]
    match = re.search(r"^# Version: (\d+\.\d+(?:\.\d+)?)", head, re.M) or re.search(
        r"-(\d+\.\d+\.\d+)\.txt", head
    )
    if not match:
        raise SystemExit(f"{path.name}: no version in its header")
    return match.group(1) if match.group(1).count(".") == 2 else match.group(1) + ".0"


def _ranges_literal(name: str, doc: str, ranges: Ranges) -> str:
    items = [f"(0x{lo:04X}, 0x{hi:04X})" for lo, hi in ranges]
    rows = [", ".join(items[i : i + 4]) for i in range(0, len(items), 4)]
    body = "".join(f"    {row},\n" for row in rows)
    return f"#: {doc}\n{name}: tuple[tuple[int, int], ...] = (\n{body})\n"


def _confusables_literal(table: dict[int, str]) -> str:
    # One string, one mapping a line ("SOURCE PROTOTYPE..." in hex): it compiles in no time,
    # where a dict display of 6,500 entries costs 40 ms each time the module is compiled.
    lines = [" ".join(f"{ord(ch):04X}" for ch in chr(cp) + proto) for cp, proto in table.items()]
    body = "".join(f"{line}\n" for line in sorted(lines, key=lambda line: int(line.split()[0], 16)))
    return f'CONFUSABLES = """\\\n{body}"""\n'


def generate(source_dir: Path) -> str:
    paths = {name: source_dir / name for name in SOURCES}
    versions = {version(p) for p in paths.values()}
    if len(versions) != 1:
        raise SystemExit(f"the source files are of different versions: {sorted(versions)}")
    (unicode_version,) = versions
    digests = "".join(
        f"#   {name + ':':<28}{hashlib.sha256(p.read_bytes()).hexdigest()}\n"
        for name, p in paths.items()
    )
    gc, core = paths["DerivedGeneralCategory.txt"], paths["DerivedCoreProperties.txt"]
    joining = paths["DerivedJoiningType.txt"]
    parts = [
        f'"""Unicode {unicode_version} tables for names.py and text.py: made by'
        " tools/unicode_tables.py, do not edit."
        '"""\n\n',
        "# fmt: off\n",
        f"# Sources (Unicode {unicode_version}) and their SHA-256:\n{digests}#\n{LICENCE}\n",
        f'UNICODE_VERSION = "{unicode_version}"\n\n',
        "#: UTS #39 confusables.txt, one line per code point that has a prototype: the code\n"
        "#: point, then the code points of its prototype (hexadecimal).\n",
        _confusables_literal(confusables(paths["confusables.txt"])),
        "\n",
        _ranges_literal(
            "DEFAULT_IGNORABLE",
            "Default_Ignorable_Code_Point (DerivedCoreProperties.txt).",
            property_ranges(core, lambda v: v == "Default_Ignorable_Code_Point"),
        ),
        "\n",
        _ranges_literal("FORMAT", "General_Category Cf.", property_ranges(gc, lambda v: v == "Cf")),
        "\n",
        _ranges_literal(
            "MARKS",
            "General_Category Mn, Mc and Me: the combining marks.",
            property_ranges(gc, lambda v: v in ("Mn", "Mc", "Me")),
        ),
        "\n",
        _ranges_literal(
            "EXTENDED_PICTOGRAPHIC",
            "Extended_Pictographic (emoji-data.txt): what UAX #29 joins with a ZWJ.",
            property_ranges(paths["emoji-data.txt"], lambda v: v == "Extended_Pictographic"),
        ),
        "\n",
        _ranges_literal(
            "EMOJI_MODIFIERS",
            "Emoji_Modifier (emoji-data.txt): the skin tones.",
            property_ranges(paths["emoji-data.txt"], lambda v: v == "Emoji_Modifier"),
        ),
        "\n",
        _ranges_literal(
            "VIRAMAS",
            "Canonical_Combining_Class 9 (Virama).",
            property_ranges(paths["DerivedCombiningClass.txt"], lambda v: v == "9"),
        ),
        "\n",
        _ranges_literal(
            "JOINS_TO_NEXT",
            "Joining_Type L or D: joins to the letter after it.",
            property_ranges(joining, lambda v: v in ("L", "D")),
        ),
        "\n",
        _ranges_literal(
            "JOINS_TO_PREVIOUS",
            "Joining_Type R or D: joins to the letter before it.",
            property_ranges(joining, lambda v: v in ("R", "D")),
        ),
        "\n",
        _ranges_literal(
            "JOIN_TRANSPARENT",
            "Joining_Type T: skipped when looking for the letters a ZWNJ stands between.",
            property_ranges(joining, lambda v: v == "T"),
        ),
    ]
    return "".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("source_dir", type=Path, help="folder with the Unicode data files")
    parser.add_argument("--check", action="store_true", help="only say if it is up to date")
    args = parser.parse_args(argv)
    text = generate(args.source_dir)
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        print("up to date" if current == text else f"{OUTPUT} differs")
        return 0 if current == text else 1
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT} ({len(text.encode()):,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
