"""Development tools, outside the production path: the simulated network (`simulator`), the demo, the
evaluation of detection against labelled faults, and training the shipped models. Nothing in production
imports this package (an import contract in pyproject.toml checks it)."""
