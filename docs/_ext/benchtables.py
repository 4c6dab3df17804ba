"""Sphinx directives for figures that come from the committed benchmark results, never typed.

``.. bench-table:: FAMILY DEVICE`` renders ``bench/results/FAMILY_DEVICE.json`` (DEVICE as in
the file name: ``cpu``, ``cuda``, ``cpu-neighbour``) as a table, with the machine and the
date of the run above it and the geometric mean per anchor below; option ``:match: REGEX``
keeps the cases whose name matches. ``.. bench-plot:: FAMILY`` shows
``bench/plots/FAMILY_cpu.png`` and ``FAMILY_cuda.png``, those present. A missing file is a
warning, so the ``-W`` build fails.

At the end of reading, every public name (each public module's ``__all__``, and the names
``matkern`` re-exports) must have an API entry (autofunction / autoclass / autodata):
a missing one is a warning. ``matkern_api_skip`` in conf.py lists modules left out. After
the build, a page that loads a script, style or image from the network is a warning too.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import re

import benchdata
from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)


def _para(text):
    return nodes.paragraph(text=text)


def _cell(lines):
    entry = nodes.entry()
    for line in lines if isinstance(lines, list) else [lines]:
        entry += _para(line)
    return entry


def _table(header, rows, widths):
    table = nodes.table(classes=["bench-table"])
    group = nodes.tgroup(cols=len(header))
    table += group
    for w in widths:
        group += nodes.colspec(colwidth=w)
    head = nodes.thead()
    row = nodes.row()
    for h in header:
        row += _cell(h)
    head += row
    group += head
    body = nodes.tbody()
    for cells in rows:
        row = nodes.row()
        for c in cells:
            row += _cell(c)
        body += row
    group += body
    return table


class BenchTable(SphinxDirective):
    required_arguments = 2  # family, device
    option_spec = {"match": directives.unchanged}

    def run(self):
        family, device = self.arguments
        path = benchdata.results_path(family, device)
        if not os.path.exists(path):
            logger.warning(
                "bench-table: no results file %s",
                os.path.relpath(path, benchdata.REPO),
                location=self.get_location(),
            )
            return []
        self.env.note_dependency(path)
        doc = benchdata.load(family, device)
        match = self.options.get("match")
        rows = benchdata.table_rows(doc, match)
        if not rows:
            logger.warning(
                "bench-table: no case of %s %s matches %r",
                family,
                device,
                match,
                location=self.get_location(),
            )
            return []
        source = f"bench/results/{family}_{device}.json"
        out = [_para(f"{benchdata.header(doc)} Source: {source}.")]
        has_variants = any(r["variants"] for r in rows)
        header = ["case", "matkern time", "ratio vs anchors (anchor time / matkern time)"]
        widths = [22, 10, 38]
        if has_variants:
            header.append("matkern variants (their time / matkern time)")
            widths.append(22)
        header.append("notes")
        widths.append(30)
        cells = []
        for r in rows:
            c = [r["name"], r["time"], r["anchors"] or ["-"]]
            if has_variants:
                c.append(r["variants"] or ["-"])
            c.append(r["notes"])
            cells.append(c)
        out.append(_table(header, cells, widths))
        means = benchdata.geometric_means(doc, match)
        if means:
            parts = [f"{k} {v:.2f}x over {n} cases" for k, (v, n) in means.items()]
            out.append(_para("Geometric mean: " + "; ".join(parts) + "."))
        return out


class BenchPlot(SphinxDirective):
    required_arguments = 1  # family
    option_spec = {"devices": directives.unchanged}

    def run(self):
        family = self.arguments[0]
        devices = self.options.get("devices", "cpu cuda").split()
        out = []
        for device in devices:
            path = os.path.join(benchdata.PLOTS_DIR, f"{family}_{device}.png")
            if not os.path.exists(path):
                continue
            # "/"-rooted image paths are relative to the source folder (docs/).
            rel = os.path.relpath(path, self.env.srcdir).replace(os.sep, "/")
            out.append(
                nodes.image(uri="/" + rel, alt=f"{family} speedups ({device})", candidates={})
            )
            out.append(
                _para(
                    f"bench/plots/{family}_{device}.png: speedup over each anchor "
                    "(log scale; red where a goal was missed)."
                )
            )
        if not out:
            logger.warning("bench-plot: no plot for %s", family, location=self.get_location())
        return out


def public_names(skip=()):
    """{qualified name to document: where it comes from} for matkern's public API: every
    public non-module attribute of ``matkern``, and the ``__all__`` names of public modules
    that ``matkern`` does not re-export (e.g. ``matkern.generators.band``)."""
    import inspect

    import matkern

    want = {
        f"matkern.{name}": "matkern"
        for name in dir(matkern)
        if not name.startswith("_") and not inspect.ismodule(getattr(matkern, name))
    }
    for info in pkgutil.iter_modules(matkern.__path__):
        modname = f"matkern.{info.name}"
        if info.name.startswith("_") or modname in skip:
            continue
        try:
            module = importlib.import_module(modname)
        except ImportError as exc:  # a module for an optional dependency not installed here
            logger.info("API check: %s not importable here (%s): not checked", modname, exc)
            continue
        for name in getattr(module, "__all__", ()):
            if getattr(matkern, name, None) is not getattr(module, name):
                want[f"{modname}.{name}"] = modname
    return {k: v for k, v in want.items() if k not in skip}


def check_api_coverage(app, env):
    documented = set(env.get_domain("py").objects)
    missing = {
        k: v
        for k, v in public_names(set(app.config.matkern_api_skip)).items()
        if k not in documented
    }
    for name, module in sorted(missing.items()):
        logger.warning(
            "API: %s (public in %s) has no autofunction/autoclass/autodata entry in docs/api/",
            name,
            module,
        )


_EXTERNAL = re.compile(r"<(?:script|link|img)\b[^>]*(?:src|href)=\"(?:https?:)?//[^\"]*\"")


def check_offline(app, exception):
    """The pages must load nothing from the network (no CDN script, font or style)."""
    if exception is not None or app.builder.format != "html":
        return
    for folder, _, files in os.walk(app.outdir):
        for name in files:
            if name.endswith(".html"):
                with open(os.path.join(folder, name), encoding="utf-8") as f:
                    found = _EXTERNAL.findall(f.read())
                for tag in found:
                    logger.warning("offline: %s loads %s", name, tag)


def setup(app):
    app.add_directive("bench-table", BenchTable)
    app.add_directive("bench-plot", BenchPlot)
    app.add_config_value("matkern_api_skip", [], "env")
    app.connect("env-check-consistency", check_api_coverage)
    app.connect("build-finished", check_offline)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
