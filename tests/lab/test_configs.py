"""A Config to config.json and back, and from command-line strings (normlab.lab.configs)."""
import dataclasses
import typing

import pytest

import _fake_recipe as fake
from normlab.lab.configs import coerce_overrides, config_from_dict, config_to_dict, metavar


@dataclasses.dataclass(frozen=True)
class Typed:
    """Every annotation the command line reads, both spellings of an optional included."""
    old_optional: typing.Optional[int] = None
    new_optional: float | None = 1.0
    sizes: tuple[int, ...] = (1, 2)
    names: list[str] = dataclasses.field(default_factory=list)
    nested: tuple[tuple[int, ...], ...] = ((1,), (2, 3))
    maybe_sizes: typing.Optional[tuple[int, ...]] = None
    flag: bool = False
    text: str = "x"
    pair: tuple[int, float] = (1, 2.0)


def test_config_round_trip_and_coercion():
    cfg = fake.Config(hidden_dims=(3, 4), note="x")
    assert config_from_dict(fake.Config, config_to_dict(cfg)) == cfg
    got = coerce_overrides(fake.Config, {"num-epochs": "2", "learning_rate": "1e-2", "fail": "yes",
                                         "note": "null", "num_train": "1e3"})
    assert got == {"num_epochs": 2, "learning_rate": 0.01, "fail": True, "note": None, "num_train": 1000}
    with pytest.raises(ValueError, match="unknown option 'epochs'; valid: hidden_dims, num_train"):
        coerce_overrides(fake.Config, {"epochs": "2"})
    with pytest.raises(ValueError, match="expected an integer, got '2.5'"):
        coerce_overrides(fake.Config, {"num_epochs": "2.5"})
    with pytest.raises(ValueError, match="has no field.s. bogus"):
        config_from_dict(fake.Config, {"bogus": 1})


def test_json_lists_come_back_as_the_tuples_the_annotations_name():
    cfg = Typed(names=["a", "b"], nested=((4,), (5, 6)), maybe_sizes=(7, 8), pair=(3, 0.5))
    d = config_to_dict(cfg)
    assert d["nested"] == [[4], [5, 6]] and d["maybe_sizes"] == [7, 8] and d["names"] == ["a", "b"]
    back = config_from_dict(Typed, d)
    assert back == cfg and isinstance(back.nested[0], tuple) and isinstance(back.names, list)
    assert config_from_dict(Typed, config_to_dict(Typed())) == Typed()       # None stays None


def test_both_spellings_of_an_optional_are_read_alike():
    got = coerce_overrides(Typed, {"old-optional": "3", "new-optional": "none", "maybe-sizes": "4,5"})
    assert got == {"old_optional": 3, "new_optional": None, "maybe_sizes": (4, 5)}
    assert coerce_overrides(Typed, {"old_optional": "NULL", "new_optional": "2.5"}) == \
        {"old_optional": None, "new_optional": 2.5}
    with pytest.raises(ValueError, match="--old-optional: expected an integer, got 'x'"):
        coerce_overrides(Typed, {"old_optional": "x"})
    with pytest.raises(ValueError, match="--new-optional: expected a number, got 'x'"):
        coerce_overrides(Typed, {"new_optional": "x"})


def test_sequences_booleans_and_text_from_the_command_line():
    got = coerce_overrides(Typed, {"sizes": "(3, 4 5)", "names": "a,b", "flag": "off", "text": "none of it"})
    assert got == {"sizes": (3, 4, 5), "names": ["a", "b"], "flag": False, "text": "none of it"}
    assert coerce_overrides(Typed, {"sizes": (9,)}) == {"sizes": (9,)}         # not a string: as given
    with pytest.raises(ValueError, match="--flag: expected true/false, got 'maybe'"):
        coerce_overrides(Typed, {"flag": "maybe"})
    with pytest.raises(ValueError, match="--sizes: expected an integer, got 'a'"):
        coerce_overrides(Typed, {"sizes": "1,a"})


def test_metavars():
    got = {f.name: metavar(Typed, f.name) for f in dataclasses.fields(Typed)}
    assert got == {"old_optional": "N", "new_optional": "X", "sizes": "A,B,...", "names": "A,B,...",
                   "nested": "A,B,...", "maybe_sizes": "A,B,...", "flag": "BOOL", "text": "TEXT",
                   "pair": "A,B,..."}
