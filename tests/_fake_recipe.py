"""A tiny recipe for the orchestration tests: two small real training runs
(a one-hidden-layer net, 200 Fashion-MNIST images, one epoch), with and
without batch norm, and an analysis that writes a figure file and a table.

``install(monkeypatch)`` makes it the only recipe; ``BOOT`` does the same in a
subprocess (``python -c BOOT + "main([...])"``).
"""
import base64
import sys
import types
from dataclasses import dataclass

from normlab.lab.runs import RunSpec, Section

NAME = "fake"
TITLE = "A fake experiment"
QUESTION = "Does batch norm change one epoch on 200 images?"
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")


@dataclass(frozen=True)
class Config:
    hidden_dims: tuple[int, ...] = (20,)
    num_train: int = 200
    num_epochs: int = 1
    learning_rate: float = 1e-3
    normalizations: tuple[str, ...] = ("batchnorm", "none")
    dataset: str = "fashion-mnist"
    note: str | None = None
    fail: bool = False

    def __post_init__(self):
        if self.num_train < 50:
            raise ValueError(f"num_train must be at least 50, got {self.num_train}")


def quick(cfg):
    return cfg


def runs(cfg):
    out = []
    for norm in cfg.normalizations:
        model_kwargs = {"hidden_dims": list(cfg.hidden_dims), "weight_scale": 2e-2,
                        "normalization": None if norm == "none" else norm}
        if cfg.fail:
            model_kwargs["no_such_argument"] = 1
        out.append(RunSpec(experiment=NAME, name=f"{norm}/seed=0", model="fc", model_kwargs=model_kwargs,
                           tags={"net": norm},
                           solver_kwargs={"update_rule": "adam", "optim_config": {"learning_rate": cfg.learning_rate},
                                          "num_epochs": cfg.num_epochs, "batch_size": 50},
                           dataset=cfg.dataset, num_train=cfg.num_train, num_val=100, num_test=100))
    return out


def analyze(cfg, done, out_dir):
    fig = out_dir / "fake.png"
    fig.write_bytes(PNG)
    table = [{"run": s.name, "status": r.status, "final loss": r.final_loss, "best val acc": r.best_val_acc}
             for s, r in sorted(done, key=lambda sr: sr[0].name)]
    finished = [r for r in done.results if r.status == "finished"]
    return Section(name=NAME, title=TITLE, question=QUESTION,
                   answer=f"{len(finished)} of {len(done)} runs finished.", config={},
                   metrics={"finished": len(finished),
                            "best_val_acc": {s.name: r.best_val_acc for s, r in done}},
                   table=table, figures=[fig])


def install(monkeypatch):
    """Make this module the only recipe (normlab.experiments.registry replaced)."""
    reg = types.ModuleType("normlab.experiments.registry")
    reg.RECIPES = {NAME: sys.modules[__name__]}
    reg.get = lambda name: reg.RECIPES[name]
    monkeypatch.setitem(sys.modules, "normlab.experiments.registry", reg)
    import normlab.experiments
    monkeypatch.setattr(normlab.experiments, "registry", reg, raising=False)


BOOT = f"""
import sys, types
sys.path.insert(0, {__file__.rsplit('/', 1)[0]!r})
import _fake_recipe
reg = types.ModuleType("normlab.experiments.registry")
reg.RECIPES = {{"fake": _fake_recipe}}
reg.get = reg.RECIPES.__getitem__
sys.modules["normlab.experiments.registry"] = reg
from normlab.cli import main
"""
