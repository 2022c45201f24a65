"""Who may act on a dialog in its current state: the checks behind the update validators.

A failed check raises ``ValueError``; Temporal rejects the update before it reaches history,
and the API answers 409 with the message.
"""

from datetime import datetime

from workflows.models import FINAL_STATUSES, BotAction, DialogState, OperatorAction


def require_dialog(state: DialogState, dialog_id: int) -> None:
    """The action names this run's dialog, not an earlier one of the chat."""
    if dialog_id != state.dialog_id:
        raise ValueError(f"dialog {dialog_id} has ended")


def require_in_time(expires_at: datetime | None, now: datetime) -> None:
    """The caller still waits for the answer: past its deadline it was told the action
    failed, so applying it now would surprise them."""
    if expires_at is not None and now > expires_at:
        raise ValueError("the action came after its deadline; it was not applied")


def require_open(state: DialogState, closing_too: bool = False) -> None:
    """Actions need an open dialog; only a few make sense while it closes."""
    if state.status in FINAL_STATUSES or (state.status == "closing" and not closing_too):
        raise ValueError(f"dialog {state.dialog_id} is {state.status}")


def require_owner(state: DialogState, action: OperatorAction, closing_too: bool = False) -> None:
    require_open(state, closing_too)
    if action.operator_id != state.operator_id:
        raise ValueError(f"dialog {state.dialog_id} is not held by operator {action.operator_id}")


def require_owner_or_supervisor(
    state: DialogState, action: OperatorAction, closing_too: bool = False
) -> None:
    if action.by_supervisor:
        require_open(state, closing_too)
    else:
        require_owner(state, action, closing_too)


def require_offered(state: DialogState, action: OperatorAction) -> None:
    require_open(state)
    if state.operator_id is not None:
        raise ValueError(
            f"dialog {state.dialog_id} is already accepted by operator {state.operator_id}"
        )
    if action.operator_id not in state.offered_to:
        raise ValueError(
            f"dialog {state.dialog_id} is not offered to operator {action.operator_id}"
        )


def require_holder_or_offered(state: DialogState, action: OperatorAction) -> None:
    """For a skip: the operator holds the dialog or has it on offer."""
    require_open(state)
    if action.operator_id != state.operator_id and action.operator_id not in state.offered_to:
        raise ValueError(
            f"dialog {state.dialog_id} is neither offered to nor held by operator "
            f"{action.operator_id}"
        )


def require_bot(state: DialogState, action: BotAction, holding: bool) -> None:
    """For a chat-bot: the dialog is with this bot; ``holding``: the bot still holds it
    (status ``bot``), not only stays in it after handing it over (``bot.leave: close``)."""
    require_open(state)
    if state.bot_id != action.bot_id or (holding and state.status != "bot"):
        raise ValueError(f"dialog {state.dialog_id} is not held by bot {action.bot_id}")
