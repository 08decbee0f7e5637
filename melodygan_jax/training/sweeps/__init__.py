"""Optuna sweeps over a config's `sweep.space`: the study driver and CLI (sweep.py), the
search space read from the config (search_space.py), the study's storage, a journal file
or a shared database (storage.py), and the best trial written as a config (results.py)."""
