"""Gain models: features, runtime inference and classic baselines. No torch outside ``train/``."""
