"""Remake labelkit's bundled label font: a small subset of Noto Sans CJK SC Bold (OFL 1.1).

One glyph is changed: Noto Sans' capital I is a bare bar that OCR engines (tesseract's chi_sim,
in every test we ran) read as a lowercase l, so "AI" came out "Al". The subset takes the serifed I
of the same collection's Noto Sans Mono CJK SC Bold instead, with a little more room around it.
Being a Modified Version, the font is renamed (FAMILY_OUT); copyright and licence names are kept.

Usage (fontTools needed; Debian: fonts-noto-cjk provides the source collection)::

    python tools/make_font_subset.py [--source /usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc]

Writes ``labelkit/data/<BUNDLED_FONT_FILE>`` holding exactly ``BUNDLED_FONT_CHARS`` (the runtime
checks label texts against that same set, so the two cannot drift) and ``labelkit/data/OFL.txt``
(the copyright notice plus the SIL Open Font License 1.1, taken from Debian's copyright file so
the text is the one the font was distributed under). The output is byte-for-byte reproducible.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from fontTools import subset
from fontTools.misc.roundTools import otRound
from fontTools.pens.t2CharStringPen import T2CharStringPen
from fontTools.pens.transformPen import TransformPen
from fontTools.ttLib import TTCollection, TTFont

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from labelkit.explicit.image import BUNDLED_FONT_CHARS, BUNDLED_FONT_FILE  # noqa: E402

DEFAULT_SOURCE = "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc"
DEFAULT_COPYRIGHT_FILE = "/usr/share/doc/fonts-noto-cjk/copyright"
FAMILY = "Noto Sans CJK SC"  # the face of the collection we want: Simplified Chinese glyph forms
SERIFED_I_FAMILY = "Noto Sans Mono CJK SC"  # same design, but its I has serifs
# The monospaced I sits in a tight cell; beside a proportional A tesseract took "AI" for "AT"
# more often than with this much more room on each side (units per em: 1000).
SERIFED_I_SPACING = 40
FAMILY_OUT = "Labelkit Sans SC"
PS_NAME_OUT = "LabelkitSansSC-Bold"
# The notice of upstream's LICENSE (github.com/notofonts/noto-cjk); the name table of Debian's
# build shortens it to "(c) 2014-2021 Adobe (http://www.adobe.com/)." The subset's own name does
# not use the Reserved Font Name "Source".
UPSTREAM_COPYRIGHT = (
    "Copyright 2014-2021 Adobe (http://www.adobe.com/), with Reserved Font Name 'Source'."
)


def pick_face(source: str, family: str) -> TTFont:
    """Return the face named ``family`` of a font collection."""
    collection = TTCollection(source, lazy=True)
    for index, face in enumerate(collection.fonts):
        if face["name"].getDebugName(1) == family:
            return TTFont(source, fontNumber=index, recalcTimestamp=False)
    raise SystemExit(f"{source}: no face named {family!r}")


def make_subset(face: TTFont, chars: str) -> TTFont:
    """Subset ``face`` in place to ``chars``: no layout features, names and hints kept."""
    options = subset.Options()
    # Labels are short left-to-right runs; without GSUB/GPOS every layout engine (Pillow basic or
    # raqm) places glyphs identically, which keeps rendering, and so detection, reproducible.
    options.layout_features = []
    options.name_IDs = ["*"]  # keep copyright (0), licence (13) and licence URL (14)
    options.notdef_outline = True
    options.drop_tables += ["vhea", "vmtx", "VORG", "BASE"]  # horizontal text only
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=[ord(c) for c in chars])
    subsetter.subset(face)
    return face


def replace_glyph(face: TTFont, donor: TTFont, char: str, spacing: int = 0) -> None:
    """Give ``face`` ``donor``'s glyph for ``char`` with ``spacing`` more units on each side."""
    if face["head"].unitsPerEm != donor["head"].unitsPerEm:
        raise SystemExit("the donor face has another units-per-em")
    name, donor_name = face.getBestCmap()[ord(char)], donor.getBestCmap()[ord(char)]
    advance = donor["hmtx"][donor_name][0] + 2 * spacing
    charstrings = face["CFF "].cff.topDictIndex[0].CharStrings
    old = charstrings[name]
    private = old.private  # the FD of the glyph being replaced: its hinting zones fit Latin
    default_width = getattr(private, "defaultWidthX", 0)
    nominal_width = getattr(private, "nominalWidthX", 0)
    # A CFF charstring stores its width relative to nominalWidthX, or omits it when default.
    pen = T2CharStringPen(None if advance == default_width else advance - nominal_width, None)
    donor.getGlyphSet()[donor_name].draw(TransformPen(pen, (1, 0, 0, 1, spacing, 0)))
    new = pen.getCharString(private=private, globalSubrs=old.globalSubrs)
    charstrings[name] = new
    bounds = new.calcBounds(charstrings)
    face["hmtx"][name] = (advance, otRound(bounds[0]) if bounds else 0)


def rename(face: TTFont) -> None:
    """Give the Modified Version its own names (OFL), in the name table and the CFF table."""
    names = face["name"]
    version = names.getDebugName(5) or ""
    new_names = {
        1: FAMILY_OUT,
        16: FAMILY_OUT,
        4: f"{FAMILY_OUT} Bold",
        18: f"{FAMILY_OUT} Bold",
        3: f"{version};{PS_NAME_OUT}",
        6: PS_NAME_OUT,
    }
    for record in list(names.names):
        if record.nameID in new_names:
            where = (record.platformID, record.platEncID, record.langID)
            names.setName(new_names[record.nameID], record.nameID, *where)
    cff = face["CFF "].cff
    cff.fontNames = [PS_NAME_OUT]
    top = cff.topDictIndex[0]
    top.FamilyName, top.FullName = FAMILY_OUT, f"{FAMILY_OUT} Bold"


def ofl_text(copyright_file: str) -> str:
    """Return the SIL OFL 1.1 text from a Debian machine-readable copyright file."""
    text = Path(copyright_file).read_text(encoding="utf-8")
    match = re.search(r"^License: SIL-1\.1\n((?: .*\n?)+)", text, re.MULTILINE)
    if match is None:
        raise SystemExit(f"{copyright_file}: no 'License: SIL-1.1' paragraph")
    lines = []
    for line in match.group(1).splitlines():
        body = line[1:]  # Debian indents continuation lines by one space, '.' marks a blank line
        lines.append("" if body == "." else body)
    return "\n".join(lines).strip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the subset font and its licence file into labelkit/data/."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=DEFAULT_SOURCE, help="the Noto Sans CJK Bold .ttc")
    parser.add_argument("--copyright-file", default=DEFAULT_COPYRIGHT_FILE)
    parser.add_argument("--out-dir", default=str(ROOT / "labelkit" / "data"))
    args = parser.parse_args(argv)

    chars = "".join(sorted(BUNDLED_FONT_CHARS))
    face = make_subset(pick_face(args.source, FAMILY), chars)
    replace_glyph(face, pick_face(args.source, SERIFED_I_FAMILY), "I", SERIFED_I_SPACING)
    original_names = face["name"]
    original_copyright, version = original_names.getDebugName(0), original_names.getDebugName(5)
    trademark = original_names.getDebugName(7)
    rename(face)
    missing = sorted(c for c in chars if ord(c) not in face.getBestCmap())
    if missing:
        raise SystemExit(f"the source font lacks {''.join(missing)!r}")
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    font_path = out_dir / BUNDLED_FONT_FILE
    face.save(font_path)

    licence = (
        f"{BUNDLED_FONT_FILE} ({FAMILY_OUT} Bold) is a Modified Version of {FAMILY} Bold,\n"
        f"{version} ({Path(args.source).name}), made by tools/make_font_subset.py:\n"
        f"a subset of {len(chars)} characters whose capital I is taken from\n"
        f"{SERIFED_I_FAMILY} Bold "
        f"(with {SERIFED_I_SPACING}/1000 em more space on each side).\n"
        f"The source font's name table says: {original_copyright}\n\n"
        f"{UPSTREAM_COPYRIGHT}\n"
        f"{trademark}\n\n"
        "This Font Software is licensed under the SIL Open Font License, Version 1.1.\n\n"
        + ofl_text(args.copyright_file)
    )
    (out_dir / "OFL.txt").write_text(licence, encoding="utf-8")
    print(f"{font_path}: {font_path.stat().st_size} bytes, {len(chars)} characters")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
