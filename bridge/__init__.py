"""The bridge: the engine, the safety policy and the journal at the top; audio sources, remote control,
show-file drafting, offline runs and the command line in sub-packages (docs/architecture.md)."""
