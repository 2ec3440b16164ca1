"""`normlab reproduce --suite papers --quick` end to end, as CI runs it: every paper's section
with its reference, the paper-vs-ours table, a verdict computed for every claim, figures,
the run time; metrics.json carries the verdicts; `--resume` trains nothing."""
import json
import os
import subprocess
import sys
import time

import pytest

from normlab.experiments.papers.verdict import VERDICTS
from normlab.lab.plan import recipes, suite_names


def _cli(*args, timeout=900):
    return subprocess.run([sys.executable, "-m", "normlab.cli", *args], capture_output=True, text=True,
                          env=dict(os.environ), timeout=timeout)


@pytest.fixture(scope="module")
def papers_quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("papers") / "run"
    t0 = time.perf_counter()
    res = _cli("reproduce", "--suite", "papers", "--quick", "--jobs", "2", "--out", str(out))
    return out, res, time.perf_counter() - t0


def test_the_papers_suite_has_its_papers():
    names = suite_names("papers")
    assert names[:4] == ["ioffe-szegedy-2015", "santurkar-2018", "wu-he-2018", "ba-2016"]
    for n in names:
        mod = recipes()[n]
        assert mod.SUITE == "papers" and mod.PAPER.arxiv and mod.CLAIMS
        assert len({c.key for c in mod.CLAIMS}) == len(mod.CLAIMS)
        assert all(c.criterion and c.paper and c.claim for c in mod.CLAIMS)


def test_papers_quick_end_to_end(papers_quick):
    out, res, seconds = papers_quick
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    print(f"reproduce --suite papers --quick --jobs 2: {seconds:.1f} s")
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["experiments"]) == set(suite_names("papers")) and metrics["missing_runs"] == 0
    assert not metrics["failed_runs"]
    md = (out / "report.md").read_text()
    assert md.startswith("# normlab: landmark normalization papers, reproduced (quick, reduced sizes)")
    assert "**Verdicts: the papers**" in md
    for n in suite_names("papers"):
        mod = recipes()[n]
        verdicts = metrics["experiments"][n]["verdicts"]
        assert set(verdicts) == {c.key for c in mod.CLAIMS}
        assert all(v in VERDICTS for v in verdicts.values())
        assert f"arXiv:{mod.PAPER.arxiv}" in md
        for c in mod.CLAIMS:
            assert f"({c.key}) " in md
    n = len(suite_names("papers"))
    assert md.count("| claim | paper | ours | criterion | verdict |") == n
    assert md.count("s of training (the sum of its runs") == n
    page = (out / "report.html").read_text()
    assert page.count('class="v-') >= sum(len(recipes()[n].CLAIMS) for n in suite_names("papers")) * 2
    for n in suite_names("papers"):
        assert list((out / n).glob("*.png")), f"{n} drew no figure"
    res = _cli("reproduce", "--resume", str(out))
    assert res.returncode == 0 and " 0 trained now" in res.stdout, res.stderr[-2000:]


def test_the_papers_report_in_a_browser(papers_quick):
    """The papers report as a person sees it: every figure shown, every contents link lands,
    no console error, no request; the screenshot is left beside the report."""
    from _browser import BINARIES, Browser, find_chromium, image_problems, link_problems, png_size
    chromium = find_chromium()
    if chromium is None:
        pytest.skip(f"no browser on PATH (looked for {', '.join(BINARIES)}); "
                    "install one (scripts/setup does: apt-get install chromium)")
    out, res, _ = papers_quick
    assert res.returncode == 0, res.stderr[-3000:]
    report = out / "report.html"
    with Browser(chromium) as browser:
        page = browser.new_page()
        page.goto(report.as_uri())
        images = image_problems(page)
        links = link_problems(page)
        count = page.evaluate("document.images.length")
        verdict_cells = page.evaluate("document.querySelectorAll('td[class^=\"v-\"]').length")
        page.evaluate("history.replaceState(null, '', location.pathname), window.scrollTo(0, 0)")
        shot = page.screenshot(report.with_name("report-screenshot.png"))
    print(f"screenshot of the papers report: {shot}")
    assert not images, "\n".join(images)
    assert not links, "\n".join(links)
    assert count >= len(suite_names("papers")) and verdict_cells >= 2 * len(suite_names("papers"))
    assert page.console_errors == [], "\n".join(page.console_errors)
    assert page.requests == [], f"the report fetched: {page.requests}"
    assert png_size(shot)[0] == browser.viewport[0]
