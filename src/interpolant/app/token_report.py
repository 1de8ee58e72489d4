"""Evaluating and reporting token runs, and the ``text`` demo (``interpolant demo text``).

Measures (issue: discrete diffusion), each beside the same measure of real held-out data:

* the bound per token on held-out data in bits (``bits per character`` for text): the
  process's own ELBO (:func:`interpolant.discrete.evaluate_bound`);
* text: the perplexity of samples under a character 3-gram model fitted on held-out text
  (:class:`interpolant.discrete.NGramModel`; real training text under the same model is the
  reference) and the fraction of distinct 2- and 3-grams (diversity);
* quantized or binary digits: Digits-FD of the samples against held-out digits.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .. import discrete, metrics, plots
from ..labels import NULL_LABEL
from . import report
from .runs import RunConfig, write_json
from .tokens import TokenRun, as_images, check_samplers, draw_tokens, load_tokens

SHOWN_SAMPLES = 6


def default_samplers(run: TokenRun) -> list[str]:
    """The samplers a token run is evaluated with by default."""
    if run.config.process == "masked":
        return ["ancestral", "tau-leaping", "first-hitting"]
    return ["ancestral", "tau-leaping"]


def measure(config: RunConfig, samples: Tensor, reference: Tensor,
            ngram: discrete.NGramModel | None = None) -> dict[str, float]:
    """The quality measures of token ``samples`` against held-out ``reference`` tokens."""
    if config.data == "text":
        ngram = ngram or discrete.NGramModel(reference, n=3, vocab=len(discrete.TEXT_VOCAB))
        return {"perplexity": ngram.perplexity(samples),
                "distinct_2": discrete.distinct_ngrams(samples, 2),
                "distinct_3": discrete.distinct_ngrams(samples, 3)}
    return {"digits_fd": metrics.digits_fd(as_images(config, samples),
                                           as_images(config, reference))}


def evaluate_tokens(run: TokenRun, out_dir: str | Path, samplers: Sequence[str],
                    nfes: Sequence[int], n: int = 256, seed: int = 0) -> dict[str, Any]:
    """Sample with every sampler at every NFE, measure, save the samples; writes and returns
    ``eval.json``'s content: ``rows``, the real-data ``reference`` row and the held-out bound."""
    check_samplers(run, samplers)
    out_dir = Path(out_dir)
    config = run.config
    test, test_labels, _ = load_tokens(config, "test")
    train = load_tokens(config, "train")[0]
    ngram = (discrete.NGramModel(test, n=3, vocab=len(discrete.TEXT_VOCAB))
             if config.data == "text" else None)
    real = train[torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:n]]
    reference = {"sampler": "real data", **measure(config, real, test, ngram)}
    bound, error = discrete.evaluate_bound(run.model, run.process, test, repeats=2, seed=seed,
                                           cond=None if test_labels is None else
                                           torch.full_like(test_labels, NULL_LABEL))
    rows = []
    for sampler in samplers:
        for nfe in ([None] if sampler == "first-hitting" else nfes):
            start = time.perf_counter()
            out = draw_tokens(run, sampler, nfe, n, seed)
            seconds = time.perf_counter() - start
            row = {"sampler": sampler, "nfe": out.nfe, "seconds": seconds,
                   **measure(config, out.tokens, test, ngram)}
            row["path"] = str(save_samples(config, out.tokens, out_dir / "samples" /
                                           f"{sampler}_{out.nfe}"))
            rows.append(row)
    result = {"kind": "tokens", "process": config.process, "data": config.data, "n": n,
              "bound_bits": float(discrete.bits(bound)),
              "bound_bits_error": float(discrete.bits(error)), "rows": rows,
              "reference": reference}
    write_json(out_dir / "eval.json", result)
    return result


def save_samples(config: RunConfig, tokens: Tensor, stem: Path) -> Path:
    """Text samples as ``STEM.txt`` (one per paragraph), digits as the picture ``STEM.png``."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    if config.data == "text":
        file = stem.with_suffix(".txt")
        file.write_text("\n\n".join(discrete.decode_text(tokens)) + "\n")
        return file
    from ..images import save_grid

    return save_grid(as_images(config, tokens[:100]), stem.with_suffix(".png"), nrow=10)


def summary(result: dict[str, Any]) -> str:
    """A plain-text table of ``result`` for the terminal."""
    keys = [k for k in result["rows"][0] if k not in ("sampler", "path")]
    lines = [f"held-out bound: {result['bound_bits']:.3f} +- {result['bound_bits_error']:.3f} "
             "bits per token", "sampler        " + "  ".join(f"{k:>11}" for k in keys)]
    for row in [*result["rows"], result["reference"]]:
        cells = [f"{row[k]:>11.4g}" if isinstance(row.get(k), float) else f"{row.get(k, ''):>11}"
                 for k in keys]
        lines.append(f"{row['sampler']:<15}" + "  ".join(cells))
    return "\n".join(lines)


def token_sections(run_dir: Path, config: RunConfig, result: dict[str, Any]) -> list[report.Section]:
    """Report sections of a token run: samples, a quality-vs-NFE plot and the table."""
    rows = result["rows"]
    measure_name = "perplexity" if config.data == "text" else "digits_fd"
    plot = plots.error_vs_nfe([{"solver": r["sampler"], "nfe": r["nfe"], "value": r[measure_name]}
                               for r in rows], run_dir / "report" / f"{measure_name}_vs_nfe.png",
                              ylabel=measure_name.replace("_", "-"), logy=False)
    reference = result["reference"][measure_name]
    notes = [f"Bound on held-out data: {result['bound_bits']:.3f} ± "
             f"{result['bound_bits_error']:.3f} bits per token ({config.process} process, "
             f"{config.path} schedule).",
             f"Real training data scores {measure_name.replace('_', '-')} {reference:.4g} "
             "against the same held-out data: the floor a perfect model reaches."]
    sections = [report.Section("Quality against NFE", paragraphs=notes, images=[
        report.Picture(plot, f"{measure_name} of {result['n']} samples per sampler and NFE")],
        tables=[report.Table([{k: v for k, v in r.items() if k != "path"}
                              for r in [*rows, result["reference"]]])])]
    if config.data == "text":
        shown = []
        for r in rows:
            texts = Path(r["path"]).read_text().split("\n\n")[:SHOWN_SAMPLES]
            shown += [{"sampler": r["sampler"], "nfe": r["nfe"],
                       "sample": t.replace("\n", " ⏎ ")} for t in texts]
        sections.append(report.Section("Samples", tables=[report.Table(shown)]))
    else:
        grid = report.ImageGrid.from_records(
            [{"solver": r["sampler"], "nfe": r["nfe"], "path": r["path"]} for r in rows],
            caption="100 samples per cell, same seeds")
        sections.insert(0, report.Section("Samples", grids=[grid]))
    sections.append(report.Section("Run", config=config.to_json()))
    return sections


def write_token_report(run_dir: str | Path, config: RunConfig, result: dict[str, Any],
                       title: str | None = None, notes: Sequence[str] = ()) -> Path:
    run_dir = Path(run_dir)
    sections = token_sections(run_dir, config, result)
    if notes:
        sections.insert(0, report.Section("About this run", paragraphs=list(notes)))
    return report.write_report(run_dir / "report", title or f"{config.process} diffusion on "
                               f"{config.data}", sections)


# The text demo: a masked diffusion model of Python's documentation, trained for about five
# minutes on two CPU cores, sampled with each sampler at several NFE.
DEMO_STEPS, DEMO_NFES, DEMO_N = 1200, (8, 16, 64), 128
DEMO_MODEL = {"hidden": 128, "depth": 3, "heads": 4}


def text_demo(out: str | Path, quick: bool = False, threads: int | None = None) -> Path:
    """``interpolant demo text``: train a masked diffusion model on character text, sample it
    with ancestral, tau-leaping and first-hitting sampling, measure and report; returns the
    page. ``quick`` is a seconds-long smoke version."""
    from .tokens import load_token_run, train_token_run
    from .workflows import DEMO_MARK, clear_previous_run, set_threads

    out = Path(out)
    start = time.perf_counter()
    clear_previous_run(out)
    set_threads(threads)
    out.mkdir(parents=True, exist_ok=True)
    (out / DEMO_MARK).write_text("made by `interpolant demo text`, which may replace this run\n")
    steps = 10 if quick else DEMO_STEPS
    config = RunConfig(data="text", model="tokens", path="cosine", process="masked",
                       model_options={"hidden": 32, "depth": 1} if quick else DEMO_MODEL,
                       train={"steps": steps, "checkpoint_every": steps})
    config.check()
    print(f"interpolant demo text: a masked diffusion model of Python's documentation "
          f"({steps} steps) into {out}")
    train_token_run(config, out, progress=True)
    trained = time.perf_counter() - start
    run = load_token_run(out)
    nfes = (4,) if quick else DEMO_NFES
    result = evaluate_tokens(run, out, default_samplers(run), nfes, n=16 if quick else DEMO_N)
    print(summary(result))
    minutes = (time.perf_counter() - start) / 60
    notes = [f"Trained in {trained / 60:.1f} min; the whole demo took {minutes:.1f} min on this "
             "machine.", "Perplexity: of the samples under a character 3-gram model fitted on "
             "held-out text (lower is closer to the text; real text sets the floor). Distinct "
             "n-grams: the fraction of n-grams that are distinct (diversity)."]
    page = write_token_report(out, config, result, "interpolant demo: masked diffusion on text",
                              notes)
    print(f"report: {page}  ({minutes:.1f} min)")
    return page
