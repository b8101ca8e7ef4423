"""Suite implementations; importing this package registers them (see suites/*.toml for configs)."""

from kdbench.suites import glue, perplexity  # noqa: F401
