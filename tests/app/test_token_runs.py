"""Token runs through the command line: train, sample, eval, report and the text demo, and
their one-line errors (a process that does not fit the data or the network, a sampler that does
not fit the process, a label the run was not trained with)."""

from __future__ import annotations

import json

import pytest

from interpolant import discrete
from interpolant.app.token_report import text_demo
from support.cli import run_cli

TINY = '{"hidden": 32, "depth": 1, "heads": 2}'


def _config(tmp_path, data, process, steps, **train):
    file = tmp_path / f"{data}-{process}.json"
    file.write_text(json.dumps({"data": data, "process": process, "model": "tokens",
                                "path": "cosine", "model_options": json.loads(TINY),
                                "train": {"steps": steps, "batch_size": 32, "lr": 3e-3,
                                          "log_every": 1, **train}}))
    return file


def test_binary_digits_train_and_the_bound_falls(tmp_path, capsys):
    run = tmp_path / "bits"
    code, _, err = run_cli(capsys, "train", "--run-dir", run, "--no-progress", "--config",
                           _config(tmp_path, "digits-binary", "uniform", 60))
    assert code == 0, err
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    first = sum(r["bits"] for r in records[:5]) / 5
    last = sum(r["bits"] for r in records[-5:]) / 5
    assert len(records) == 60 and last < 0.8 * first  # the uniform process's bound is learnt
    code, out, err = run_cli(capsys, "sample", "--run-dir", run, "--solver", "ancestral",
                             "--nfe", "4", "--n", "8", "--label", "3", "--guidance", "cfg",
                             "--scale", "2")
    assert code == 0, err and (run / "samples" / "ancestral_8.png").is_file()
    assert "8 NFE" in out  # CFG: two network passes per step


def test_a_run_saved_before_the_token_convolution_still_loads(tmp_path, capsys):
    """A checkpoint whose network config has no "local" (written before TokenTransformer got
    its token convolution) rebuilds without one and loads its weights exactly."""
    import torch

    from interpolant import models
    from interpolant.app.tokens import load_token_run
    from interpolant.training.checkpoint import save_checkpoint

    run = tmp_path / "text"
    code, _, err = run_cli(capsys, "train", "--run-dir", run, "--no-progress", "--config",
                           _config(tmp_path, "text", "masked", 2))
    assert code == 0, err
    old = models.TokenTransformer(**json.loads(TINY), num_tokens=len(discrete.TEXT_VOCAB),
                                  length=load_token_run(run).model.length, local=0)
    config = {k: v for k, v in old.config.items() if k != "local"}
    save_checkpoint(run / "checkpoints", 99, old,
                    config={"arch": "tokens", "model": config, "data_shape": [old.length]})
    loaded = load_token_run(run).model
    assert loaded.local is None and loaded.config["local"] == 0
    for (name, p), q in zip(loaded.state_dict().items(), old.state_dict().values()):
        assert torch.equal(p, q), name


def test_text_demo_quick_writes_samples_and_report(tmp_path, capsys):
    out = tmp_path / "demo-text"
    page = text_demo(out, quick=True, threads=1)
    result = json.loads((out / "eval.json").read_text())
    rows = {r["sampler"]: r for r in result["rows"]}
    assert set(rows) == {"ancestral", "tau-leaping", "first-hitting"}
    assert rows["first-hitting"]["nfe"] == 64  # one network call per masked position
    assert rows["ancestral"]["nfe"] == 4
    texts = (out / "samples" / "first-hitting_64.txt").read_text().split("\n\n")
    assert len(texts) == 16 and all(set(t) <= set(discrete.TEXT_VOCAB) for t in texts)
    # real text is far likelier under the held-out 3-gram model than a 10-step model's samples
    assert result["reference"]["perplexity"] < 0.5 * rows["ancestral"]["perplexity"]
    html = page.read_text()
    assert "bits per token" in html and "first-hitting" in html
    # the demo replaces its own run, and `interpolant report` rewrites the page from eval.json
    text_demo(out, quick=True, threads=1)
    code, _, err = run_cli(capsys, "report", "--run-dir", out)
    assert code == 0, err
    code, text, err = run_cli(capsys, "sample", "--run-dir", out, "--n", "2")
    assert code == 0 and "first-hitting, 64 NFE" in text, err


@pytest.mark.parametrize("argv, message", [
    (["--process", "masked", "--data", "moons"], "works on tokens"),
    (["--process", "masked", "--data", "text", "--model", "mlp"], "token transformer"),
    (["--process", "absorbing"], "unknown process 'absorbing'"),
    (["--process", "masked", "--path", "edm"], "unknown discrete schedule"),
])
def test_train_refuses_what_cannot_work(tmp_path, capsys, argv, message):
    run = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "--run-dir", run, "--steps", "1", *argv)
    assert code == 2 and message in err and err.count("\n") == 1
    assert not run.exists()


def test_sample_refuses_what_the_run_cannot_do(tmp_path, capsys):
    run = tmp_path / "uniform"
    assert run_cli(capsys, "train", "--run-dir", run, "--no-progress", "--config",
                   _config(tmp_path, "digits", "uniform", 1))[0] == 0
    for argv, message in [
        (["--solver", "first-hitting"], "for the masked process"),
        (["--solver", "heun"], "unknown discrete sampler 'heun'"),
        (["--label", "10"], "--label 10: this run has 10 classes"),
    ]:
        code, _, err = run_cli(capsys, "sample", "--run-dir", run, "--n", "2", *argv)
        assert code == 2 and message in err, err
    code, _, err = run_cli(capsys, "train", "--run-dir", run, "--resume")
    assert code == 2 and "do not resume" in err
    code, _, err = run_cli(capsys, "report", "--run-dir", run)
    assert code == 2 and "interpolant eval" in err
