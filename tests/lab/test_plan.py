"""Resolving recipes into plans (normlab.lab.plan): defaults, --quick, --engine and
options for a new run; config.json's configs for a resumed one."""
import dataclasses

import pytest

import _fake_recipe as fake
from normlab.lab.configs import config_to_dict
from normlab.lab.plan import Plan, plan, plans_from_config, recipe, recipes
from normlab.lab.rundir import RunDirError


@pytest.fixture
def recipe_table(monkeypatch):
    fake.install(monkeypatch)
    return fake


def test_plan_applies_the_options_to_the_course_defaults(recipe_table):
    [p] = plan(["fake", "fake"], overrides={"fake": {"num-epochs": "2", "normalizations": "none"}})
    assert isinstance(p, Plan) and p.name == "fake" and p.module is fake
    assert p.config == fake.Config(num_epochs=2, normalizations=("none",))
    assert p.specs == fake.runs(p.config) and [s.name for s in p.specs] == ["none/seed=0"]
    assert plan()[0].config == fake.Config() and recipes() == {"fake": fake} and recipe("fake") is fake


def test_engine_is_set_only_on_recipes_that_have_one(recipe_table, monkeypatch):
    assert plan(engine="torch")[0].config == fake.Config()          # fake.Config has no engine field

    @dataclasses.dataclass(frozen=True)
    class WithEngine:
        engine: str = "numpy"
    monkeypatch.setattr(fake, "Config", WithEngine)
    monkeypatch.setattr(fake, "runs", lambda cfg: [])
    assert plan(engine="both")[0].config == WithEngine(engine="both")


def test_plan_refuses_unknown_names_and_stray_options(recipe_table):
    with pytest.raises(ValueError, match="unknown experiment 'nope'; expected one of: fake"):
        plan(["nope"])
    with pytest.raises(ValueError, match=r"overrides for 'other', which is not among the experiments run \(fake\)"):
        plan(["fake"], overrides={"other": {"num_epochs": "2"}})
    with pytest.raises(ValueError, match="--num-train: expected an integer"):
        plan(overrides={"fake": {"num_train": "many"}})
    with pytest.raises(ValueError, match="num_train must be at least 50"):       # the Config's own check
        plan(overrides={"fake": {"num_train": "10"}})


def test_plans_read_back_from_config_json_are_the_plans_written(recipe_table, tmp_path):
    plans = plan(overrides={"fake": {"hidden_dims": "3,4", "note": "x"}})
    stored = {"experiments": {p.name: {"config": config_to_dict(p.config)} for p in plans}}
    back = plans_from_config(tmp_path, stored)
    assert [(b.name, b.module, b.config, b.specs) for b in back] == [(p.name, p.module, p.config, p.specs)
                                                                     for p in plans]
    assert back[0].config.hidden_dims == (3, 4)
    with pytest.raises(RunDirError, match=r"config.json names experiment 'gone', which this normlab does not "
                                          r"have \(known: fake\)"):
        plans_from_config(tmp_path, {"experiments": {"gone": {"config": {}}}})
