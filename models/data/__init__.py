"""Training and evaluation data: rendered multitracks, bleed, target balances, MedleyDB, the held-out set.

Importing this package needs numpy only; the synthesiser, the score corpus
and the room simulator are imported where they are used (the ``train`` extra).
"""
from .examples import Example, ExampleError, make_example
from .songs import Song, SongError, default_cache_dir, load_song, render_songs

__all__ = ["Example", "ExampleError", "Song", "SongError", "default_cache_dir", "load_song", "make_example", "render_songs"]
