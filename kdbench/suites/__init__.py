"""Suite implementations; importing this package registers them (see suites/*.toml for configs)."""

from kdbench.suites import glue  # noqa: F401
