"""Runtime of the bridge: command line, and (as it lands) sources, engine, policy and journal."""
