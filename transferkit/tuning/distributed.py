"""Distributed search on KerasTuner's own engine: one chief oracle, several workers.

KerasTuner runs a distributed search when three environment variables are set
in every process:

- `KERASTUNER_ORACLE_IP` and `KERASTUNER_ORACLE_PORT`: where the chief serves
  the oracle (gRPC), e.g. `127.0.0.1` and `8000`;
- `KERASTUNER_TUNER_ID`: `chief` for the process that holds the oracle (any
  id containing "chief"), and a distinct id per worker (`worker0`, `worker1`).

Each process runs the same `transferkit.tune(...)` call. The chief hands out
trials and records their results; it trains nothing. Each worker asks the
chief for a trial, trains it, reports its metrics and asks again, until the
chief has handed out `max_trials` trials. Every trial is recorded once, by the
chief. The chief's `tune` returns when the last trial has ended, with every
trial; a worker's returns when no trial is left to hand out, with the trials
finished so far as written in the shared `directory`.

Rules that keep the processes in step:

- the same data, `seed`, search space and `directory`/`project_name`
  everywhere (the `directory` on a shared file system, or the same machine,
  if `best_finetuner()` is to load the weights the workers saved);
- `seed` must not be `None` when the validation split is drawn from `data`,
  or the workers would validate on different images;
- only the chief may start afresh: `overwrite=True` is ignored on workers, so
  a late worker cannot delete the chief's records;
- each worker has its own feature cache; pass
  `cache_features=FeatureCache(directory=shared, persist=True)` to share
  features computed by one worker with the others.
"""

import os

ORACLE_IP = "KERASTUNER_ORACLE_IP"
ORACLE_PORT = "KERASTUNER_ORACLE_PORT"
TUNER_ID = "KERASTUNER_TUNER_ID"


def role() -> str:
    """This process's part in a search: `"single"`, `"chief"` or `"worker"`.

    Raises:
        ValueError: if `KERASTUNER_ORACLE_IP` is set without the port or the
            tuner id.
    """
    if ORACLE_IP not in os.environ:
        return "single"
    missing = [name for name in (ORACLE_PORT, TUNER_ID) if not os.environ.get(name)]
    if missing:
        raise ValueError(
            f"{ORACLE_IP}={os.environ[ORACLE_IP]!r} asks for a distributed search, but "
            f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set. Set "
            f"{ORACLE_PORT} (the chief's port) and {TUNER_ID} ('chief' on the chief, a "
            "distinct id such as 'worker0' on each worker) in every process, or unset "
            f"{ORACLE_IP} for a search in this process alone."
        )
    return "chief" if "chief" in os.environ[TUNER_ID] else "worker"
