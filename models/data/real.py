"""The real-song manifest: where each song's stems come from, under which licence, and how they become desk channels.

The manifest (``real_songs.toml`` beside this module) is the one record of
what the corpus holds; :mod:`.build_corpus` reads it and the listed
repositories' checkouts and writes the corpus. Grouping is by rules, not by
hand per song: a stem goes to the first channel whose patterns match its
name, and a stem that matches none stops the build with its name.
"""
from __future__ import annotations

import re
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path
from ..errors import ModelError

MANIFEST = Path(__file__).with_name("real_songs.toml")
#: Licences whose audio may train models whose weights ship.
ALLOWED_LICENCES = ("CC0-1.0", "CC-BY-4.0", "CC-BY-3.0", "CC-BY-SA-4.0", "CC-BY-SA-3.0")
MAX_CHANNELS = 8
SPLITS = ("train", "validation")


class ManifestError(ModelError, ValueError):
    """A manifest or a checkout that cannot make the corpus."""


@dataclass(frozen=True)
class Source:
    name: str
    repository: str
    commit: str
    licence: str
    licence_file: str
    credit: str


@dataclass(frozen=True)
class ChannelRule:
    name: str
    role: str
    patterns: tuple[re.Pattern[str], ...]

    def matches(self, stem: str) -> bool:
        return any(p.search(stem) for p in self.patterns)


@dataclass(frozen=True)
class SongEntry:
    name: str
    source: str
    folder: str
    prefix: str
    suffix: str
    split: str


@dataclass(frozen=True)
class Manifest:
    sample_rate: int
    sources: dict[str, Source]
    channels: tuple[ChannelRule, ...]
    songs: tuple[SongEntry, ...]


def read_manifest(path: Path = MANIFEST) -> Manifest:
    try:
        data = tomllib.loads(Path(path).read_text())
        sources = {s["name"]: Source(s["name"], s["repository"], s["commit"], s["licence"], s["licence_file"],
                                     s.get("credit", "")) for s in data["source"]}
        channels = tuple(ChannelRule(c["name"], c["role"], tuple(re.compile(p, re.IGNORECASE) for p in c["match"]))
                         for c in data["channel"])
        songs = tuple(SongEntry(s["name"], s["source"], s["folder"], s.get("prefix", ""), s.get("suffix", ""),
                                s["split"]) for s in data["song"])
        manifest = Manifest(int(data["sample_rate"]), sources, channels, songs)
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError, re.error) as exc:
        raise ManifestError(f"{path}: {type(exc).__name__}: {exc}") from None
    _check(manifest, path)
    return manifest


def _check(manifest: Manifest, path: Path) -> None:
    from .roles import ROLES

    if len(manifest.channels) > MAX_CHANNELS:
        raise ManifestError(f"{path}: {len(manifest.channels)} channels; a song has at most {MAX_CHANNELS}")
    for source in manifest.sources.values():
        if source.licence not in ALLOWED_LICENCES:
            raise ManifestError(f"{path}: source {source.name} is {source.licence}; allowed: {', '.join(ALLOWED_LICENCES)}")
    for rule in manifest.channels:
        if rule.role not in ROLES:
            raise ManifestError(f"{path}: channel {rule.name} has unknown role {rule.role!r}")
    names = [s.name for s in manifest.songs]
    for song in manifest.songs:
        if song.source not in manifest.sources:
            raise ManifestError(f"{path}: song {song.name} names unknown source {song.source!r}")
        if song.split not in SPLITS:
            raise ManifestError(f"{path}: song {song.name} has split {song.split!r}; use one of {', '.join(SPLITS)}")
        if names.count(song.name) > 1:
            raise ManifestError(f"{path}: song {song.name} is listed twice")


def group_stems(stems: list[str], rules: tuple[ChannelRule, ...], song: str) -> dict[str, list[str]]:
    """{channel name: its stems}, channels in the manifest's order, empty channels left out."""
    groups: dict[str, list[str]] = {rule.name: [] for rule in rules}
    unmatched = []
    for stem in sorted(stems):
        rule = next((r for r in rules if r.matches(stem)), None)
        if rule is None:
            unmatched.append(stem)
        else:
            groups[rule.name].append(stem)
    if unmatched:
        raise ManifestError(f"song {song}: no channel takes stem(s) {', '.join(unmatched)}; add a pattern to the manifest")
    return {name: members for name, members in groups.items() if members}


class Checkout:
    """A listed repository on disk: a bare git directory (read at the manifest's commit) or a work tree."""

    def __init__(self, path: Path, commit: str) -> None:
        self.path = Path(path)
        self.commit = commit
        self.bare = not (self.path / ".git").exists() and (self.path / "objects").is_dir()
        if not self.path.is_dir():
            raise ManifestError(f"{path}: no such checkout")
        if self._git("cat-file", "-t", commit, check=False).strip() != b"commit":
            raise ManifestError(f"{path}: commit {commit} is not in this repository; fetch it first")

    def _git(self, *args: str, check: bool = True) -> bytes:
        flag = ["--git-dir", str(self.path)] if self.bare else ["-C", str(self.path)]
        result = subprocess.run(["git", *flag, *args], capture_output=True, check=False)
        if check and result.returncode:
            raise ManifestError(f"{self.path}: git {' '.join(args)}: {result.stderr.decode(errors='replace').strip()}")
        return result.stdout

    def files(self, folder: str) -> list[str]:
        """Names of the files directly in ``folder`` at the commit."""
        listing = self._git("ls-tree", "--name-only", f"{self.commit}:{folder}").decode()
        return [line for line in listing.splitlines() if line]

    def read(self, path: str) -> bytes:
        """A file's bytes at the commit; a file the snapshot left out (or a Git LFS pointer) is an error naming it."""
        data = self._git("cat-file", "blob", f"{self.commit}:{path}")
        if data.startswith(b"version https://git-lfs"):
            raise ManifestError(f"{self.path}: {path} is a Git LFS pointer; fetch the LFS objects first")
        return data


def song_stems(entry: SongEntry, checkout: Checkout) -> dict[str, str]:
    """{stem name: path in the repository} for one song (the name is the file name less prefix and suffix)."""
    stems = {}
    for name in checkout.files(entry.folder):
        if name.startswith(entry.prefix) and name.endswith(entry.suffix) and len(name) > len(entry.prefix + entry.suffix):
            stems[name[len(entry.prefix): len(name) - len(entry.suffix)]] = f"{entry.folder}/{name}"
    if len(stems) < 2:
        raise ManifestError(f"song {entry.name}: {len(stems)} stem(s) under {entry.folder} match "
                            f"{entry.prefix}*{entry.suffix}; a multitrack needs at least 2")
    return stems
