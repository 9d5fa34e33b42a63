"""SmartPolicy with a batch scorer: same decision as row-by-row scoring, bad scores refused."""

from datetime import UTC, datetime

import pytest

from billing_jobs.payments.retries import RetryContext, RetryPolicyError, SmartPolicy

FAILED = datetime(2025, 3, 20, 4, 30, tzinfo=UTC)
CTX = RetryContext("inv-1", "simulated", "insufficient_funds", FAILED, FAILED, 1, 49_900, "INR",
                   features={"method": "upi", "issuer": "oksbi"})  # fmt: skip


def salary_day(features, offset_hours):
    """Prefers the 1st of the month, later hours a little more (deterministic)."""
    assert features["last_failed_at"] == FAILED and features["method"] == "upi"
    assert features["retry_at"].day == features["day_of_month"]
    return (0.8 if features["day_of_month"] == 1 else 0.2) + offset_hours / 10_000


class Batch:
    def __init__(self, scores=None):
        self.calls, self.scores = 0, scores

    def __call__(self, features, offset_hours):
        raise AssertionError("a batch scorer is never called row by row")

    def score_batch(self, rows, offsets):
        self.calls += 1
        return self.scores if self.scores is not None else list(map(salary_day, rows, offsets))


def test_batch_and_row_scoring_choose_the_same_time_in_one_call():
    batch = Batch()
    by_batch = SmartPolicy(scorer=batch, scorer_name="m v1").next_attempt(CTX)
    by_row = SmartPolicy(scorer=salary_day).next_attempt(CTX)
    assert batch.calls == 1
    assert by_batch.at == by_row.at and by_batch.at.day == 1 and by_batch.at.month == 4
    assert by_batch.reason.startswith("smart m v1 p=")


@pytest.mark.parametrize("scores", [[0.5], [float("nan")] * 58, [1.5] * 58])
def test_bad_batch_scores_are_refused(scores):
    with pytest.raises(RetryPolicyError):
        SmartPolicy(scorer=Batch(scores)).next_attempt(CTX)
