"""kdbench: which distillation method makes the best student, at what cost?

    kdbench run suite=glue method=rlkd data_dir=../shared/data
"""

__version__ = "0.1.0"
