"""The `ailive` command line: one click group, its commands grouped by what they touch."""
from .app import main

__all__ = ["main"]
