"""The teacher wing: everything a run knows about its teacher.

- `weights`: fine-tuning (checkpointed) and the caches of the fine-tuned weights and of the teacher's scores;
- `cache`: the teacher-output store on the training set (kdbench.teacher.cache);
- `source`: where a batch's teacher outputs come from (`LiveTeacher` or `CachedTeacher`), chosen once per run;
- `outputs`: `TeacherOut`, what a method's loss reads of the teacher.
"""
