"""Submissions: write and check `id,category` CSVs, score them locally, submit them to Kaggle.

- `files`: `write_submission`, `check_submission`, `score_submission`.
- `ledger`: `submissions/ledger.jsonl`, one append-only record per change of an attempt.
- `kaggle`: `submit` (check, record, upload) and `refresh` (fetch Kaggle's status and scores).
"""
