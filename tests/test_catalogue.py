"""The media-file catalogue: its rules, tested once (rewritten below)."""
