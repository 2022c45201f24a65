"""The Bitrix24 adapter against the fake portal: finding clients, adding leads once,
changing their responsible user, raising on every kind of failure, and keeping the webhook's
token out of every error and log line."""

import logging
import socket
import traceback
from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr

from core.config import Settings
from core.crm.backends import BuiltinCrm, LeadDraft, Match, backend_for
from core.crm.bitrix24 import Bitrix24Crm, Bitrix24Error
from tests.crm_fake.bitrix24 import TOKEN, FakeBitrix24, serve_fake

# A webhook token shaped like a real one (Bitrix24 makes 16 lowercase letters and digits).
SECRET_TOKEN = "k3y9x2m8q1w7e4r6"


@pytest.fixture
async def fake() -> AsyncIterator[FakeBitrix24]:
    async with serve_fake() as portal:
        yield portal


@pytest.fixture
async def crm(fake: FakeBitrix24) -> AsyncIterator[Bitrix24Crm]:
    async with httpx.AsyncClient(timeout=5.0) as http:
        yield Bitrix24Crm(SecretStr(fake.webhook_url), http)


def draft(dialog_id: int = 7, **fields: object) -> LeadDraft:
    defaults: dict[str, object] = {
        "title": "Bob — telegram dialog 7",
        "source": "telegram",
        "name": "Bob",
        "phones": ["+14155550100"],
        "emails": ["bob@example.com"],
        "responsible_id": 3,
    }
    return LeadDraft(dialog_id=dialog_id, **{**defaults, **fields})  # type: ignore[arg-type]


async def test_finds_a_contact_by_phone_with_its_responsible(fake, crm):
    contact = fake.seed("CONTACT", phones=["+1 (415) 555-0100"], responsible=12)
    fake.seed("CONTACT", phones=["+14155550199"], responsible=13)

    match = await crm.find_client(["+14155550100"], [], ["1:chat-1"])

    assert match == Match("CONTACT", contact, 12)
    assert fake.calls == ["crm.duplicate.findbycomm", "crm.contact.get"]


async def test_finds_by_email_and_prefers_a_contact_to_a_lead(fake, crm):
    fake.seed("LEAD", emails=["Bob@Example.com"], responsible=5)
    contact = fake.seed("CONTACT", emails=["bob@example.com"], responsible=6)

    assert await crm.find_client([], ["bob@example.com"], []) == Match("CONTACT", contact, 6)


async def test_finds_a_lead_when_that_is_all_there_is(fake, crm):
    lead = fake.seed("LEAD", emails=["ann@example.com"], responsible=5)

    assert await crm.find_client(["+100"], ["ann@example.com"], []) == Match("LEAD", lead, 5)


async def test_an_unknown_client_is_not_found(fake, crm):
    fake.seed("CONTACT", phones=["+14155550199"])

    assert await crm.find_client(["+14155550100"], ["x@example.com"], ["1:chat-1"]) is None
    # Messenger ids alone are not searched: Bitrix24 has no duplicate search for them.
    assert await crm.find_client([], [], ["1:chat-1"]) is None
    assert fake.calls == ["crm.duplicate.findbycomm", "crm.duplicate.findbycomm"]


async def test_more_than_twenty_phones_go_in_batches(fake, crm):
    contact = fake.seed("CONTACT", phones=["+10000000024"])
    phones = [f"+100000000{i:02d}" for i in range(25)]

    assert await crm.find_client(phones, [], []) == Match("CONTACT", contact, 1)
    assert fake.calls.count("crm.duplicate.findbycomm") == 2


async def test_a_lead_is_added_once_per_origin_id(fake, crm):
    first = await crm.create_lead(draft())
    again = await crm.create_lead(draft(title="changed"))
    other = await crm.create_lead(draft(dialog_id=8))

    assert first == again != other
    assert len(fake.leads) == 2
    lead = fake.leads[first]
    assert lead["ORIGINATOR_ID"] == "openlines"
    assert lead["ORIGIN_ID"] == "openlines-dialog-7"
    assert lead["TITLE"] == "Bob — telegram dialog 7"
    assert lead["NAME"] == "Bob"
    assert lead["ASSIGNED_BY_ID"] == "3"
    assert lead["PHONE"] == [{"VALUE": "+14155550100", "VALUE_TYPE": "WORK"}]
    assert lead["EMAIL"] == [{"VALUE": "bob@example.com", "VALUE_TYPE": "WORK"}]
    assert (lead["SOURCE_ID"], lead["SOURCE_DESCRIPTION"]) == ("OTHER", "telegram")
    assert await crm.find_lead("openlines-dialog-7") == first
    assert await crm.find_lead("openlines-dialog-9") is None


async def test_sources_bitrix24_knows_are_passed_as_its_own(fake, crm):
    web = await crm.create_lead(draft(dialog_id=1, source="webchat"))
    advertising = await crm.create_lead(draft(dialog_id=2, source="advertising"))

    assert fake.leads[web]["SOURCE_ID"] == "WEB"
    assert fake.leads[advertising]["SOURCE_ID"] == "ADVERTISING"


async def test_a_lead_without_responsible_or_contacts_leaves_them_out(fake, crm):
    lead_id = await crm.create_lead(draft(responsible_id=None, phones=[], emails=[], name=None))

    lead = fake.leads[lead_id]
    assert "NAME" not in lead and "PHONE" not in lead and "EMAIL" not in lead
    assert lead["ASSIGNED_BY_ID"] == "1"  # the webhook's user


async def test_changes_the_responsible_user(fake, crm):
    lead_id = await crm.create_lead(draft())

    await crm.set_lead_responsible(lead_id, 42)

    assert fake.leads[lead_id]["ASSIGNED_BY_ID"] == "42"


async def test_an_outage_raises_and_adds_nothing(fake, crm):
    fake.outage = True

    with pytest.raises(Bitrix24Error, match="HTTP 503") as raised:
        await crm.create_lead(draft())
    assert (raised.value.method, raised.value.status) == ("crm.lead.list", 503)
    with pytest.raises(Bitrix24Error, match="HTTP 503"):
        await crm.find_client(["+14155550100"], [], [])

    assert fake.leads == {}
    fake.outage = False
    assert await crm.create_lead(draft()) in fake.leads


async def test_an_error_answer_raises(fake, crm):
    with pytest.raises(Bitrix24Error, match="Not found") as raised:
        await crm.set_lead_responsible("999", 42)
    assert raised.value.status == 400


async def test_a_wrong_webhook_raises(fake):
    async with httpx.AsyncClient() as http:
        wrong = Bitrix24Crm(fake.webhook_url.replace("fake-webhook-token", "wrong"), http)
        with pytest.raises(Bitrix24Error, match="INVALID_CREDENTIALS"):
            await wrong.find_lead("openlines-dialog-1")


async def test_a_network_error_raises():
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with httpx.AsyncClient() as http:
        unreachable = Bitrix24Crm(f"http://127.0.0.1:{port}/rest/1/x/", http)
        with pytest.raises(Bitrix24Error, match="no answer: ConnectError") as raised:
            await unreachable.create_lead(draft())
    assert raised.value.status is None


async def test_backend_for_settings():
    url = f"https://b24.example/rest/1/{SECRET_TOKEN}/"
    async with httpx.AsyncClient() as http:
        assert isinstance(backend_for(Settings(crm="builtin"), http), BuiltinCrm)
        bitrix = Settings(crm="bitrix24", bitrix24_webhook_url=url)
        backend = backend_for(bitrix, http)
        assert isinstance(backend, Bitrix24Crm)
        with pytest.raises(ValueError, match="WEBHOOK_URL"):
            backend_for(Settings(crm="bitrix24", bitrix24_webhook_url=""), http)
        with pytest.raises(ValueError, match="WEBHOOK_URL"):
            backend_for(Settings(crm="bitrix24"), http)  # the default: none
    assert isinstance(bitrix.bitrix24_webhook_url, SecretStr)
    assert bitrix.bitrix24_webhook_url.get_secret_value() == url
    for shown in (repr(bitrix), str(bitrix), bitrix.model_dump_json(), repr(backend)):
        assert SECRET_TOKEN not in shown


# --- the webhook's token stays out of errors and logs -----------------------------------


def assert_token_kept_out(error: BaseException, token: str) -> None:
    """Neither the error, nor its traceback, nor anything chained to it names ``token``; no
    httpx exception (whose message and request hold the URL) is chained at all."""
    assert error.__cause__ is None and error.__context__ is None
    assert token not in str(error) and token not in repr(error)
    assert token not in "".join(traceback.format_exception(error))
    assert token not in repr(vars(error))


async def test_an_unreachable_portal_names_neither_url_nor_token():
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with httpx.AsyncClient() as http:
        crm = Bitrix24Crm(SecretStr(f"http://127.0.0.1:{port}/rest/1/{SECRET_TOKEN}/"), http)
        with pytest.raises(Bitrix24Error) as raised:
            await crm.find_lead("openlines-dialog-1")

    assert raised.value.status is None
    assert str(raised.value).startswith("Bitrix24 crm.lead.list: no answer")
    assert_token_kept_out(raised.value, SECRET_TOKEN)


async def test_a_portal_answering_5xx_names_neither_url_nor_token(fake, crm):
    fake.outage = True

    with pytest.raises(Bitrix24Error) as raised:
        await crm.find_lead("openlines-dialog-1")

    assert str(raised.value) == "Bitrix24 crm.lead.list: HTTP 503: Service Unavailable"
    assert_token_kept_out(raised.value, TOKEN)


async def test_an_error_answer_names_neither_url_nor_token(fake):
    wrong_token = "wr0ngt0ken5x8z1q"
    async with httpx.AsyncClient() as http:
        wrong = Bitrix24Crm(SecretStr(fake.webhook_url.replace(TOKEN, wrong_token)), http)
        with pytest.raises(Bitrix24Error, match="INVALID_CREDENTIALS") as raised:
            await wrong.find_lead("openlines-dialog-1")

    assert (raised.value.status, raised.value.code) == (401, "INVALID_CREDENTIALS")
    assert_token_kept_out(raised.value, wrong_token)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (
            lambda request: httpx.Response(500, text="Internal Server Error"),
            "Bitrix24 crm.lead.list: HTTP 500: Internal Server Error",
        ),
        (  # a portal (or a proxy before it) that echoes the URL it was asked for
            lambda request: httpx.Response(
                500, json={"error": "INTERNAL", "error_description": f"failed: {request.url}"}
            ),
            "Bitrix24 crm.lead.list: HTTP 500: INTERNAL: failed: <webhook url>/crm.lead.list.json",
        ),
        (
            lambda request: httpx.Response(200, text="<html>maintenance</html>"),
            "Bitrix24 crm.lead.list: HTTP 200: no result in the answer",
        ),
    ],
)
async def test_failed_answers_name_neither_url_nor_token(answer, message):
    url = f"https://b24.example/rest/1/{SECRET_TOKEN}/"
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        with pytest.raises(Bitrix24Error) as raised:
            await Bitrix24Crm(SecretStr(url), http).find_lead("openlines-dialog-1")

    assert str(raised.value) == message
    assert_token_kept_out(raised.value, SECRET_TOKEN)


async def test_a_network_error_naming_the_url_is_scrubbed():
    def fail(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot connect to {request.url}", request=request)

    url = f"https://b24.example/rest/1/{SECRET_TOKEN}/"
    async with httpx.AsyncClient(transport=httpx.MockTransport(fail)) as http:
        with pytest.raises(Bitrix24Error) as raised:
            await Bitrix24Crm(SecretStr(url), http).find_lead("openlines-dialog-1")

    assert str(raised.value) == (
        "Bitrix24 crm.lead.list: no answer: ConnectError: cannot connect to "
        "<webhook url>/crm.lead.list.json"
    )
    assert_token_kept_out(raised.value, SECRET_TOKEN)


async def test_a_timeout_names_neither_url_nor_token():
    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout(f"timed out reading {request.url}", request=request)

    url = f"https://b24.example/rest/1/{SECRET_TOKEN}/"
    async with httpx.AsyncClient(transport=httpx.MockTransport(hang)) as http:
        with pytest.raises(Bitrix24Error, match="no answer within") as raised:
            await Bitrix24Crm(SecretStr(url), http).create_lead(draft())

    assert_token_kept_out(raised.value, SECRET_TOKEN)


async def test_the_httpx_request_log_blanks_the_token(fake, crm, caplog):
    caplog.set_level(logging.INFO, logger="httpx")

    await crm.find_lead("openlines-dialog-1")
    fake.outage = True
    with pytest.raises(Bitrix24Error):
        await crm.find_lead("openlines-dialog-1")

    lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert len(lines) == 2 and all("HTTP Request: POST" in line for line in lines)
    assert all("/rest/1/<redacted>/crm.lead.list.json" in line for line in lines)
    assert TOKEN not in caplog.text
    assert not any(TOKEN in line for line in lines)
