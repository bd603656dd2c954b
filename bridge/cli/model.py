"""``ailive train``, ``ailive export`` and ``ailive eval``: the model's life before the show.

Training and export need the ``train`` extra; scoring recordings does not.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import click

from .fail import fail

TRAIN_EXTRA = "pip install 'ailive-bridge[train]' (it brings torch==2.13.0, onnx and the data tools)"


def _training_modules() -> Any:
    if importlib.util.find_spec("torch") is None:
        fail(f"this command needs the training extra (torch is missing): {TRAIN_EXTRA}", 2)
    try:
        from ailive.models.train import checkpoint, export, train
    except ImportError as exc:
        fail(f"this command needs the training extra ({exc.name} is missing): {TRAIN_EXTRA}", 2)
    return train, export, checkpoint


@click.command("train")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A TOML file of training settings (see models/train/configs/).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/alm-mr"), show_default=True,
              help="Folder for the checkpoint, loss.csv and loss.png; an existing checkpoint there is resumed.")
@click.option("--variant", type=click.Choice(["mr", "sr", "dmc"]), help="Model to train (overrides the config).")
@click.option("--steps", type=click.IntRange(min=1), help="Total optimiser steps (overrides the config).")
@click.option("--corpus", type=click.Path(exists=True, file_okay=False),
              help="Train in the feature domain on this built corpus (python -m ailive.models.data.build_corpus).")
@click.option("--init-from", type=click.Path(exists=True, file_okay=False),
              help="Start from the weights of this exported model folder (e.g. models/weights/alm-mr) instead of at random.")
@click.option("--fresh", is_flag=True, help="Start over even when --out holds a checkpoint.")
@click.option("--export", "export_to", type=click.Path(file_okay=False, path_type=Path),
              help="When done, export the ONNX model folder here.")
def train_command(config_path: Path | None, out: Path, variant: str | None, steps: int | None, corpus: str | None,
                  init_from: str | None, fresh: bool, export_to: Path | None) -> None:
    """Train ALM-MR, ALM-SR or the DMC baseline on rendered multitracks with bleed, or on a corpus of real songs."""
    train, export, checkpoint = _training_modules()
    try:
        config = train.TrainConfig.read(config_path, variant=variant, steps=steps, corpus=corpus, init_from=init_from)
        trainer = train.Trainer(config, out, resume=not fresh)
    except (train.TrainConfigError, checkpoint.CheckpointError) as exc:  # a bad file given: a usage error
        fail(str(exc), 2)
    if trainer.step >= config.steps:
        click.echo(f"{out}: already trained for {trainer.step} steps (asked for {config.steps})")
    else:
        click.echo(f"training {config.model.variant} for {config.steps} steps into {out}"
                   + (f" (resuming at step {trainer.step})" if trainer.step else ""))
        trainer.run(progress=True)
    if export_to is not None:
        export.export_checkpoint(out / train.CHECKPOINT, export_to)
        click.echo(f"exported to {export_to}")


@click.command("export")
@click.argument("checkpoint_paths", metavar="CHECKPOINT...", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Model folder to write: slow.onnx, fast.onnx and card.json.")
def export_command(checkpoint_paths: tuple[Path, ...], out: Path) -> None:
    """Export a trained checkpoint as the two ONNX graphs the bridge streams, with its model card.

    Several checkpoints of one fine-tune (e.g. the step-N.pt files that keep_steps leaves) export as their
    uniform weight average.
    """
    _, export, checkpoint = _training_modules()
    paths = [path / "checkpoint.pt" if path.is_dir() else path for path in checkpoint_paths]
    try:
        export.export_checkpoint(paths, out)
    except checkpoint.CheckpointError as exc:
        fail(str(exc), 2)
    from ailive.models.runtime import AlmRuntime

    runtime = AlmRuntime(out)
    what = f"the average of {len(paths)} checkpoints" if len(paths) > 1 else runtime.card.name
    click.echo(f"exported {what} to {out} (slow.onnx, fast.onnx, card.json)")


@click.command("eval")
@click.option("--models", "model_names", default="unity,dugan,loudness,oracle", show_default=True, metavar="NAME,...",
              help="Comma-separated models: classic names, 'oracle' (the target itself), a model folder.")
@click.option("--set", "set_spec", default="heldout", show_default=True, metavar="heldout|DIR",
              help="The held-out set (written on first use), a folder of per-channel WAV/FLAC files "
                   "(a file named 'mix' is the reference), or a folder of such folders.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("ailive-eval"),
              show_default=True, help="Where results.json, results.md and the plots go.")
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Cache folder for the held-out set (default: $AILIVE_CACHE_DIR or ~/.cache/ailive).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object for scripts instead of the table.")
def eval_command(model_names: str, set_spec: str, out_dir: Path, cache_dir: Path | None, as_json: bool) -> None:
    """Score gain models on multitracks, each streamed through the bridge against a desk simulator.

    Prints the table of docs/evaluation.md (gain error, mix distance, fader
    travel, desk writes, settling) and saves it with one fader plot per
    multitrack. Rendering the synthetic held-out set needs the train extra
    (pip install 'ailive-bridge[train]'); a folder of recordings does not.

    \b
    Examples:
      ailive eval
      ailive eval --models loudness,oracle --set ./my-multitrack --json
    """
    try:
        from ..offline.evalreport import json_object, markdown_table, score, summarise, write_report
        from ..offline.evaluate import load_items, load_models, run_all
    except ImportError as exc:
        fail(f"ailive eval needs the train extra (pip install 'ailive-bridge[train]'): {exc}")
    names = [n.strip() for n in model_names.split(",") if n.strip()]
    if not names:
        fail("--models: name at least one model", 2)
    progress = (lambda line: click.echo(line, err=True)) if not as_json else (lambda line: None)
    try:
        load_models(names)  # an unknown model stops here, before any audio is read
        set_name, items = load_items(set_spec, cache_dir)
        runs = run_all(items, names, progress=progress)
        scores = {name: [score(item, runs[name][item.name]) for item in items if item.name in runs[name]] for name in names}
        summaries = {name: summarise(scores[name]) for name in names if scores[name]}
        files = write_report(out_dir, set_name, items, runs, scores, summaries)
    except ImportError as exc:
        fail(f"rendering the held-out set needs the train extra (pip install 'ailive-bridge[train]'): {exc}")
    if as_json:
        click.echo(json.dumps(json_object(summaries)))
        return
    click.echo(markdown_table(summaries, set_name), nl=False)
    click.echo(f"saved: {files['json']}, {files['markdown']} and {len(items)} plot(s) in {out_dir / 'plots'}")

