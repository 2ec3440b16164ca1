"""The run directory's report: ``report.md`` and a self-contained ``report.html``.

For every experiment (a :class:`~normlab.lab.runs.Section`) the report
gives its title, the course's question, the answer measured in this run, the
resolved configuration, a table of the key numbers and the figures. A paper's
section (``section.paper``, the papers suite) gives instead the reference and
the paper's claim, then the table "claim | paper | ours | criterion | verdict",
the figures, both setups and the run time; a report with paper sections opens
with every verdict in one table, disagreements as prominent as agreements. The
markdown links figures relative to the run directory; the HTML embeds them as
base64 ``data:`` URIs and carries its CSS inline, so it is one file that can
be mailed or archived and still shows everything (no external ``src`` or
``href``). Both files are written atomically (temporary file, fsync, rename):
a reader sees the old report or the new one, never part of one.
"""
from __future__ import annotations

import base64
import html
import math
import os
from pathlib import Path

from .._io import write_text_atomic

__all__ = ["write_report", "render_markdown", "render_html", "format_value"]


def format_value(v) -> str:
    """A table cell: floats to 4 significant digits, None as an em dash, sequences comma-joined."""
    if v is None:
        return "\u2014"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.3e}"
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        if len(v) > 12:
            return ", ".join(format_value(x) for x in v[:5]) + f", \u2026 ({len(v)} values)"
        return ", ".join(format_value(x) for x in v)
    if isinstance(v, dict):
        return ", ".join(f"{k}={format_value(x)}" for k, x in v.items())
    return str(v)


def _columns(rows: list) -> list:
    cols = []
    for r in rows:
        for k in r:
            if k not in cols:
                cols.append(k)
    return cols


def _rel(path, out_dir: Path) -> str:
    p = Path(path)
    try:
        return p.resolve().relative_to(out_dir.resolve()).as_posix()
    except ValueError:
        return os.path.relpath(p.resolve(), out_dir.resolve()).replace(os.sep, "/")


def _anchor(section) -> str:
    return "".join(c if c.isalnum() or c == "-" else "-" for c in section.name.lower())


def _figures(section) -> list:
    """The section's figures to show: PNGs, and an SVG only when no PNG of it is listed
    (recipes list the SVG beside each PNG; the PNG is what gets embedded)."""
    figs = [Path(f) for f in section.figures]
    pngs = {f.with_suffix("") for f in figs if f.suffix.lower() == ".png"}
    return [f for f in figs if not (f.suffix.lower() == ".svg" and f.with_suffix("") in pngs)]


def _md(v) -> str:
    """Text for the markdown report: markdown renders raw HTML, so ``<``, ``>`` and
    ``&`` in user text (titles, answers, option values, errors) are escaped."""
    return html.escape(str(v), quote=False)


def _md_cell(v) -> str:
    return _md(format_value(v)).replace("|", "\\|").replace("\n", " ")


def _md_table(header: list, rows: list) -> list:
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |",
             "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return lines


def _meta_rows(meta: dict) -> list:
    keys = [("code_version", "code version"), ("dataset", "dataset"), ("created", "created"),
            ("wall_time", "wall time"), ("jobs", "worker processes"), ("quick", "quick (reduced sizes)"),
            ("runs", "training runs"), ("executed", "executed in this invocation")]
    return [(label, meta[k]) for k, label in keys if k in meta]


_FINDING_COLUMNS = ("claim", "paper", "ours", "criterion", "verdict")


def _verdict_rows(sections: list, suite: str) -> list:
    """[source, claim, verdict] of every finding of the sections of ``suite`` ("pitfalls": the
    pitfalls', labelled by their titles; otherwise the papers', by their short references)."""
    pitfalls = suite == "pitfalls"
    return [[s.title if pitfalls else s.paper.get("short", s.title), f["claim"], f["verdict"]]
            for s in sections if s.paper and (s.paper.get("suite") == "pitfalls") == pitfalls
            for f in s.paper["findings"]]


_VERDICT_TABLES = (("papers", "paper", "**Verdicts: the papers** (each claim judged by a criterion fixed before the "
                                       "runs):"),
                   ("pitfalls", "pitfall", "**Verdicts: the pitfalls** (each belief judged by a criterion fixed "
                                           "before the runs):"))


def _run_time(p: dict) -> str:
    text = f"{p['seconds']:.1f} s of training (the sum of its runs' wall-clock times, one core each)"
    if p.get("analysis_seconds") is not None:
        text += f" and {p['analysis_seconds']:.1f} s of analysis"
    return text + "."


def _paper_md(s, i: int, out_dir: Path) -> list:
    p = s.paper
    lines = [f"**The paper.** {_md(p['cite'])}; reproduced: {_md(p['where'])}.", "",
             f"**The paper claims.** {_md(s.question)}", "", f"**Measured.** {_md(s.answer)}", ""]
    lines += _md_table(list(_FINDING_COLUMNS), [[f[c] for c in _FINDING_COLUMNS] for f in p["findings"]]) + [""]
    for fig in _figures(s):
        lines += [f"![{_md(s.title)}]({_md(_rel(fig, out_dir))})", ""]
    lines += [f"**The paper's setup.** {_md(p['setup'])}", "", f"**Ours.** {_md(p['ours'])} {_md(p['dataset'])}",
              "", f"**Run time.** {_run_time(p)}", ""]
    return lines


def render_markdown(out_dir, sections: list, meta: dict) -> str:
    """The markdown report (figure links relative to ``out_dir``)."""
    out_dir = Path(out_dir)
    lines = [f"# {_md(meta.get('title', 'normlab: the course experiments, reproduced'))}", ""]
    lines += _md_table(["", ""], _meta_rows(meta)) + [""]
    for p in meta.get("problems", []):
        lines.append(f"> **Problem:** {_md(p)}")
    if meta.get("problems"):
        lines.append("")
    for suite, col, head in _VERDICT_TABLES:
        verdicts = _verdict_rows(sections, suite)
        if verdicts:
            lines += [head, ""] + _md_table([col, "claim", "verdict"], verdicts) + [""]
    lines += ["## Contents", ""]
    lines += [f"{i}. [{_md(s.title)}](#{_anchor(s)})" for i, s in enumerate(sections, 1)] + [""]
    for i, s in enumerate(sections, 1):
        title = _md(s.title)
        lines += [f'<a id="{_anchor(s)}"></a>', "", f"## {i}. {title}", ""]
        if s.paper:
            lines += _paper_md(s, i, out_dir)
        else:
            lines += [f"**The course asks.** {_md(s.question)}", "", f"**Measured.** {_md(s.answer)}", ""]
            for fig in _figures(s):
                lines += [f"![{title}]({_md(_rel(fig, out_dir))})", ""]
        if s.table:
            cols = _columns(s.table)
            lines += ["Key numbers:", ""] + _md_table(cols, [[r.get(c) for c in cols] for r in s.table]) + [""]
        if s.config:
            lines += ["<details><summary>Configuration</summary>", ""]
            lines += _md_table(["setting", "value"], list(s.config.items())) + ["", "</details>", ""]
    return "\n".join(lines).rstrip() + "\n"


_CSS = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;max-width:60rem;margin:2rem auto;
padding:0 1rem;color:#1a1a1a}
h1{font-size:1.6rem}h2{margin-top:2.5rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
table{border-collapse:collapse;margin:.8rem 0;font-size:.9rem;display:block;max-width:100%;overflow-x:auto}
th,td{border:1px solid #ccc;padding:.25rem .6rem;text-align:left;vertical-align:top;overflow-wrap:break-word}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
.q{color:#444}.a{background:#f4f8ff;border-left:4px solid #4a7bd0;padding:.5rem .8rem}
.problem{background:#fff3f0;border-left:4px solid #d0584a;padding:.5rem .8rem}
figure{margin:1rem 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
nav ol{columns:2}details{margin:.5rem 0}
td[class^="v-"]{white-space:nowrap}td.v-agrees{background:#e8f5e9}td.v-partly{background:#fff8e1}td.v-disagrees{background:#ffebee;font-weight:600}
td.v-not-measured{background:#eceff1}.cite{color:#444;font-size:.92rem}
"""


def _h(v) -> str:
    return html.escape(str(v), quote=True)


def _html_table(header: list | None, rows: list) -> str:
    out = ["<table>"]
    if header:
        out.append("<tr>" + "".join(f"<th>{_h(format_value(c))}</th>" for c in header) + "</tr>")
    for row in rows:
        cells = []
        for c in row:
            cls = ' class="num"' if isinstance(c, (int, float)) and not isinstance(c, bool) else ""
            cells.append(f"<td{cls}>{_h(format_value(c))}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _verdict_table(header: list, rows: list) -> str:
    """A table whose last column is a verdict, coloured by its value (the words stay: colour is a hint)."""
    out = ["<table>", "<tr>" + "".join(f"<th>{_h(c)}</th>" for c in header) + "</tr>"]
    for row in rows:
        cells = [f"<td>{_h(format_value(c))}</td>" for c in row[:-1]]
        cls = "v-" + str(row[-1]).replace(" ", "-")
        out.append("<tr>" + "".join(cells) + f'<td class="{_h(cls)}">{_h(row[-1])}</td></tr>')
    out.append("</table>")
    return "\n".join(out)


def _figures_html(s) -> list:
    parts = []
    for fig in _figures(s):
        uri = _data_uri(fig)
        if uri is None:
            parts.append(f'<p class="problem">figure missing: {_h(Path(fig).name)}</p>')
            continue
        parts.append(f'<figure><img alt="{_h(s.title)}" src="{uri}">'
                     f"<figcaption>{_h(Path(fig).name)}</figcaption></figure>")
    return parts


def _paper_html(s) -> list:
    p = s.paper
    return [f'<p class="cite"><strong>The paper.</strong> {_h(p["cite"])}; reproduced: {_h(p["where"])}.</p>',
            f'<p class="q"><strong>The paper claims.</strong> {_h(s.question)}</p>',
            f'<p class="a"><strong>Measured.</strong> {_h(s.answer)}</p>',
            _verdict_table(list(_FINDING_COLUMNS), [[f[c] for c in _FINDING_COLUMNS] for f in p["findings"]]),
            *_figures_html(s),
            f"<p><strong>The paper's setup.</strong> {_h(p['setup'])}</p>",
            f"<p><strong>Ours.</strong> {_h(p['ours'])} {_h(p['dataset'])}</p>",
            f"<p><strong>Run time.</strong> {_h(_run_time(p))}</p>"]


def _data_uri(path) -> str | None:
    p = Path(path)
    mime = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
    try:
        payload = p.read_bytes()
    except OSError:
        return None
    return f"data:{mime.get(p.suffix.lower(), 'application/octet-stream')};base64," + \
        base64.b64encode(payload).decode("ascii")


def render_html(out_dir, sections: list, meta: dict) -> str:
    """The self-contained HTML report: inline CSS, figures as data URIs."""
    title = meta.get("title", "normlab: the course experiments, reproduced")
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{_h(title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{_h(title)}</h1>", _html_table(None, _meta_rows(meta))]
    for p in meta.get("problems", []):
        parts.append(f'<p class="problem"><strong>Problem:</strong> {_h(p)}</p>')
    for suite, col, head in _VERDICT_TABLES:
        verdicts = _verdict_rows(sections, suite)
        if verdicts:
            title, _, rest = head.partition("** ")
            parts += [f"<p><strong>{_h(title.strip('*'))}</strong> {_h(rest)}</p>",
                      _verdict_table([col, "claim", "verdict"], verdicts)]
    parts.append("<nav><h2>Contents</h2><ol>")
    parts += [f'<li><a href="#{_anchor(s)}">{_h(s.title)}</a></li>' for s in sections]
    parts.append("</ol></nav>")
    for i, s in enumerate(sections, 1):
        parts.append(f'<section id="{_anchor(s)}"><h2>{i}. {_h(s.title)}</h2>')
        if s.paper:
            parts += _paper_html(s)
        else:
            parts += [f'<p class="q"><strong>The course asks.</strong> {_h(s.question)}</p>',
                      f'<p class="a"><strong>Measured.</strong> {_h(s.answer)}</p>', *_figures_html(s)]
        if s.table:
            cols = _columns(s.table)
            parts += ["<h3>Key numbers</h3>", _html_table(cols, [[r.get(c) for c in cols] for r in s.table])]
        if s.config:
            parts += ["<details><summary>Configuration</summary>",
                      _html_table(["setting", "value"], list(s.config.items())), "</details>"]
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(out_dir, sections: list, meta: dict) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` into ``out_dir`` (atomically); return their paths."""
    out_dir = Path(out_dir)
    md, page = out_dir / "report.md", out_dir / "report.html"
    write_text_atomic(md, render_markdown(out_dir, sections, meta))
    write_text_atomic(page, render_html(out_dir, sections, meta))
    return md, page

