"""ROUGE: SciTLDR (abstract → TL;DR, test split), ROUGE-1/2/L F by rouge-score with stemming, 0–100.

    kdbench run suite=rouge method=kd data_dir=../shared/data

Version history: 1: first release. Each example scores the best F over its
references (SciTLDR test has several). Self-Instruct is not wired in yet.
"""

from __future__ import annotations

from kdbench import metrics
from kdbench.registry import SUITES
from kdbench.suites.generation import GenerationSuite


class RougeSuite(GenerationSuite):
    tasks = ("scitldr",)
    metric_names = ("rouge1", "rouge2", "rougeL")

    def metric(self, predictions, references):
        return metrics.rouge(predictions, references)


SUITES.add("rouge", RougeSuite)
