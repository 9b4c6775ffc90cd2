"""Meta-evaluation: ``xaiscore.meta.meta_evaluate`` against MetaQuantus' procedure, same settings,
same run.

Usage::

    python benchmarks/bench_meta.py               # B=32, 1x16x16, small CNN, 4 methods, K=5, 3 iterations
    python benchmarks/bench_meta.py --quick       # a smoke run in seconds
    python benchmarks/bench_meta.py --estimators sparseness --no-metaquantus

Both sides run the four tests of Hedström et al. 2023 (input/model x
resilience/adversary, the paper's magnitudes) with ``K`` perturbations and
``iterations`` repetitions on the same model and inputs, with the same four
explanation methods (Saliency, Gradient, IntegratedGradients with 10 steps,
InputXGradient; channels summed as ``quantus.explain`` does):

* **MetaQuantus**: ``metaquantus.MetaEvaluation`` (0.0.5, installed with
  ``pip install --no-deps metaquantus``: it declares torchvision and timm, which
  its meta-evaluation does not use; a stub ``torchvision`` module is put in
  ``sys.modules`` when the real one is missing) with a Quantus 0.6.0
  estimator (``Sparseness``, or ``PixelFlipping`` with its AUC per sample) and
  ``quantus.explain``. Without metaquantus, its procedure is run from the
  faithful re-implementation below (:func:`metaquantus_procedure`): a loop over
  tests, iterations, perturbations and methods, one ``quantus.explain`` and one
  Quantus estimator call each, as ``ipt.py``/``mpt.py`` do.
* **ours**: one ``meta_evaluate`` call (captum explainers through
  ``captum_explainer``, our kernels ``sparseness`` / ``pixel_flipping``).

MetaQuantus calls ``gc.collect()`` around every explanation and estimator call;
with torch, captum and Quantus loaded that costs about half a second each, most
of its run time. The baseline is therefore timed twice (``--baseline-gc both``):
as shipped, and with ``gc.collect`` made a no-op, which isolates its procedure
(the same explanations, Quantus' scoring) from that overhead. ``ours
explaining_s`` is the part of our time spent inside the explain functions: the
explanations both sides must compute.

Times include everything (explanations, scoring, statistics) after a warm-up
that imports captum and xarray. The CPU may be shared with other jobs: the load
average is printed with the machine line. Goal: MetaQuantus / ours >= 10.
"""  # noqa: E501

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import os
import sys
import time
import types
import warnings

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from _timing import machine_line, print_table  # noqa: E402

from xaiscore.explainers import captum_explainer  # noqa: E402
from xaiscore.meta import meta_evaluate  # noqa: E402

METHODS = ("Saliency", "Gradient", "IntegratedGradients", "InputXGradient")
ESTIMATORS = ("sparseness", "pixel_flipping")
TEST_LABELS = {  # MetaQuantus' test names -> ours
    "Model Resilience Test": "model_resilience",
    "Model Adversary Test": "model_adversary",
    "Input Resilience Test": "input_resilience",
    "Input Adversary Test": "input_adversary",
}
MAGNITUDES = {"model_resilience": 0.001, "model_adversary": 2.0, "input_resilience": 0.001,
              "input_adversary": 5.0}


def small_cnn(classes: int = 10, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)  # benchmark-only model initialisation
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.Flatten(), torch.nn.LazyLinear(classes),
    )


def our_methods() -> dict:
    options = {"IntegratedGradients": {"n_steps": 10}}
    return {name: (lambda m, name=name: captum_explainer(m, name, reduce_channels="sum",
                                                         **options.get(name, {})))
            for name in METHODS}


def our_metric(estimator: str, features_per_step: int) -> tuple[list[str], dict]:
    if estimator == "sparseness":
        return ["sparseness"], {}
    return (["pixel_flipping"],
            {"pixel_flipping": {"features_per_step": features_per_step, "baseline": "min"}})


def quantus_estimator(quantus, estimator: str, features_per_step: int):
    if estimator == "sparseness":
        return quantus.Sparseness(disable_warnings=True), "higher"
    return quantus.PixelFlipping(features_in_step=features_per_step, perturb_baseline="black",
                                 return_auc_per_sample=True, disable_warnings=True), "lower"


def import_metaquantus():
    """metaquantus, or None when it is not installed (a torchvision stub is added when only that is
    missing)."""
    try:
        import metaquantus
    except ModuleNotFoundError as error:
        if error.name != "torchvision":
            return None
        # only its ImageNet/MNIST set-up helpers use it
        sys.modules["torchvision"] = types.ModuleType("torchvision")
        import metaquantus
    return metaquantus


def run_metaquantus(metaquantus, quantus, model, x, estimator, direction, iterations, k):
    suite = {
        "Model Resilience Test": metaquantus.ModelPerturbationTest(
            noise_type="multiplicative", mean=1.0, std=MAGNITUDES["model_resilience"],
            type="Resilience"),
        "Model Adversary Test": metaquantus.ModelPerturbationTest(
            noise_type="multiplicative", mean=1.0, std=MAGNITUDES["model_adversary"],
            type="Adversary"),
        "Input Resilience "
        "Test": metaquantus.InputPerturbationTest(noise=MAGNITUDES["input_resilience"],
                                                                   type="Resilience"),
        "Input Adversary "
        "Test": metaquantus.InputPerturbationTest(noise=MAGNITUDES["input_adversary"],
                                                                  type="Adversary"),
    }
    meta = metaquantus.MetaEvaluation(test_suite=suite, xai_methods={m: {} for m in METHODS},
                                      iterations=iterations,
                                      nr_perturbations=k, explain_func=quantus.explain,
                                      write_to_file=False)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        meta(estimator=estimator, model=model, x_batch=x.numpy(),
             y_batch=model(x).argmax(1).numpy(),
             channel_first=True, softmax=False, device="cpu", score_direction=direction)
    return {space: float(result["MC_mean"])
            for space, result in meta.results_meta_consistency_scores.items()}


def metaquantus_procedure(quantus, model, x, estimator, iterations, k):
    """MetaQuantus' perturbation loop without the package: the same calls, in the same order
    (no statistics)."""
    import copy

    x_np = x.numpy()
    y = model(x).argmax(1).numpy()

    def explain_and_score(network, inputs, method):
        gc.collect()  # MetaQuantus collects garbage before and after explaining, and after scoring
        a = quantus.explain(model=network, inputs=x_np, targets=y, method=method, device="cpu")
        gc.collect()
        scores = np.asarray(estimator(model=network, x_batch=inputs, y_batch=y, a_batch=a,
                                      s_batch=None,
                                      channel_first=True, explain_func=quantus.explain,
                                      explain_func_kwargs={"method": method}, softmax=False,
                                      device="cpu"), float)
        gc.collect()
        return scores

    for test in TEST_LABELS.values():
        for method in METHODS:
            explain_and_score(model, x_np, method)  # unperturbed scores, once per test
        for _ in range(iterations):
            for _ in range(k):
                if test.startswith("input"):
                    noise = MAGNITUDES[test]
                    perturbed = np.clip(x_np + np.random.uniform(-noise, noise, x_np.shape),
                                        x_np.min(), None)
                    network = model
                    model(torch.as_tensor(perturbed, dtype=torch.float32)).argmax(1)
                else:
                    network = copy.deepcopy(model)
                    with torch.no_grad():
                        for p in network.parameters():
                            p.mul_(torch.normal(1.0, MAGNITUDES[test], p.shape))
                    perturbed = x_np
                    network(x).argmax(1)
                for method in METHODS:
                    explain_and_score(network, perturbed, method)


class ExplainTimer:
    """Wraps explainer factories and adds up the time spent inside the explain functions."""

    def __init__(self, factories: dict) -> None:
        self.seconds = 0.0
        self.factories = {name: self._wrap(factory) for name, factory in factories.items()}

    def _wrap(self, factory):
        def bound(model):
            explain = factory(model)

            def timed(x, target):
                start = time.perf_counter()
                try:
                    return explain(x, target)
                finally:
                    self.seconds += time.perf_counter() - start

            return timed

        return bound


def time_baseline(run, *, disable_gc: bool) -> float:
    """Wall time of ``run()``, optionally with ``gc.collect`` made a no-op for its duration."""
    np.random.seed(0)
    torch.manual_seed(0)  # MetaQuantus draws from the global generators
    collect = gc.collect
    if disable_gc:
        gc.collect = lambda *args, **kwargs: 0
    try:
        start = time.perf_counter()
        run()
        return time.perf_counter() - start
    finally:
        gc.collect = collect


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--perturbations", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--estimators", nargs="+", default=list(ESTIMATORS), choices=ESTIMATORS)
    parser.add_argument("--max-batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's choice)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="best of this many runs (ours, gc-free baseline)")
    parser.add_argument("--no-metaquantus", action="store_true", help="time ours only")
    parser.add_argument(
        "--baseline-gc",
        choices=["on", "off", "both"],
        default="both",
        help="run MetaQuantus as shipped ('on'), with gc.collect made a no-op ('off': it calls it "
        "around every explanation and estimator call), or both (default)",
    )
    parser.add_argument(
        "--reimplemented",
        action="store_true",
        help="use the re-implemented MetaQuantus loop even if metaquantus is installed",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.size, args.perturbations, args.iterations, args.repeats = 8, 8, 2, 1, 1
    warnings.filterwarnings("ignore")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(f"machine: {machine_line()}; load average {os.getloadavg()[0]:.2f} (CPU may be shared)")
    features_per_step = args.size
    print(f"B={args.batch}, 1x{args.size}x{args.size}, small CNN, methods {', '.join(METHODS)}, "
          f"K={args.perturbations}, iterations={args.iterations}, pixel_flipping "
          f"{features_per_step} features/step")
    x = torch.rand(args.batch, 1, args.size, args.size, generator=torch.Generator().manual_seed(0))
    model = small_cnn()
    with torch.no_grad():
        model(x)  # materialise the lazy layer
    model.eval()
    methods = our_methods()
    methods["Saliency"](model)(x[:2], torch.zeros(2, dtype=torch.long))  # warm-up: imports captum
    import xarray  # noqa: F401  (warm-up: imported by meta_evaluate)

    quantus = metaquantus = None
    variants = {"on": [False], "off": [True], "both": [False, True]}[args.baseline_gc]
    if not args.no_metaquantus:
        import quantus

        if not hasattr(np, "trapz"):
            np.trapz = np.trapezoid  # Quantus 0.6.0 on numpy >= 2.4
        metaquantus = None if args.reimplemented else import_metaquantus()
        baseline = ("metaquantus 0.0.5" if metaquantus is not None
                    else "MetaQuantus procedure (re-implemented)")
        print(f"baseline: {baseline}; 'no gc' = with gc.collect made a no-op")
    rows = []
    for estimator in args.estimators:
        names, options = our_metric(estimator, features_per_step)
        row: dict[str, object] = {"estimator": estimator}
        if quantus is not None:
            metric, direction = quantus_estimator(quantus, estimator, features_per_step)
            result: dict = {}

            def baseline_run():
                if metaquantus is not None:
                    result.update(run_metaquantus(metaquantus, quantus, model, x, metric, direction,
                                                  args.iterations, args.perturbations))
                else:
                    metaquantus_procedure(quantus, model, x, metric, args.iterations,
                                          args.perturbations)
        # Ours and the gc-free baseline alternate `repeats` times (best of each: the CPU may be
        # shared); the baseline as shipped takes minutes and runs once.
        ours_times, explaining, baseline_times = [], [], []
        for _ in range(args.repeats):
            timer = ExplainTimer(methods)
            start = time.perf_counter()
            ds = meta_evaluate(model, x, timer.factories, names, metric_options=options,
                               iterations=args.iterations,
                               perturbations=args.perturbations, max_batch_size=args.max_batch_size,
                               seed=0)
            ours_times.append(time.perf_counter() - start)
            explaining.append(timer.seconds)
            if quantus is not None and True in variants:
                baseline_times.append(time_baseline(baseline_run, disable_gc=True))
        best = min(range(args.repeats), key=ours_times.__getitem__)
        ours = ours_times[best]
        row.update({"ours_s": ours, "ours explaining_s": explaining[best],
                    "ours MC input/model": "/".join(f"{v:.2f}" for v in ds["mc_mean"].values[0])})
        if quantus is not None:
            if True in variants:
                row["baseline no gc_s"] = min(baseline_times)
                row["x (no gc)"] = min(baseline_times) / ours
            if False in variants:
                seconds = time_baseline(baseline_run, disable_gc=False)
                row["baseline as shipped_s"] = seconds
                row["x (as shipped)"] = seconds / ours
            if metaquantus is not None:
                row["theirs MC input/model"] = (
                    f"{result.get('Input', np.nan):.2f}/{result.get('Model', np.nan):.2f}")
        rows.append(row)
    print(f"load average now {os.getloadavg()[0]:.2f}; goal: baseline / ours >= 10")
    columns = ["estimator", "ours_s", "ours explaining_s"]
    if quantus is not None:
        for disable_gc in (False, True):
            if disable_gc in variants:
                label = "no gc" if disable_gc else "as shipped"
                columns += [f"baseline {label}_s", f"x ({label})"]
    columns += ["ours MC input/model"] + (["theirs MC input/model"] if metaquantus is not None
                                          else [])
    print_table(rows, columns)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
