"""Submissions: write and check `id,category` CSVs, score them locally, submit them to Kaggle.

- `files`: `write_submission`, `check_submission` (`check_for_dataset`: against a dataset's test
  clips), `score_submission`, `newest_submission`.
- `ledger`: `submissions/ledger.jsonl`, one append-only record per change of an attempt.
- `kaggle`: `submit` (check, record, upload; `submit_for_dataset`), `refresh` (fetch Kaggle's
  status and scores) and `attempts` (the ledger, refreshed and polled while scores are pending).
"""
