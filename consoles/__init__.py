"""Desk side of the bridge: fader laws, profiles, show files, OSC drivers and simulators.

Nothing here knows about the bridge or the models, so a driver or a simulator
can be used on its own.
"""
