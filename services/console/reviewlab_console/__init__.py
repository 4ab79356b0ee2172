"""Review Lab's console: the topology as a live diagram on real metrics (docs/console.md)."""
