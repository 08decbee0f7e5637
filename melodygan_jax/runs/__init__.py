"""The run folder: the files of a training workdir, the one Orbax path, loading finished runs.

Training writes run folders and generation and evaluation read them; all
three go through this package, so none of them imports another to reach a
run, and what a workdir holds is written down in one place (workdir.py).
"""
