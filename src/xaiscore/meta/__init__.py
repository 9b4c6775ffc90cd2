"""Meta-evaluation: which metric can be trusted? MetaQuantus' tests on xaiscore's kernels, and more.

Hedström et al. (2023, TMLR) judge a quality estimator (a metric) by how it
reacts when the evaluation problem is perturbed: slightly (*resilience*: the
prediction does not change, so neither should the scores) and strongly
(*adversary*: the prediction changes, so the scores should get worse), both
for the inputs and for the model weights. :func:`meta_evaluate` runs the four
tests for any metrics of the registry (:mod:`xaiscore.specs`) and returns an
``xarray.Dataset`` with

* the intra-consistency (IAC, Wilcoxon signed-rank p-values), the
  inter-consistency (IEC, rankings and directions) and the MC score per space
  with its spread over iterations (:mod:`xaiscore.meta.consistency`);
* the agreement between metrics, the split-half reliability of each metric's
  ranking and the separation from random attribution maps
  (:mod:`xaiscore.meta.agreement`).

MetaQuantus treats the estimator as a black box and makes
(iterations x perturbations x methods x tests) full Quantus calls; here every
perturbed variant is explained and scored in batched kernel calls
(``benchmarks/bench_meta.py`` measures the difference). :mod:`xaiscore.meta.report`
draws the MC scores and the agreement matrix, and writes an HTML section the
harness report can include. Definitions and an example reading: ``docs/meta.md``.

Example:
    >>> import torch
    >>> from xaiscore.explainers import captum_explainer
    >>> from xaiscore.meta import meta_evaluate
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3)).eval()
    >>> x = torch.rand(6, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    >>> methods = {"gradient": lambda m: captum_explainer(m, "Gradient"),
    ...            "saliency": lambda m: captum_explainer(m, "Saliency")}
    >>> ds = meta_evaluate(model, x, methods, ["sparseness", "complexity"], iterations=2, perturbations=2,
    ...                    n_splits=4, seed=1)
    >>> ds["metric"].values.tolist(), ds["space"].values.tolist()
    (['sparseness', 'complexity'], ['input', 'model'])
"""  # noqa: E501

from xaiscore.meta.agreement import (metric_agreement, random_baseline_separation,
                                     split_half_reliability)
from xaiscore.meta.consistency import (
    consistency,
    inter_consistency_adversary,
    inter_consistency_resilience,
    intra_consistency,
    meta_consistency,
    random_mc_level,
)
from xaiscore.meta.evaluate import SPACES, meta_evaluate
from xaiscore.meta.perturbation import (
    DEFAULT_MAGNITUDES,
    TEST_NAMES,
    ModelPerturber,
    PerturbationTest,
    perturb_inputs,
    resolve_tests,
)
from xaiscore.meta._stats import kendall_tau_b, wilcoxon_p_value

__all__ = [
    "meta_evaluate",
    "SPACES",
    "TEST_NAMES",
    "DEFAULT_MAGNITUDES",
    "PerturbationTest",
    "resolve_tests",
    "perturb_inputs",
    "ModelPerturber",
    "intra_consistency",
    "inter_consistency_resilience",
    "inter_consistency_adversary",
    "consistency",
    "meta_consistency",
    "random_mc_level",
    "metric_agreement",
    "split_half_reliability",
    "random_baseline_separation",
    "wilcoxon_p_value",
    "kendall_tau_b",
]
