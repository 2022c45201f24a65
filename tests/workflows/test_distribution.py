"""Who is offered a dialog, in what order, and when the offer moves on."""

from tests.workflows.harness import Harness


async def test_evenly_offers_the_least_recently_offered_first(harness: Harness):
    a, b, c = await harness.operators(3)
    channel = await harness.line([a, b, c], distribution="evenly", handover_after=60)
    first = await harness.client_writes(channel, "chat-1")
    await harness.offered(first, [a])
    second = await harness.client_writes(channel, "chat-2")
    await harness.offered(second, [b])
    third = await harness.client_writes(channel, "chat-3")
    await harness.offered(third, [c])
    fourth = await harness.client_writes(channel, "chat-4")
    await harness.offered(fourth, [a])  # everyone had one: back to the longest ago


async def test_evenly_hands_an_unaccepted_offer_to_someone_else(harness: Harness):
    a, b = await harness.operators(2)
    channel = await harness.line([a, b], distribution="evenly", handover_after=60)
    first = await harness.client_writes(channel, "chat-1")
    await harness.offered(first, [a])
    second = await harness.client_writes(channel, "chat-2")
    await harness.offered(second, [b])
    await harness.sleep(60)
    # a was offered longest ago, but a just let this dialog go: it moves on to b, and back.
    await harness.offered(first, [b])
    await harness.offered(second, [a])


async def test_evenly_gives_a_skipped_dialog_to_someone_else(harness: Harness):
    a, b = await harness.operators(2)
    channel = await harness.line([a, b], distribution="evenly", handover_after=600)
    first = await harness.client_writes(channel, "chat-1")
    await harness.offered(first, [a])
    second = await harness.client_writes(channel, "chat-2")
    await harness.offered(second, [b])
    await harness.skip(first, a)
    await harness.offered(first, [b])


async def test_evenly_offers_again_to_the_only_available_operator(harness: Harness):
    (a,) = await harness.operators(1)
    channel = await harness.line([a], distribution="evenly", handover_after=60)
    dialog = await harness.client_writes(channel, "chat-1")
    state = await harness.offered(dialog, [a])
    await harness.sleep(60)
    again = await harness.offered(dialog, [a])
    assert again.deadlines["handover"] > state.deadlines["handover"]


async def test_strictly_moves_down_the_list_and_loops(harness: Harness):
    a, b, c = await harness.operators(3)
    channel = await harness.line([a, b, c], distribution="strictly", handover_after=120)
    dialog = await harness.client_writes(channel, "chat-1")
    await harness.offered(dialog, [a])
    for expected in (b, c, a):
        await harness.sleep(120)
        await harness.offered(dialog, [expected])


async def test_all_offers_everyone_and_the_first_to_accept_takes_it(harness: Harness):
    a, b, c = await harness.operators(3)
    channel = await harness.line([a, b, c], distribution="all")
    dialog = await harness.client_writes(channel, "chat-1")
    await harness.offered(dialog, [a, b, c])
    accepted = await harness.accept(dialog, b)
    assert (accepted.status, accepted.operator_id, accepted.offered_to) == ("accepted", b, [])


async def test_handover_after_exactly_handover_after(harness: Harness):
    a, b = await harness.operators(2)
    channel = await harness.line([a, b], distribution="strictly", handover_after=300)
    dialog = await harness.client_writes(channel, "chat-1")
    state = await harness.offered(dialog, [a])
    offered_at = state.deadlines["handover"]
    await harness.sleep(299)
    assert (await harness.state(dialog)).offered_to == [a]
    await harness.sleep(1)
    state = await harness.offered(dialog, [b])
    assert state.deadlines["handover"] - offered_at >= __import__("datetime").timedelta(seconds=300)
