"""Suite implementations; importing this package registers them (see suites/*.toml for configs)."""

from kdbench.suites import bleu, cer, char, glue, glue_lm, gsm8k, lmeval, perplexity, rouge  # noqa: F401
