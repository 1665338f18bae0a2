"""Variants are registered objects that say what they are: no module parses a name to learn it."""
import pytest

from fmnist import variants
from fmnist.export import get_format, list_formats
from fmnist.registry import UnknownName
from fmnist.variants import BASE, Variant


def test_names_parents_and_kinds_follow_from_the_definition():
    pruned, qat, both = Variant(prune=0.5), Variant(qat=True), Variant(prune=0.5, qat=True)
    assert [v.name for v in (BASE, pruned, qat, both)] == ["base", "pruned-50", "qat", "pruned-50-qat"]
    assert [v.parent for v in (BASE, pruned, qat, both)] == [None, BASE, BASE, pruned]
    assert [v.quantization_aware for v in (BASE, pruned, qat, both)] == [False, False, True, True]
    assert pruned.finetune_epochs == 2 and qat.finetune_epochs == both.finetune_epochs == 1


def test_a_new_sparsity_is_one_registration_and_round_trips_through_a_record():
    made = variants.requested(qat=True, prune=0.3)
    assert [v.name for v in made] == ["pruned-30", "qat", "pruned-30-qat"]
    assert variants.get_variant("pruned-30-qat") == Variant(prune=0.3, qat=True)
    assert variants.from_record({"derivation": Variant(prune=0.3).as_dict()}) == Variant(prune=0.3)
    with pytest.raises(UnknownName, match="unknown variant 'pruned-7'; known variants: base, qat"):
        variants.get_variant("pruned-7")


@pytest.mark.parametrize("fmt", list_formats())
def test_every_format_says_whether_it_applies_to_every_variant(fmt):
    for name in variants.list_variants():
        reason = get_format(fmt).not_for(variants.get_variant(name))
        assert reason is None or (isinstance(reason, str) and len(reason) > 20)
    assert get_format(fmt).not_for(BASE) is None  # everything is made for the recipe's own model
