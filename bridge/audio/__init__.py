"""Where the bridge hears the desk's inputs: files, or JACK through a tap process and its shared ring.

``jack`` loads nothing of libjack until a source or a port listing asks for it.
"""
from .base import AudioSource, AudioSourceError, Block, EndOfSource
from .files import AUDIO_SUFFIXES, FileSource
from .jack import JackSource, jack_output_ports, match_port, open_jack_client, port_short_names

__all__ = ["AUDIO_SUFFIXES", "AudioSource", "AudioSourceError", "Block", "EndOfSource", "FileSource", "JackSource",
           "jack_output_ports", "match_port", "open_jack_client", "port_short_names"]
