"""ROUGE: SciTLDR (abstract → TL;DR, test) and Self-Instruct (252, zero-shot chat), ROUGE-1/2/L F, 0–100.

    kdbench run suite=rouge method=kd data_dir=../shared/data
    kdbench run suite=rouge method=kd tasks=[selfinst] data_dir=../shared/data

Version history: 1: first release; 2: default tasks SciTLDR and Self-Instruct, 50 steps; 3: a validation slice is held out of the training data. rouge-score with Porter stemming; each
example scores the best F over its references (SciTLDR test has several).
Prompt formats and the selfinst training corpus: kdbench/suites/generation.py.
"""

from __future__ import annotations

from kdbench import metrics
from kdbench.registry import SUITES
from kdbench.suites.generation import GenerationSuite


class RougeSuite(GenerationSuite):
    tasks = ("scitldr", "selfinst", "dolly", "dolly_minillm", "xsum")
    metric_names = ("rouge1", "rouge2", "rougeL")

    def metric(self, predictions, references):
        return metrics.rouge(predictions, references)


SUITES.add("rouge", RougeSuite)
