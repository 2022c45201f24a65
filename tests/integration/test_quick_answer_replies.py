"""An operator answers with a quick answer of the dialog's line: found by the reply box's
search with the client's and the operator's names filled in, and sent by its id."""

from typing import Any

from tests.integration.conftest import System
from tests.integration.test_dialog_reads_and_actions import signed_in


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def quick_answers(system: System, name: str, *answers: tuple[str, str, str]) -> list[int]:
    """A new list of these (title, code, text) answers; the list's id, then the answers'."""
    admin = system.admin
    list_id = ok(await admin.post("/v1/quick-answer-lists", json={"name": name}), 201)["id"]
    ids = [list_id]
    for title, code, text in answers:
        body = {"title": title, "code": code, "text": text}
        created = await admin.post(f"/v1/quick-answer-lists/{list_id}/answers", json=body)
        ids.append(ok(created, 201)["id"])
    return ids


async def test_an_operator_finds_and_sends_a_quick_answer_filled_in_for_the_dialog(
    system: System,
):
    ann = await system.operator("Ann")
    list_id, hello, _ = await quick_answers(
        system,
        "Support",
        ("Greeting", "hello", "Hello, #CLIENT_NAME#! I am #OPERATOR_NAME#."),
        ("Refunds", "refund", "Refunds take five days."),
    )
    _, elsewhere = await quick_answers(system, "Sales", ("Offer", "offer", "10% off"))
    _, channel, secret = await system.line([ann], {"quick_answers_list_id": list_id})
    written = await system.admin.post(
        f"/v1/channels/{channel}/messages",
        json={
            "chat": {"external_id": "olga", "name": "Olga"},
            "message": {"external_id": "m1", "text": "Hi"},
        },
        headers={"Authorization": f"Bearer {secret}"},
    )
    dialog_id = ok(written, 202)["dialog_id"]
    await system.dialog_when(dialog_id, lambda d: d["offered_to"] == [ann])

    async with signed_in(system, "operator", ann) as as_ann:
        found = ok(await as_ann.get(f"/v1/dialogs/{dialog_id}/quick-answers", params={"q": "HEL"}))
        both = await as_ann.post(
            f"/v1/dialogs/{dialog_id}/messages", json={"text": "Hi", "quick_answer_id": hello}
        )
        foreign = await as_ann.post(
            f"/v1/dialogs/{dialog_id}/messages", json={"quick_answer_id": elsewhere}
        )
        sent = await as_ann.post(
            f"/v1/dialogs/{dialog_id}/messages", json={"quick_answer_id": hello}
        )
        messages = ok(await as_ann.get(f"/v1/dialogs/{dialog_id}/messages"))["items"]

    assert [(a["code"], a["filled"]) for a in found["items"]] == [
        ("hello", "Hello, Olga! I am Ann.")
    ]
    assert (both.status_code, both.json()["errors"][0]["field"]) == (422, "text")
    assert (foreign.status_code, foreign.json()["errors"][0]["field"]) == (404, "quick_answer_id")
    assert ok(sent)["operator_id"] == ann  # replying to an offer accepts it
    texts = [m["text"] for m in messages if m["author"] == "operator"]
    assert texts == ["Hello, Olga! I am Ann."]  # the refused replies left nothing behind
