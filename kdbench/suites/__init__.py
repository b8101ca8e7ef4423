"""Suite kinds; importing this package registers them (suites/*.toml are the presets that name them)."""

from kdbench.suites import char, generation, glue, glue_lm, lmeval, perplexity  # noqa: F401
