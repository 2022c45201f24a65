"""LateRatingWorkflow: a client's rating that arrives after its dialog has closed.

The dialog's own run has ended, so this short run records the rating on that dialog (or,
after ``rating.time_limit``, refuses it with a message). It starts no new dialog.
"""

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.auto_replies import AutoReplyActivities
    from workflows import activity_calls
    from workflows.models import ClientRating, RatingOutcome


def workflow_id(rating: ClientRating) -> str:
    """One run per rating message (or per dialog, for the web chat's buttons)."""
    return f"rating-{rating.dialog_id}-{rating.message_id or 'widget'}"


@workflow.defn
class LateRatingWorkflow:
    @workflow.run
    async def run(self, rating: ClientRating) -> RatingOutcome:
        return await activity_calls.run(
            AutoReplyActivities.record_rating, rating.model_copy(update={"at": workflow.now()})
        )
