"""eval-mode: forgetting ``model.eval()``, i.e. evaluating a batch-norm net with the test batch's statistics.

Source of the belief: the PyTorch documentation of ``torch.nn.BatchNorm1d`` (2024), which says that
in training the layer normalizes with the mini-batch's mean and variance and keeps running
estimates that are used for normalization during evaluation, and that ``model.eval()`` (``Module.eval``)
is what switches a module into evaluation mode; forgetting it is the classic bug. PyTorch also
refuses to train batch norm on one value per channel ("Expected more than 1 value per channel
when training").

What is measured: a 784-128-128-10 fully connected batch-norm net on Fashion-MNIST (flattened,
mean image subtracted), 4096 training images, Adam 1e-3, batch 64, 4 epochs (256 steps: the
budget's share; the eval-mode accuracy is about 0.83 there, a net trained well enough for the
comparison), 3 seeds. After training the
``measure`` function classifies the first ``num_test`` test images in eval mode (running
statistics) and in train mode (each consecutive test batch of 8 or 256 normalized with its own
statistics, as a forgotten ``model.eval()``); the running statistics are restored after each
train-mode pass, so nothing changes the trained model. Train mode at batch 1 is attempted and
the error it raises recorded, message and all.

Why these batch sizes: at 256 the test batch's statistics are close to the population's, so
forgetting ``eval()`` costs little; at 8 they are noisy (each image's output depends on the
other seven), which is where the bug shows. Runs: ``bn/seed=S`` tagged ``net``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...lab import figures
from ...lab.runs import RunSpec, Runs, Section
from ...lab.tasks import UPDATE_RULES
from ..papers.verdict import Claim, Finding, Paper, paper_block, run_seconds, verdict, verdict_metrics
from ..summarize import check_common, config_dict, positive, positive_tuple, problems_sentence, spread, status_text
from ._common import condition_mean, measured, seed_bars, seed_values, task, text

NAME = "eval-mode"
TITLE = "Forgetting model.eval(): a batch-norm net evaluated with the test batch's statistics"
QUESTION = ("How much test accuracy does a batch-norm net lose when it is evaluated in train mode (each test "
            "batch normalized with its own statistics) instead of eval mode, at test batch 1, 8 and 256?")
SUITE = "pitfalls"

PAPER = Paper(
    authors="PyTorch", year=2024, title="torch.nn.BatchNorm1d and Module.eval documentation", arxiv="",
    where="BatchNorm1d: the running statistics used in evaluation; Module.eval; the one-value-per-channel error",
    setup=("Batch norm normalizes with the batch's statistics in training and with running estimates in "
           "evaluation; model.eval() selects the latter. Training mode with one value per channel raises "
           "'Expected more than 1 value per channel when training'."),
    ours=("A 784-128-128-10 batch-norm net, 4096 Fashion-MNIST images, Adam 1e-3, batch 64, 4 epochs, 3 seeds; "
          "the test set classified in eval mode and in train mode at test batch 1, 8 and 256."))

TOL = 0.01   # accuracy: the loss at batch 8 must reach it; at batch 256 the two modes must agree within it
FIX_WORDS = ("at least 2", "mode='test'")   # the fix the refusal must name: a larger batch, or eval mode

CLAIMS = (
    Claim("a", "Train mode cannot normalize a single test image: it is refused.",
          "PyTorch raises ValueError 'Expected more than 1 value per channel when training' for one value "
          "per channel in training mode.",
          "Train mode at test batch 1 raises, for every seed, an error naming the fix (a batch of at least 2 "
          "or mode='test')."),
    Claim("b", "Forgetting eval() costs accuracy when the test batch is small.",
          "Documented behaviour, no number: in training mode the output depends on the batch's statistics.",
          f"acc_eval - acc_train(8) >= {TOL} (test accuracy, mean over seeds)."),
    Claim("c", "With a large test batch forgetting eval() is nearly harmless.",
          "No number in the documentation: a batch of 256 has statistics close to the population's.",
          f"|acc_eval - acc_train(256)| <= {TOL} (mean over seeds)."),
)


@dataclass(frozen=True)
class Config:
    hidden_dims: tuple[int, ...] = (128, 128)
    weight_scale: float = 0.05
    num_train: int = 4096
    num_epochs: int = 4
    batch_size: int = 64
    learning_rate: float = 1e-3
    update_rule: str = "adam"
    num_test: int = 4096                     # divisible by both test batches
    small_test_batch: int = 8
    large_test_batch: int = 256
    dataset: str = "fashion-mnist"
    seeds: tuple[int, ...] = (0, 1, 2)

    def __post_init__(self):
        check_common(self)
        if self.update_rule not in UPDATE_RULES:
            raise ValueError(f"update_rule must be one of {', '.join(UPDATE_RULES)}, got {self.update_rule!r}")
        positive_tuple(self, "hidden_dims", integer=True)
        positive(self, "num_train", "num_epochs", "batch_size", "num_test", "small_test_batch", "large_test_batch",
                 integer=True)
        positive(self, "weight_scale", "learning_rate")
        if self.batch_size > self.num_train:
            raise ValueError(f"batch_size={self.batch_size} exceeds num_train={self.num_train}")
        if not 2 <= self.small_test_batch < self.large_test_batch <= self.num_test:
            raise ValueError(f"need 2 <= small_test_batch < large_test_batch <= num_test, got "
                             f"{self.small_test_batch}, {self.large_test_batch}, {self.num_test}")


def quick(cfg: Config) -> Config:
    return dataclasses.replace(cfg, hidden_dims=(32, 32), num_train=512, num_epochs=2, num_test=512,
                               seeds=cfg.seeds[:2])


def runs(cfg: Config) -> list[RunSpec]:
    per_epoch = cfg.num_train // cfg.batch_size
    measure = {"fn": "normlab.experiments.pitfalls.eval_mode:measure",
               "kwargs": {"batch_sizes": [1, cfg.small_test_batch, cfg.large_test_batch]}}
    return [RunSpec(experiment=NAME, name=f"bn/seed={s}", model="fc", dataset=cfg.dataset, num_train=cfg.num_train,
                    num_test=cfg.num_test, seed=s, tags={"net": "batchnorm"},
                    model_kwargs={"hidden_dims": list(cfg.hidden_dims), "normalization": "batchnorm",
                                  "weight_scale": cfg.weight_scale},
                    task=task(cfg.num_epochs * per_epoch, cfg.batch_size, cfg.learning_rate, cfg.update_rule,
                              per_epoch, measure))
            for s in cfg.seeds]


def train_mode_accuracy(model, X, y, batch: int) -> float:
    """Accuracy with each consecutive batch of ``batch`` images normalized with its own statistics (a
    forgotten ``model.eval()``); a short tail batch is dropped; the running statistics are restored."""
    saved = model.state_arrays()
    try:
        n = len(X) // batch * batch
        pred = np.concatenate([model.scores(X[i:i + batch], "train").argmax(axis=1) for i in range(0, n, batch)])
    finally:
        model.load_state_arrays(saved)
    return float(np.mean(pred == y[:n]))


def measure(model, data, batch_sizes) -> dict:
    """The trained net's test accuracy in eval mode and in train mode at each batch size; a refusal
    (ValueError) is recorded as its message: ``{"eval": acc, "train": {"8": acc, "1": None, ...},
    "refused": {"1": "message", ...}}``."""
    X, y = data["X_test"], data["y_test"]
    out = {"eval": float(np.mean(model.loss(X).argmax(axis=1) == y)), "train": {}, "refused": {}}
    for b in batch_sizes:
        try:
            out["train"][str(b)] = train_mode_accuracy(model, X, y, b)
        except ValueError as exc:
            out["train"][str(b)], out["refused"][str(b)] = None, str(exc)
    return out


def refusal(r) -> bool | None:
    """Whether the run's train-mode pass at batch 1 was refused with the fix named (None: not measured)."""
    m = measured(r, "refused")
    if m is None:
        return None
    msg = m.get("1")
    return msg is not None and all(w in msg for w in FIX_WORDS)


def _train_acc(batch):
    return lambda r: (measured(r, "train") or {}).get(str(batch))


def criteria(refused: list, acc_eval, acc_small, acc_large) -> dict:
    """The checks: ``refused`` the per-seed refusals (True / False / None), the accuracies means or None."""
    ref = None if not refused or any(v is None for v in refused) else all(refused)
    return {"a": [ref],
            "b": [None if acc_eval is None or acc_small is None else bool(acc_eval - acc_small >= TOL)],
            "c": [None if acc_eval is None or acc_large is None else bool(abs(acc_eval - acc_large) <= TOL)]}


def analyze(cfg: Config, done: Runs, out_dir: Path) -> Section:
    out_dir = Path(out_dir)
    rs = done.where(net="batchnorm").by_seed()
    small, large = cfg.small_test_batch, cfg.large_test_batch
    ev = lambda r: measured(r, "eval")
    values = {"eval": seed_values(rs, cfg.seeds, ev), small: seed_values(rs, cfg.seeds, _train_acc(small)),
              large: seed_values(rs, cfg.seeds, _train_acc(large))}
    acc_eval, acc_small, acc_large = (condition_mean(rs, cfg.seeds, f) for f in (ev, _train_acc(small),
                                                                                 _train_acc(large)))
    refused = seed_values(rs, cfg.seeds, refusal)
    first = lambda r: (measured(r, "refused") or {}).get("1")
    messages = list(dict.fromkeys(m for m in seed_values(rs, cfg.seeds, first) if m))   # distinct, in seed order
    checks = criteria(refused, acc_eval, acc_small, acc_large)
    ours = {"a": (f"refused with the fix named at test batch 1 for {sum(v is True for v in refused)} of "
                  f"{len(cfg.seeds)} seeds" + (f"; the message: \u201c{messages[0]}\u201d" if messages else "")
                  + "."),
            "b": f"acc_eval = {text(acc_eval)}, acc_train({small}) = {text(acc_small)} (difference "
                 f"{text(None if acc_eval is None or acc_small is None else acc_eval - acc_small)}; at least {TOL} "
                 f"needed).",
            "c": f"acc_eval = {text(acc_eval)}, acc_train({large}) = {text(acc_large)} (difference "
                 f"{text(None if acc_eval is None or acc_large is None else acc_eval - acc_large)}; at most {TOL} "
                 f"either way allowed)."}
    found = [Finding(c, ours[c.key], verdict(checks[c.key])) for c in CLAIMS]
    sp = {k: spread(v) for k, v in values.items()}
    answer = (f"Evaluated in eval mode the batch-norm net reaches a test accuracy of {sp['eval'].text()}; in "
              f"train mode {sp[small].text()} at test batch {small} and {sp[large].text()} at test batch "
              f"{large}, and at batch 1 train mode is "
              f"{'refused' if refused and all(v is True for v in refused) else 'not refused by every seed'}. "
              + "Verdicts: " + "; ".join(f"({f.claim.key}) {f.verdict}" for f in found) + "."
              + problems_sentence(done, len(runs(cfg))))
    table = [{"evaluation": name, "test_acc": sp[k].mean, "test_acc_range": None if sp[k].mean is None else
              [sp[k].lo, sp[k].hi], "runs": status_text(rs, len(cfg.seeds))}
             for name, k in (("eval mode", "eval"), (f"train mode, batch {small}", small),
                             (f"train mode, batch {large}", large))]
    table.append({"evaluation": "train mode, batch 1", "test_acc": None, "test_acc_range": None,
                  "runs": f"refused ({sum(v is True for v in refused)} of {len(cfg.seeds)} seeds)"})
    metrics = {"verdicts": verdict_metrics(found), "checks": checks,
               "criteria_inputs": {"acc_eval": acc_eval, f"acc_train({small})": acc_small,
                                   f"acc_train({large})": acc_large, "refused_with_fix": refused,
                                   "refusal_messages": messages, "tol": TOL},
               "per_seed": {str(k): v for k, v in values.items()}}
    fig, (ax,) = figures.new_figure(1, 1, width=5.6, height=3.6,
                                    title=f"Batch-norm net on {cfg.dataset}: test accuracy by evaluation mode")
    labels = ["eval mode", "train mode\nbatch 1", f"train mode\nbatch {small}", f"train mode\nbatch {large}"]
    seed_bars(ax, labels, [values["eval"], [], values[small], values[large]], "test accuracy",
              colors=["#1f77b4", "#bbbbbb", "#ff7f0e", "#ff7f0e"])
    ax.annotate("refused\n(ValueError)", (1, 0.02), ha="center", va="bottom", fontsize=8,
                xycoords=("data", "axes fraction"))
    ax.set_ylim(0, 1)
    figs = [figures.save(fig, out_dir / "eval-mode-accuracy")[0]]
    return Section(NAME, TITLE, QUESTION, answer, config_dict(cfg), metrics, table, figs,
                   paper=paper_block(PAPER, found, cfg.dataset, run_seconds(done)))
