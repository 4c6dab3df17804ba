r"""Read matkern's docstrings, written to be read as plain text (``help()``), as reST.

Two hooks on ``autodoc-process-docstring``, one on each side of napoleon's:

Before napoleon (which ends a Parameters/Attributes/Returns section only at the next known
section header or at two blank lines): a paragraph that follows a field section, starts
unindented and is not a ``name : type`` line (e.g. "Input: X (...)") gets a second blank
line before it, so it reads as prose instead of as more fields; an underlined header that
napoleon does not know ("Operations (as a scipy.sparse array)"), and a field section written
as prose (its first line no ``name : type`` line, e.g. "Returns" then a sentence), become a
rubric over paragraphs.

After napoleon: outside inline literals, doctest and literal blocks, ``|`` is escaped (the
docstrings write absolute values, ``|x|``, never reST substitutions), and so are the trailing
underscore of fitted-attribute names (``n_blocks_`` is not a hyperlink reference) and lone
stars (the operators in "(+, -, \*, /)" are not emphasis).

The docstrings themselves stay as they are; nothing here changes what ``help()`` shows.
"""

from __future__ import annotations

import re

_FIELD_SECTIONS = {
    "parameters",
    "other parameters",
    "attributes",
    "returns",
    "yields",
    "raises",
    "receives",
    "warns",
    "keyword arguments",
    "methods",
}
_KNOWN_SECTIONS = _FIELD_SECTIONS | {
    "example",
    "examples",
    "notes",
    "note",
    "references",
    "see also",
    "warning",
    "warnings",
    "todo",
    "args",
    "arguments",
}
# "name : type", "name", "a, b : type", "*args": a field line in a NumPy section.
_FIELD_LINE = re.compile(r"^\*{0,2}\w+(\s*,\s*\*{0,2}\w+)*(\s+:(\s.*)?)?$")
_UNDERLINE = re.compile(r"^-{3,}$")


def _is_header(lines, i):
    return (
        i + 1 < len(lines)
        and lines[i].strip()
        and not lines[i].startswith(" ")
        and _UNDERLINE.match(lines[i + 1].strip() or "x")
        and len(lines[i + 1].strip()) >= len(lines[i].strip()) - 1
    )


def end_field_sections(app, what, name, obj, options, lines):
    out, section, i = [], None, 0
    while i < len(lines):
        line = lines[i]
        if _is_header(lines, i):
            title = line.strip().lower()
            first = next((x for x in lines[i + 2 :] if x.strip()), "")
            fields = title in _FIELD_SECTIONS and _FIELD_LINE.match(first.strip())
            if title in _KNOWN_SECTIONS and (fields or title not in _FIELD_SECTIONS):
                section = title
                out += [line, lines[i + 1]]
            else:  # unknown, or fields written as prose: a rubric over a paragraph
                if out and out[-1] != "":
                    out.append("")
                out += ["", f".. rubric:: {line.strip()}", ""]
                section = None
            i += 2
            continue
        prose_after_fields = (
            section in _FIELD_SECTIONS
            and i > 0
            and lines[i - 1] == ""
            and line.strip()
            and not line.startswith(" ")
            and not _FIELD_LINE.match(line.strip())
        )
        if prose_after_fields:
            out.append("")  # the second blank line: napoleon's section break
            section = None
        out.append(line)
        i += 1
    lines[:] = out


_TRAILING_UNDERSCORE = re.compile(r"(?<=\w)_(?=$|[\s,.;:)\]])")
_ROLE = re.compile(r"(:\w+:`[^`]*`)")
# A lone run of stars, e.g. the operators in "(+, -, *, /, **)": not emphasis.
_LONE_STARS = re.compile(r"(?<![^\s(])(\*+)(?=[\s,;)]|$)")
_IVAR_NAMES = re.compile(r"^(\s*:(?:ivar|vartype) )([^:]+):")


def _escape_plain(text):
    out = []
    for k, piece in enumerate(_ROLE.split(text)):
        if k % 2 == 0:  # outside :role:`...`
            piece = piece.replace("|", r"\|")
            piece = _TRAILING_UNDERSCORE.sub(r"\\_", piece)
            piece = _LONE_STARS.sub(lambda m: "\\*" * len(m.group(1)), piece)
        out.append(piece)
    return "".join(out)


def _escape(line, in_literal):
    """The line escaped outside ``inline literals``; whether a literal is still open at its
    end (they may run on to the next line of the paragraph)."""
    parts = line.split("``")
    for k, part in enumerate(parts):
        if not in_literal:
            parts[k] = _escape_plain(part)
        if k < len(parts) - 1:
            in_literal = not in_literal
    return "``".join(parts), in_literal


def escape_plain_text(app, what, name, obj, options, lines):
    in_block, block_indent, in_literal = False, 0, False
    for i, line in enumerate(lines):
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if not stripped:
            in_literal = False  # a literal never spans paragraphs
        if in_block:
            if not stripped or indent > block_indent:
                continue
            in_block = False
        if stripped.startswith(">>>"):
            in_block, block_indent = True, indent - 1  # until the blank line after it
            continue
        if stripped.startswith(".. "):
            continue
        # ":ivar a, b:" / ":vartype a, b:": Sphinx would read "a," as b's type.
        line = _IVAR_NAMES.sub(lambda m: m.group(1) + m.group(2).replace(", ", ",") + ":", line)
        bullet = re.match(r"\s*(:[^:]+: )?[*-] ", line)  # a list item's marker stays one
        head, line = (line[: bullet.end()], line[bullet.end() :]) if bullet else ("", line)
        line, in_literal = _escape(line, in_literal)
        lines[i] = head + line
        if line.rstrip().endswith("::"):
            in_block, block_indent = True, indent
    return None


def setup(app):
    app.connect("autodoc-process-docstring", end_field_sections, priority=400)
    app.connect("autodoc-process-docstring", escape_plain_text, priority=600)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
