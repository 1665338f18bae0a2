"""Variants are objects that say what they are: no module parses a name to learn it, two sparsities
never share a name, and reading a variant changes no registry."""
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


@pytest.mark.parametrize("prune", [0.5, 0.504, 0.5001, 0.05, 0.3333, 0.99])
@pytest.mark.parametrize("qat", [False, True])
def test_a_name_stands_for_one_sparsity_and_round_trips(prune, qat):
    variant = Variant(prune=prune, qat=qat)
    assert Variant.from_name(variant.name) == variant
    assert variants.from_record({"derivation": variant.as_dict()}) == variant


def test_two_sparsities_never_share_a_name():
    names = {Variant(prune=p).name for p in (0.5, 0.504, 0.5001, 0.5049, 0.51)}
    assert len(names) == 5 and "pruned-50.4" in names


def test_reading_or_requesting_a_variant_changes_no_registry():
    before = variants.list_variants()
    made = variants.requested(qat=True, prune=0.3)
    assert [v.name for v in made] == ["pruned-30", "qat", "pruned-30-qat"]
    variants.from_record({"derivation": Variant(prune=0.42).as_dict()})
    variants.get_variant("pruned-42-qat")
    assert variants.list_variants() == before


@pytest.mark.parametrize("name,message", [("pruned-7.00", "write the percent as 'pruned-7'"),
                                          ("pruned-150", "between 0 and 100"), ("qat-pruned-5", "variants are"),
                                          ("pruned-", "variants are"), ("", "variants are")])
def test_a_malformed_name_is_one_line_saying_why(name, message):
    with pytest.raises(UnknownName, match=message):
        variants.get_variant(name)


# What is deliberately not made, and the word its reason must name: anything else is made.
NOT_MADE = {("tflite-fp16", True): "quantization-aware", ("tflite-dynamic", True): "quantization-aware",
            ("tflite-int8-mixed", True): "quantization-aware", ("onnx-int8", True): "quantization-aware",
            ("tflm", "pruned"): "sparsity", ("c", "pruned"): "sparsity"}


@pytest.mark.parametrize("fmt", list_formats())
def test_every_format_applies_to_every_variant_but_the_documented_exceptions(fmt):
    for variant in (BASE, Variant(qat=True), Variant(prune=0.5), Variant(prune=0.5, qat=True), Variant(prune=0.3)):
        expected = NOT_MADE.get((fmt, True)) if variant.qat else None
        expected = expected or (NOT_MADE.get((fmt, "pruned")) if variant.prune else None)
        reason = get_format(fmt).not_for(variant)
        if expected is None:
            assert reason is None, f"{fmt} is not made for {variant.name}: {reason}"
        else:
            assert reason is not None and expected in reason, f"{fmt} of {variant.name}: {reason}"
