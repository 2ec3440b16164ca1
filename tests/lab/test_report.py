"""The report: report.md with relative figure links, a self-contained report.html,
both written atomically (a writer killed mid-write never leaves a partial file)."""
import base64
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

from normlab.lab.runs import Section
from normlab.lab.progress import Progress, format_seconds
from normlab.lab.report import format_value, render_html, render_markdown, write_report

# A valid 1x1 PNG: the report embeds bytes, it need not decode them.
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")


def _sections(tmp_path):
    fig_dir = tmp_path / "bn-vs-baseline"
    fig_dir.mkdir()
    fig = fig_dir / "loss.png"
    fig.write_bytes(PNG)
    return [
        Section(name="bn-vs-baseline", title="Batch norm vs baseline <six layers>",
                question="Does batch norm speed up training?",
                answer="Yes: with batch norm the final training loss is 0.41 vs 0.82 & validation 0.81.",
                config={"hidden_dims": [100] * 5, "learning_rate": 1e-3, "normalization": None},
                metrics={"final_loss_bn": 0.41},
                table=[{"model": "batchnorm", "final loss": 0.41234, "best val acc": 0.812},
                       {"model": "baseline", "final loss": 0.8231, "best val acc": None}],
                figures=[fig]),
        Section(name="gradcheck", title="Gradient checks", question="Are the gradients right?",
                answer="All 40 within the course's bounds.", config={}, metrics={}),
    ]


def test_markdown_has_every_part_and_relative_links(tmp_path):
    md = render_markdown(tmp_path, _sections(tmp_path), {"code_version": "0.1.0+abc", "dataset": "fashion-mnist"})
    assert md.startswith("# normlab")
    assert "1. [Batch norm vs baseline &lt;six layers&gt;](#bn-vs-baseline)" in md   # markdown renders raw HTML
    assert "**The course asks.** Does batch norm speed up training?" in md
    assert "**Measured.** Yes: with batch norm" in md
    assert "0.82 &amp; validation" in md
    assert "![Batch norm vs baseline &lt;six layers&gt;](bn-vs-baseline/loss.png)" in md
    assert "| model | final loss | best val acc |" in md
    assert "| batchnorm | 0.4123 | 0.812 |" in md and "| baseline | 0.8231 | \u2014 |" in md
    assert "| hidden_dims | 100, 100, 100, 100, 100 |" in md
    assert "0.1.0+abc" in md and str(tmp_path) not in md


def test_markdown_carries_no_raw_html_from_user_text(tmp_path):
    evil = "<script>alert(1)</script>"
    sections = _sections(tmp_path)
    s = sections[0]
    sections[0] = Section(name=s.name, title=evil, question=evil, answer=evil, config={"label": evil},
                          metrics={}, table=[{"model": evil, evil: 1}], figures=s.figures)
    md = render_markdown(tmp_path, sections, {"code_version": evil, "title": evil, "problems": [evil]})
    assert "<script>" not in md and "&lt;script&gt;" in md
    # the only tags are the report's own anchors and details blocks
    assert set(re.findall(r"<(/?[a-z]+)", md)) <= {"a", "/a", "details", "/details", "summary", "/summary"}


def test_html_is_self_contained_and_escaped(tmp_path):
    page = render_html(tmp_path, _sections(tmp_path), {"problems": ["run x/y failed: <boom>"]})
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    # nothing is fetched: every src is a data URI, links are in-page anchors, CSS is inline
    srcs = re.findall(r'src="([^"]*)"', page)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert base64.b64decode(srcs[0].split(",", 1)[1]) == PNG
    assert all(h.startswith("#") for h in re.findall(r'href="([^"]*)"', page))
    assert "<link" not in page and "<script" not in page and "<style>" in page
    assert "&lt;six layers&gt;" in page and "&amp; validation" in page and "&lt;boom&gt;" in page
    assert 'id="bn-vs-baseline"' in page and 'href="#gradcheck"' in page
    assert "Does batch norm speed up training?" in page and "<h3>Key numbers</h3>" in page


def test_svg_beside_a_png_is_not_shown_twice(tmp_path):
    s = _sections(tmp_path)[0]
    svg = s.figures[0].with_suffix(".svg")
    svg.write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    s.figures = [s.figures[0], svg]
    page = render_html(tmp_path, [s], {})
    assert page.count("<img") == 1 and "data:image/png;base64," in page
    assert render_markdown(tmp_path, [s], {}).count("![") == 1


def test_missing_figure_is_named_not_fatal(tmp_path):
    s = _sections(tmp_path)[0]
    s.figures = [tmp_path / "nope.png"]
    assert "figure missing: nope.png" in render_html(tmp_path, [s], {})


def test_write_report_writes_both_and_leaves_no_temporaries(tmp_path):
    md, page = write_report(tmp_path, _sections(tmp_path), {})
    assert md.read_text().startswith("# ") and page.read_text().startswith("<!DOCTYPE html>")
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_format_value():
    assert format_value(None) == "\u2014" and format_value(True) == "yes"
    assert format_value(0.123456) == "0.1235" and format_value(1.5e-5) == "1.500e-05"
    assert format_value([1, 2.5]) == "1, 2.5" and format_value(list(range(20))).endswith("(20 values)")
    assert format_value(float("nan")) == "nan"


_WRITER = textwrap.dedent("""
    import json
    import sys
    from pathlib import Path
    from normlab.lab.runs import Section
    from normlab._io import write_text_atomic
    from normlab.lab.report import write_report
    out = Path(sys.argv[1])
    big = "x" * 400_000
    i = 0
    print("ready", flush=True)
    while True:
        v = "AB"[i % 2]
        s = Section(name="e", title="t", question="q", answer=v * 10 + big, config={}, metrics={})
        write_report(out, [s], {"code_version": v})
        write_text_atomic(out / "metrics.json", json.dumps({"v": v, "pad": big}))
        i += 1
""")


def test_writer_killed_mid_write_never_leaves_a_partial_report(tmp_path):
    """A writer rewrites report.md/.html and metrics.json in a loop and is SIGKILLed at
    several moments; every read, before and after each kill, is one complete version."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    reads = 0
    for kill_after in (0.05, 0.13, 0.31):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path)], stdout=subprocess.PIPE, env=env)
        assert proc.stdout.readline().strip() == b"ready"
        t_end = time.monotonic() + kill_after
        while True:
            for name in ("report.md", "report.html", "metrics.json"):
                try:
                    text = (tmp_path / name).read_text()
                except FileNotFoundError:
                    continue
                reads += 1
                if name == "metrics.json":
                    assert text.startswith("{") and text.rstrip().endswith("}"), text[-50:]
                elif name == "report.html":
                    assert text.rstrip().endswith("</html>")
                else:
                    assert text.endswith("\n") and "**Measured.** " in text and "x" * 400_000 in text
            if time.monotonic() > t_end:
                break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert reads > 0
    # after the last kill the files are complete versions too; temporaries never carry the real names
    assert (tmp_path / "report.html").read_text().rstrip().endswith("</html>")
    assert all(p.startswith(".") and p.endswith(".tmp")
               for p in os.listdir(tmp_path) if p not in ("report.md", "report.html", "metrics.json"))


def test_progress_plain_lines_off_a_terminal():
    import io
    buf = io.StringIO()
    bar = Progress(3, "training", stream=buf)
    assert not bar.tty
    for i in (1, 2, 3):
        bar.update(i, f"run {i}")
    bar.close()
    assert buf.getvalue().splitlines() == ["training [1/3] run 1", "training [2/3] run 2", "training [3/3] run 3"]


def test_progress_bar_redraws_one_line_on_a_terminal():
    import io
    buf = io.StringIO()
    bar = Progress(2, "training", stream=buf, tty=True)
    bar.update(1, "a")
    bar.update(2, "b")
    bar.message("done")
    out = buf.getvalue()
    assert out.count("\r") == 2 and "[############............]" in out and out.endswith("done\n")
    assert format_seconds(75.2) == "1m15s" and format_seconds(3.44) == "3.4s"


def _paper_section(tmp_path, verdicts=("agrees", "disagrees")):
    fig = tmp_path / "paper.png"
    fig.write_bytes(PNG)
    findings = [{"claim": f"({k}) claim {k} <b>", "paper": "23.6 vs 24.1", "ours": "0.81 vs 0.80",
                 "criterion": "BN < GN", "verdict": v} for k, v in zip("ab", verdicts)]
    return Section(name="wu-he-2018", title="Group norm", question="GN is robust to the batch size.",
                   answer="Measured so.", config={}, metrics={},
                   figures=[fig], paper={"cite": "Wu & He (2018), \u201cGroup Normalization\u201d, arXiv:1803.08494",
                                         "url": "https://arxiv.org/abs/1803.08494", "where": "Table 2",
                                         "setup": "ResNet-50 & ImageNet", "ours": "a small conv net",
                                         "dataset": "Our runs use fashion-mnist.", "findings": findings,
                                         "seconds": 12.3, "analysis_seconds": 0.4})


def test_paper_section_has_reference_claim_table_and_verdicts(tmp_path):
    sections = [_paper_section(tmp_path), *_sections(tmp_path)]
    md = render_markdown(tmp_path, sections, {})
    assert "**The paper.** Wu & He (2018)" not in md            # & is escaped in markdown
    assert "**The paper.** Wu &amp; He (2018)" in md and "arXiv:1803.08494" in md
    assert "**The paper claims.** GN is robust to the batch size." in md
    assert "| claim | paper | ours | criterion | verdict |" in md
    assert "| (b) claim b &lt;b&gt; | 23.6 vs 24.1 | 0.81 vs 0.80 | BN &lt; GN | disagrees |" in md
    # the summary of every verdict comes before the contents, the course sections keep their wording
    assert md.index("**Verdicts: the papers**") < md.index("## Contents")
    assert "| Group norm | (b) claim b &lt;b&gt; | disagrees |" in md
    assert "**The course asks.** Does batch norm speed up training?" in md
    assert "12.3 s of training" in md and "0.4 s of analysis" in md
    page = render_html(tmp_path, sections, {})
    assert '<td class="v-disagrees">disagrees</td>' in page and '<td class="v-agrees">agrees</td>' in page
    assert "<b>" not in page.replace("<body>", "")
    assert all(h.startswith("#") for h in re.findall(r'href="([^"]*)"', page))   # the URL is text, not a link


def test_report_without_paper_sections_has_no_verdict_table(tmp_path):
    sections = _sections(tmp_path)
    md = render_markdown(tmp_path, sections, {})
    assert "Verdicts" not in md and "verdict" not in render_html(tmp_path, sections, {})


def test_pitfalls_get_their_own_verdict_table_labelled_by_title(tmp_path):
    paper = _paper_section(tmp_path)
    pit = _paper_section(tmp_path, verdicts=("partly",))
    pit.name, pit.title = "eval-mode", "Forgetting eval()"
    pit.paper = {**pit.paper, "suite": "pitfalls", "short": "PyTorch 2024"}
    paper.paper = {**paper.paper, "suite": "papers"}
    md = render_markdown(tmp_path, [paper, pit], {})
    assert md.index("**Verdicts: the papers**") < md.index("**Verdicts: the pitfalls**") < md.index("## Contents")
    assert "| Forgetting eval() | (a) claim a &lt;b&gt; | partly |" in md
    assert "| Wu &amp; He 2018 | (b) claim b &lt;b&gt; | disagrees |" not in md       # short is absent here
    assert "| pitfall | claim | verdict |" in md and "| paper | claim | verdict |" in md
    page = render_html(tmp_path, [paper, pit], {})
    assert "<strong>Verdicts: the pitfalls</strong>" in page
