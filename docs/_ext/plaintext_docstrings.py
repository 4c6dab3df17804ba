"""Read matkern's docstrings, written to be read as plain text (``help()``), as reST.

Two hooks on ``autodoc-process-docstring``, one on each side of napoleon's:

Before napoleon (which ends a Parameters/Attributes/Returns section only at the next known
section header or at two blank lines): a paragraph that follows a field section, starts
unindented and is not a ``name : type`` line (e.g. "Input: X (...)") gets a second blank
line before it, so it reads as prose instead of as more fields; an underlined header that
napoleon does not know ("Operations (as a scipy.sparse array)"), and a field section written
as prose (its first line no ``name : type`` line, e.g. "Returns" then a sentence), become a
rubric over paragraphs.

After napoleon: outside inline literals, doctest and literal blocks, ``|`` is escaped (the
docstrings write absolute values, ``|x|``, never reST substitutions) and so is the trailing
underscore of fitted-attribute names (``n_blocks_`` is not a hyperlink reference).

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


_LITERAL = re.compile(r"(``.+?``)")
_TRAILING_UNDERSCORE = re.compile(r"(?<=\w)_(?=$|[\s,.;:)\]])")
_ROLE_OR_TARGET = re.compile(r":\w+:`[^`]*`")


def _escape(text):
    parts = _LITERAL.split(text)
    for k in range(0, len(parts), 2):  # even parts: outside ``literals``
        piece = parts[k]
        roles = _ROLE_OR_TARGET.findall(piece)
        pieces = _ROLE_OR_TARGET.split(piece)
        pieces = [_TRAILING_UNDERSCORE.sub(r"\\_", p.replace("|", r"\|")) for p in pieces]
        merged = pieces[0]
        for role, rest in zip(roles, pieces[1:]):
            merged += role + rest
        parts[k] = merged
    return "".join(parts)


def escape_plain_text(app, what, name, obj, options, lines):
    in_block, block_indent = False, 0
    for i, line in enumerate(lines):
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if in_block:
            if not stripped or indent > block_indent:
                continue
            in_block = False
        if stripped.startswith(">>>"):
            in_block, block_indent = True, indent - 1  # until the blank line after it
            continue
        if stripped.startswith(".. "):
            continue
        lines[i] = _escape(line)
        if line.rstrip().endswith("::"):
            in_block, block_indent = True, indent
    return None


def setup(app):
    app.connect("autodoc-process-docstring", end_field_sections, priority=400)
    app.connect("autodoc-process-docstring", escape_plain_text, priority=600)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
