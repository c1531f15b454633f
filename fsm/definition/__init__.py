"""Flow definitions: the frozen data, the checks it must pass, JSON loading, the compiled table."""
