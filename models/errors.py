"""The one base of every model error a user can act on.

``models/`` knows nothing of the desk side, so it cannot share the consoles'
base; the command line catches this one and the consoles' in one place
(``bridge/cli.py``) and prints either as one line with a non-zero exit.
"""
from __future__ import annotations


class ModelError(Exception):
    """Base of every model, data-set or training error the user can act on (a bad folder, name, rate or file)."""
