"""CER: character error rate (jiwer, corpus-level) of generated outputs against references, 0–100, lower is better.

    kdbench run suite=cer method=rlkd data_dir=../shared/data            # Multi30k en→de
    kdbench run suite=cer method=kd tasks=[scitldr] data_dir=../shared/data

Version history: 1: first release; 2: the teacher is fine-tuned on Multi30k train (200 steps of 8); 3: a validation slice is held out of the training data. Any generation task can be named; with
several references (SciTLDR) the first is used.
"""

from __future__ import annotations

from kdbench import metrics
from kdbench.registry import SUITES
from kdbench.suites.generation import TASK_LOADERS, GenerationSuite


class CerSuite(GenerationSuite):
    tasks = tuple(TASK_LOADERS)
    metric_names = ("cer",)

    def metric_references(self, references):
        return [refs[0] for refs in references]  # one reference per example

    def metric(self, predictions, references):
        return {"cer": metrics.cer(predictions, self.metric_references(references))}


SUITES.add("cer", CerSuite)
