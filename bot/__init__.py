"""The process: configuration, the composition root, the CLI and one adapter per platform."""
