"""Gemini Batch API mode: model items packed into jobs, under the same checkpoint.

``packing`` groups pending items into jobs; ``jobs`` drives a job's life cycle (record, create
or adopt, poll, collect); ``results`` turns result lines into item outcomes at the batch rate;
``run`` is the glue the runner calls for ``--mode batch|auto``.
"""
