"""The report as a person sees it (issue 13): ``report.html`` of a real quick run,
opened from disk in headless Chromium. Every figure decodes and is shown, every
contents link, clicked with the mouse, brings its section to the top of the
window, nothing is logged as an error and nothing but the file itself is
fetched. A full-page screenshot is left beside the report
(``report-screenshot.png``; its path is printed: ``pytest -rP`` shows it).

Skipped where no Chromium is installed (``scripts/setup`` installs Debian's
``chromium`` when it can). A hand-written broken page checks that each of
these checks can fail.
"""
import shutil

import pytest

from _browser import BINARIES, Browser, find_chromium, image_problems, link_problems, png_size
from normlab import reproduce as R
from normlab.data.errors import DatasetNotFoundError

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason=f"no browser on PATH (looked for {', '.join(BINARIES)}); "
                                "install one (scripts/setup does: apt-get install chromium)")

@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """report.html of a quick run of two cheap recipes (one trains nets, both draw a
    figure; the NumPy engine only, a few seconds); of bn-forward alone where
    Fashion-MNIST is missing."""
    pytest.importorskip("matplotlib", reason="the recipes' figures need matplotlib (pip install 'normlab[plots]')")
    out = tmp_path_factory.mktemp("browser") / "run"
    try:
        outcome = R.reproduce(out, names=["bn-forward", "bn-vs-baseline"], quick=True, jobs=1, engine="numpy")
    except DatasetNotFoundError:
        shutil.rmtree(out, ignore_errors=True)
        outcome = R.reproduce(out, names=["bn-forward"], quick=True, jobs=1)
    assert outcome.ok, outcome.problems
    return out / "report.html"


def test_the_report_in_a_browser(report):
    with Browser(CHROMIUM) as browser:
        page = browser.new_page()
        page.goto(report.as_uri())
        images = image_problems(page)
        links = link_problems(page)
        page.evaluate("history.replaceState(null, '', location.pathname), window.scrollTo(0, 0)")
        shot = page.screenshot(report.with_name("report-screenshot.png"))
    print(f"screenshot of the report: {shot}")
    assert not images, "\n".join(images)
    assert not links, "\n".join(links)
    assert page.console_errors == [], "\n".join(page.console_errors)
    assert page.requests == [], f"the report fetched: {page.requests}"
    assert page.all_requests[0] == report.as_uri()
    width, height = png_size(shot)
    assert width == browser.viewport[0] and height > browser.viewport[1], (width, height)


BROKEN = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>broken</title></head><body>
<nav><a href="#there">there</a> <a href="#nowhere">nowhere</a></nav>
<img id="missing" src="missing.png">
<img id="garbled" src="data:image/png;base64,iVBORw0KGgoAAAAA">
<img id="hidden" style="display:none" src="data:image/png;base64,%s">
<p style="height:3000px">tall</p><section id="there">there</section><p style="height:3000px">tall</p>
<script>
console.error("a console error");
window.fetched = fetch("http://127.0.0.1:9/").catch(e => console.error("fetch failed:", e.message));
</script></body></html>"""
ONE_PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="


def test_a_broken_page_fails_every_check(tmp_path):
    page_file = tmp_path / "broken.html"
    page_file.write_text(BROKEN % ONE_PIXEL)
    with Browser(CHROMIUM) as browser:
        page = browser.new_page()
        page.goto(page_file.as_uri())
        page.evaluate("window.fetched")
        page.wait_for(lambda: len(page.console_errors) >= 3, "the page's console errors")
        images = image_problems(page)
        links = link_problems(page)
    assert [p.split(" (")[0] for p in images] == ["image 0", "image 1", "image 2"], images
    assert "did not decode" in images[0] and "did not decode" in images[1] and "not shown" in images[2]
    assert links == ["link #nowhere: no element with that id"]
    errors = "\n".join(page.console_errors)
    assert "console.error: a console error" in errors and "fetch failed: Failed to fetch" in errors
    assert "missing.png" in errors                           # the browser's own "Failed to load resource"
    assert sorted(page.requests) == [(tmp_path / "missing.png").as_uri(), "http://127.0.0.1:9/"], page.requests
