"""Runs on a virtual clock against a simulator: the demo, the evaluation and its report."""
