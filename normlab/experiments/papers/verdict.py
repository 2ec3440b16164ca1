"""A paper's result beside ours: the reference, the claims with their criteria, the verdicts.

Every papers-suite recipe declares, as module-level data written before any
run, its :class:`Paper` (reference, the paper's setup, our scaled-down setup
and why) and its :class:`Claim` list: what the paper reports (numbers, or the
qualitative shape when it gives only a figure) and the **agreement criterion**
our runs are judged by. ``analyze`` then measures, and for each claim turns
the criterion's checks into a :class:`Finding` with :func:`verdict`:

- ``agrees``: every check of the criterion holds;
- ``partly``: some hold, some do not;
- ``disagrees``: none holds;
- ``not measured``: the runs needed are missing or failed.

A disagreement is a result: the report shows it as prominently as an agreement,
and nothing in a recipe may change a criterion after seeing the numbers.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Paper", "Claim", "Finding", "verdict", "paper_block", "verdict_metrics", "VERDICTS", "run_seconds"]

VERDICTS = ("agrees", "partly", "disagrees", "not measured")


@dataclass(frozen=True)
class Paper:
    """The paper a recipe reproduces.

    - authors, year, title, arxiv: the reference (``arxiv`` as "1502.03167"; "" for a
      source without one, e.g. a pitfall's documentation page named in ``title``).
    - where: the figures, tables or sections reproduced ("Figure 1, section 3.3").
    - setup: the paper's own setup (data, model, optimizer, steps) in one paragraph.
    - ours: the setup we run, and why it differs (a 2-core CPU, minutes not GPU-days).
    """
    authors: str
    year: int
    title: str
    arxiv: str
    where: str
    setup: str
    ours: str

    @property
    def url(self) -> str:
        return f"https://arxiv.org/abs/{self.arxiv}" if self.arxiv else ""

    @property
    def short(self) -> str:
        """"Ioffe & Szegedy 2015", "Santurkar et al. 2018": the authors' last names and the year."""
        names = [n.strip().split()[-1] for n in self.authors.replace(" & ", ", ").replace(" and ", ", ").split(",")
                 if n.strip()]
        who = " & ".join(names) if len(names) <= 2 else f"{names[0]} et al."
        return f"{who} {self.year}"

    @property
    def cite(self) -> str:
        where = f", arXiv:{self.arxiv}" if self.arxiv else ""
        return f"{self.authors} ({self.year}), \u201c{self.title}\u201d{where}"


@dataclass(frozen=True)
class Claim:
    """One result of the paper, with the criterion fixed before any run.

    - key: a short id ("a", "b", ...), stable across versions (metrics.json uses it).
    - claim: what the paper says, in our words.
    - paper: the paper's result as data: its numbers, or the shape of its figure.
    - criterion: the test our numbers must pass, precise enough to compute.
    """
    key: str
    claim: str
    paper: str
    criterion: str


@dataclass(frozen=True)
class Finding:
    """A claim measured: our numbers in words and the verdict of its criterion."""
    claim: Claim
    ours: str
    verdict: str

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict {self.verdict!r} is not one of {', '.join(VERDICTS)}")

    def row(self) -> dict:
        return {"claim": f"({self.claim.key}) {self.claim.claim}", "paper": self.claim.paper, "ours": self.ours,
                "criterion": self.claim.criterion, "verdict": self.verdict}


def verdict(checks) -> str:
    """The verdict of a criterion's checks: a list of True / False, or None for a check
    that could not be computed (its runs missing or failed). Every check True:
    'agrees'; no check True: 'disagrees' ('not measured' if none was computable);
    otherwise 'partly' (an uncomputable check never counts as agreeing)."""
    checks = list(checks)
    known = [bool(c) for c in checks if c is not None]
    if not known:
        return "not measured"
    if all(known) and len(known) == len(checks):
        return "agrees"
    return "partly" if any(known) else "disagrees"


def run_seconds(done) -> float:
    """The training time of a recipe's runs (sum over runs of their own seconds)."""
    return float(sum(r.seconds for r in done.results))


def paper_block(paper: Paper, findings: list, dataset: str, seconds: float) -> dict:
    """A :class:`~normlab.lab.runs.Section`'s ``paper`` field (JSON-able): the reference, both
    setups, the dataset note, the findings table and the run time."""
    return {"cite": paper.cite, "short": paper.short, "url": paper.url, "where": paper.where, "setup": paper.setup, "ours": paper.ours,
            "dataset": (f"Our runs use {dataset}; the absolute numbers are therefore not the paper's, "
                        f"only the comparisons are."),
            "findings": [f.row() for f in findings], "seconds": round(float(seconds), 1)}


def verdict_metrics(findings: list) -> dict:
    """``{claim key: verdict}``, for metrics.json."""
    return {f.claim.key: f.verdict for f in findings}
