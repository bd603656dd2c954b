"""``ailive train`` and ``ailive export``: the model's life before the show (needs the ``train`` extra)."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import click

from .clifail import fail

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
@click.argument("checkpoint_path", metavar="CHECKPOINT", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Model folder to write: slow.onnx, fast.onnx and card.json.")
def export_command(checkpoint_path: Path, out: Path) -> None:
    """Export a trained checkpoint as the two ONNX graphs the bridge streams, with its model card."""
    _, export, checkpoint = _training_modules()
    if checkpoint_path.is_dir():
        checkpoint_path = checkpoint_path / "checkpoint.pt"
    try:
        export.export_checkpoint(checkpoint_path, out)
    except checkpoint.CheckpointError as exc:
        fail(str(exc), 2)
    from ailive.models.runtime import AlmRuntime

    runtime = AlmRuntime(out)
    click.echo(f"exported {runtime.card.name} to {out} (slow.onnx, fast.onnx, card.json)")
