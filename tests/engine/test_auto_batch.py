"""max_batch_size="auto" and byte budgets: parsing, chunk sizes, the cache, and results that do not
depend on them."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from xaiscore import DTypeError, OptionError
from xaiscore._engine import auto_batch
from xaiscore._engine.auto_batch import BatchPolicy, parse_batch_policy, parse_bytes
from xaiscore._engine.batching import check_items_per_call, check_max_batch_size, chunked_map
from xaiscore.explainers import captum_explainer
from xaiscore.functional import deletion, max_sensitivity, mprt, road
from xaiscore.testing import strategies as xst


@pytest.fixture(autouse=True)
def _fresh_cache():
    auto_batch.clear_cache()
    yield
    auto_batch.clear_cache()


class _Recording(nn.Module):
    """A linear model that records the size of every call."""

    def __init__(self, features: int, classes: int = 3) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.linear = nn.Linear(features, classes).double()
        with torch.no_grad():
            self.linear.weight.copy_(torch.randn(classes, features, generator=generator,
                                                 dtype=torch.float64))
        self.sizes: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(x.shape[0])
        return self.linear(x.flatten(1))


@pytest.mark.parametrize("text, expected", [
    ("auto", BatchPolicy(auto=True)),
    (" AUTO ", BatchPolicy(auto=True)),
    ("auto:2GB", BatchPolicy(auto=True, max_bytes=2 * 10**9)),
    ("512MiB", BatchPolicy(auto=False, max_bytes=512 * 2**20)),
    ("1.5kB", BatchPolicy(auto=False, max_bytes=1500)),
    ("4096", BatchPolicy(auto=False, max_bytes=4096)),
])
def test_policies_parse(text, expected):
    assert parse_batch_policy(text) == expected
    assert check_max_batch_size(text) == expected


@pytest.mark.parametrize("bad", ["fast", "2 parsecs", "auto:", "auto:lots", "0MB", "-3GB", ""])
def test_bad_strings_raise_an_option_error_that_names_the_choices(bad):
    with pytest.raises(OptionError, match="auto"):
        check_max_batch_size(bad)


@pytest.mark.parametrize("bad, error", [(0, OptionError), (-1, OptionError), (2.0, DTypeError),
                                        (True, DTypeError),
                                        (None, DTypeError)])
def test_bad_numbers_raise(bad, error):
    with pytest.raises(error):
        check_max_batch_size(bad)


def test_explainers_need_a_number():
    with pytest.raises(DTypeError):
        check_items_per_call("auto")
    assert check_items_per_call(7) == 7


def test_parse_bytes_units():
    assert (parse_bytes("2GB") == 2 * 10**9 and parse_bytes("1GiB") == 2**30
            and parse_bytes("10 kb") == 10**4)


def test_a_byte_budget_bounds_every_chunk_after_the_first_item():
    model = _Recording(4 * 4)
    x = torch.rand(50, 1, 4, 4, dtype=torch.float64)  # 128 bytes per item

    def compute(s, e):
        return model(x[s:e])

    out = chunked_map(50, compute, max_batch_size="1kB")
    assert model.sizes[0] == 1  # one item first: its size is not known before
    assert max(model.sizes) == 1000 // 128 and sum(model.sizes) == 50
    torch.testing.assert_close(out, model.linear(x.flatten(1)).detach(), rtol=1e-12, atol=1e-12)
    model.sizes.clear()
    chunked_map(50, compute, max_batch_size="1kB")
    assert model.sizes[0] == 7  # the call site remembers the item size


def test_auto_probes_candidates_on_real_work_then_keeps_its_choice():
    model = _Recording(2 * 2)
    # enough to try every candidate
    n = auto_batch.SAMPLES_PER_CANDIDATE * sum(auto_batch.CANDIDATES) + 500
    x = torch.rand(n, 1, 2, 2, dtype=torch.float64)

    def compute(s, e):
        return model(x[s:e])

    chunked_map(n, compute, max_batch_size="auto")
    sizes = model.sizes
    assert sizes[0] == 1 and sum(sizes) == n
    probe = [s for s in sizes[1:] if s in auto_batch.CANDIDATES]
    assert probe[:2] == [8, 16]  # the candidates smallest first, then rounds
    timed = [choice.samples for choice in auto_batch._CHOICES.values() if choice.samples]
    assert len(timed) == 1 and all(len(t) <= auto_batch.SAMPLES_PER_CANDIDATE
                                   for t in timed[0].values())
    chosen = [c for c in auto_batch.cached_choices().values() if c is not None]
    assert len(chosen) == 1 and chosen[0] in auto_batch.CANDIDATES
    model.sizes.clear()
    chunked_map(n, compute, max_batch_size="auto")
    assert set(model.sizes[:-1]) == {chosen[0]}  # cached: no probe, no single-item chunk


def test_auto_stays_within_its_byte_budget():
    model = _Recording(8 * 8)
    x = torch.rand(300, 1, 8, 8, dtype=torch.float64)  # 512 bytes per item: 16 kB fit 32 items
    for _ in range(3):
        chunked_map(300, lambda s, e: model(x[s:e]), max_batch_size="auto:16kB")
    assert max(model.sizes) <= 32


def test_a_forward_function_without_modules_uses_the_fallback_size():
    x = torch.rand(200, 3)
    sizes = []

    def compute(s, e):
        sizes.append(e - s)
        return x[s:e].sum(1)

    out = chunked_map(200, compute, max_batch_size="10MB")
    assert sizes[0] == 1 and max(sizes) == auto_batch.FALLBACK_ITEMS
    torch.testing.assert_close(out, x.sum(1))


def _case():
    model = xst.tiny_mlp((1, 6, 6), 3, seed=1)
    generator = torch.Generator().manual_seed(2)
    x = torch.rand(5, 1, 6, 6, generator=generator, dtype=torch.float64)
    a = torch.randn(5, 1, 6, 6, generator=generator, dtype=torch.float64)
    return model, x, a, torch.tensor([0, 1, 2, 0, 1])


KERNELS = {
    "deletion": lambda model, x, a, y, mbs: deletion(model, x, a, y, features_per_step=3, max_batch_size=mbs).curve,  # noqa: E501
    "road": lambda model, x, a, y, mbs: road(model, x, a, y, percentages=[20, 50, 80], measure="logit",  # noqa: E501
                                            generator=torch.Generator().manual_seed(3),
                                             max_batch_size=mbs).curve,
    "max_sensitivity": lambda model, x, a, y, mbs: max_sensitivity(
        x, a, y, explain_fn=captum_explainer(model, "Gradient"), n_samples=7, seed=4,
        max_batch_size=mbs),
    "mprt": lambda model, x, a, y, mbs: mprt(
        model, x, y, explainer_factory=lambda m: captum_explainer(m, "Gradient"), seed=5,
        max_batch_size=mbs).curve,
}


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_kernel_results_do_not_depend_on_the_policy(name):
    model, x, a, y = _case()
    reference = KERNELS[name](model, x, a, y, 10_000)
    for policy in ("auto", "auto", "300B", "auto:1kB", 3):
        torch.testing.assert_close(KERNELS[name](model, x, a, y, policy), reference, rtol=1e-12,
                                   atol=1e-12,
                                   equal_nan=True)
