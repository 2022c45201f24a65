"""The Bot API client, the connection calls and ``send`` against the fake Telegram: each
method, how errors map, and that the bot token is in no error, repr or log line."""

import logging
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from channels import telegram
from channels.contract import DeliveryError, Outgoing, Sender, Target
from channels.telegram import bot_api
from channels.telegram.bot_api import BotApi, BotApiError, InvalidBotToken
from channels.telegram.send import send
from tests.channels.telegram_fake import BOT_ID, BOT_USERNAME, TOKEN, FakeTelegram

OTHER_TOKEN = "7012345678:AAWrongTokenWrongTokenWrong123"


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def api(telegram_fake: FakeTelegram, http: httpx.AsyncClient) -> BotApi:
    return BotApi(TOKEN, http, telegram_fake.url)


def closed_port_url() -> str:
    """A local URL nothing listens on: connecting to it fails at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def chain_texts(error: BaseException) -> str:
    """Every text of the error and of everything chained to it, suppressed or not."""
    texts, pending, seen = [], [error], set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        texts += [str(current), repr(current), repr(current.args), repr(vars(current))]
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]
    return "\n".join(texts)


def assert_no_token(error: BaseException, token: str = TOKEN) -> None:
    texts = chain_texts(error)
    assert token not in texts
    assert token.split(":")[1] not in texts  # not even the secret half
    assert error.__cause__ is None and error.__context__ is None


def outgoing(**fields: object) -> Outgoing:
    defaults: dict[str, object] = {
        "message_id": 812,
        "dialog_id": 40,
        "chat_external_id": "48213579",
        "text": "Your parcel left the warehouse today.",
        "sender": Sender(name="Irina"),
        "created_at": datetime(2025, 1, 6, 12, 0, tzinfo=UTC),
    }
    return Outgoing.model_validate({**defaults, **fields})


def target(telegram_fake: FakeTelegram, token: str = TOKEN) -> Target:
    return Target(
        channel_id=3, config={"bot_token": token, "api_url": telegram_fake.url}, secrets=("s",)
    )


# The client, method by method.


async def test_get_me_answers_the_bot(telegram_fake, api):
    bot = await api.get_me()

    assert (bot.id, bot.username, bot.is_bot) == (BOT_ID, BOT_USERNAME, True)
    assert [(c.method, c.token) for c in telegram_fake.calls] == [("getMe", TOKEN)]


@pytest.mark.parametrize(("token", "status"), [(OTHER_TOKEN, 401), ("12:short", 404)])
async def test_a_refused_token_is_an_invalid_bot_token_naming_the_field(
    telegram_fake, http, token, status
):
    with pytest.raises(InvalidBotToken) as caught:
        await BotApi(token, http, telegram_fake.url).get_me()

    assert caught.value.status == status
    assert caught.value.field == "config.bot_token"
    assert "refused the bot token" in str(caught.value)
    assert_no_token(caught.value, token)


async def test_webhook_is_set_described_and_deleted(telegram_fake, api):
    url = "https://openlines.example.com/v1/channels/3/telegram"
    await api.set_webhook(url, "s3cret_-X", ["message", "edited_message", "callback_query"])

    assert telegram_fake.webhook is not None
    assert (telegram_fake.webhook.url, telegram_fake.webhook.secret_token) == (url, "s3cret_-X")
    assert telegram_fake.webhook.allowed_updates == ["message", "edited_message", "callback_query"]
    telegram_fake.pending_update_count, telegram_fake.last_error_message = 4, "Connection refused"
    info = await api.get_webhook_info()
    assert (info.url, info.pending_update_count) == (url, 4)
    assert info.last_error_message == "Connection refused"
    assert info.allowed_updates == ["message", "edited_message", "callback_query"]

    await api.delete_webhook()

    assert telegram_fake.webhook is None
    assert (await api.get_webhook_info()).url == ""


async def test_a_refused_webhook_is_a_bot_api_error_not_a_token_error(telegram_fake, api):
    telegram_fake.require_https = True

    with pytest.raises(BotApiError) as caught:
        await api.set_webhook("http://plain.example.com/hook", "secret", ["message"])

    assert type(caught.value) is BotApiError
    assert caught.value.status == 400
    assert "HTTPS URL must be provided" in caught.value.description


async def test_send_message_answers_the_message_id(telegram_fake, api):
    markup = {"inline_keyboard": [[{"text": "ok", "callback_data": "x"}]]}

    first = await api.send_message(48213579, "<b>Hi</b> there")
    second = await api.send_message("48213579", "plain", parse_mode=None, reply_markup=markup)

    assert second == first + 1
    assert [m["message_id"] for m in telegram_fake.sent] == [first, second]
    assert telegram_fake.sent[0]["text"] == "Hi there"
    params = telegram_fake.calls_of("sendMessage")[1].params
    assert params == {"chat_id": "48213579", "text": "plain", "reply_markup": markup}
    assert telegram_fake.calls_of("sendMessage")[0].params["parse_mode"] == "HTML"


async def test_unescaped_html_is_refused_as_telegram_does(telegram_fake, api):
    for text in ("1 < 2", "R&D", "<script>x</script>", "<b>open"):
        with pytest.raises(BotApiError) as caught:
            await api.send_message(1, text)
        assert caught.value.status == 400
        assert "can't parse entities" in caught.value.description
    assert telegram_fake.sent == []


async def test_answer_callback_query_with_and_without_text(telegram_fake, api):
    await api.answer_callback_query("2070938127361029376")
    await api.answer_callback_query("2070938127361029377", text="Thank you!")

    assert [c.params for c in telegram_fake.calls_of("answerCallbackQuery")] == [
        {"callback_query_id": "2070938127361029376"},
        {"callback_query_id": "2070938127361029377", "text": "Thank you!"},
    ]


async def test_get_file_answers_the_file_path(telegram_fake, api):
    path = telegram_fake.add_file("BQACAgIAAxkBAAIBE2d7doc", b"%PDF-1.7", "documents/file_7.pdf")

    assert await api.get_file("BQACAgIAAxkBAAIBE2d7doc") == path == "documents/file_7.pdf"
    with pytest.raises(BotApiError) as caught:
        await api.get_file("nope")
    assert (caught.value.status, caught.value.description) == (400, "Bad Request: invalid file_id")


# Errors: mapped, and never holding the token.


async def test_too_many_requests_carries_retry_after(telegram_fake, api):
    telegram_fake.fail_next("sendMessage", 429, retry_after=7)

    with pytest.raises(BotApiError) as caught:
        await api.send_message(1, "hi")

    assert (caught.value.status, caught.value.retry_after) == (429, 7)
    assert caught.value.description == "Too Many Requests: retry after 7"


@pytest.mark.parametrize("plain", [False, True])
async def test_a_server_error_holds_no_token(telegram_fake, api, plain):
    telegram_fake.fail_next(
        "getMe", 500 if not plain else 502, "Bad Gateway" if plain else None, plain=plain
    )

    with pytest.raises(BotApiError) as caught:
        await api.get_me()

    assert caught.value.status == (502 if plain else 500)
    assert caught.value.retry_after is None
    assert ("without a Bot API answer" in str(caught.value)) is plain
    assert_no_token(caught.value)


async def test_a_connection_error_holds_no_token(http):
    api = BotApi(TOKEN, http, closed_port_url())

    with pytest.raises(BotApiError) as caught:
        await api.get_me()

    assert caught.value.status is None
    assert "ConnectError" in str(caught.value)
    assert_no_token(caught.value)


async def test_a_timeout_holds_no_token(telegram_fake, api, monkeypatch):
    monkeypatch.setattr(bot_api, "REQUEST_TIMEOUT_S", 0.2)
    telegram_fake.stall["getMe"] = 1.0

    with pytest.raises(BotApiError) as caught:
        await api.get_me()

    assert caught.value.status is None
    assert "no answer within 0.2 s" in str(caught.value)
    assert_no_token(caught.value)


async def test_a_description_echoing_the_token_is_scrubbed(telegram_fake, api):
    telegram_fake.fail_next("getMe", 400, f"Bad Request: bot{TOKEN} is odd")

    with pytest.raises(BotApiError) as caught:
        await api.get_me()

    assert "<redacted>" in caught.value.description
    assert_no_token(caught.value)


async def test_httpx_request_logs_hold_no_token(telegram_fake, api, caplog):
    caplog.set_level(logging.INFO, logger="httpx")

    await api.get_me()

    assert "HTTP Request: POST" in caplog.text
    assert "/bot<redacted>/getMe" in caplog.text
    assert TOKEN not in caplog.text


def test_reprs_hold_no_token(api):
    assert TOKEN not in repr(api)
    assert TOKEN not in repr(telegram.TelegramConfig(bot_token=TOKEN))


# Config and connection.


def test_config_takes_a_token_shaped_bot_token_and_nothing_else():
    assert telegram.TelegramConfig(bot_token=TOKEN).bot_token == TOKEN
    for bad in ({"bot_token": "12345:tooshort"}, {"bot_token": TOKEN, "webhook_secret": "x"}):
        with pytest.raises(ValueError) as caught:
            telegram.TelegramConfig.model_validate(bad)
        assert TOKEN not in str(caught.value) and "tooshort" not in str(caught.value)


def test_the_connector_hides_its_secrets():
    connector = telegram.CONNECTOR
    assert (connector.type, connector.config_model) == ("telegram", telegram.TelegramConfig)
    assert connector.send is send
    assert connector.hidden_config == {"bot_token", "webhook_secret"}


async def test_connect_checks_the_token_then_sets_the_webhook(telegram_fake, http):
    config = telegram.TelegramConfig(bot_token=TOKEN)

    stored = await telegram.connect(config, 3, "https://ol.example.com/", http, telegram_fake.url)

    assert [c.method for c in telegram_fake.calls] == ["getMe", "setWebhook"]
    assert telegram_fake.webhook is not None
    assert telegram_fake.webhook.url == "https://ol.example.com/v1/channels/3/telegram"
    assert telegram_fake.webhook.secret_token == stored["webhook_secret"]
    assert len(stored["webhook_secret"]) >= 32
    assert telegram_fake.webhook.allowed_updates == ["message", "edited_message", "callback_query"]
    assert stored == {
        "bot_token": TOKEN,
        "webhook_secret": telegram_fake.webhook.secret_token,
        "bot_username": BOT_USERNAME,
    }
    again = await telegram.connect(config, 3, "https://ol.example.com", http, telegram_fake.url)
    assert again["webhook_secret"] != stored["webhook_secret"]

    assert (await telegram.health(stored, http, telegram_fake.url)).pending_update_count == 0
    await telegram.disconnect(stored, http, telegram_fake.url)
    assert telegram_fake.webhook is None


async def test_connect_with_a_refused_token_sets_no_webhook(telegram_fake, http):
    config = telegram.TelegramConfig(bot_token=OTHER_TOKEN)

    with pytest.raises(InvalidBotToken):
        await telegram.connect(config, 3, "https://ol.example.com", http, telegram_fake.url)

    assert [c.method for c in telegram_fake.calls] == ["getMe"]
    assert telegram_fake.webhook is None


# send: the connector's delivery.


async def test_send_escapes_html_under_a_bold_sender(telegram_fake, http):
    text = '1 < 2 & <b>not bold</b>, it\'s "quoted"'
    message = outgoing(text=text, sender=Sender(name="Irina <Support> & Co"))

    sent = await send(target(telegram_fake), message, http)

    assert sent.external_id == str(telegram_fake.sent[0]["message_id"])
    assert telegram_fake.sent[0]["html"] == (
        "<b>Irina &lt;Support&gt; &amp; Co</b>\n"
        "1 &lt; 2 &amp; &lt;b&gt;not bold&lt;/b&gt;, it&#x27;s &quot;quoted&quot;"
    )
    assert telegram_fake.sent[0]["text"] == f"Irina <Support> & Co\n{text}"
    params = telegram_fake.calls_of("sendMessage")[0].params
    assert (params["chat_id"], params["parse_mode"]) == (48213579, "HTML")
    assert "reply_markup" not in params


async def test_a_rating_request_carries_like_and_dislike_buttons(telegram_fake, http):
    await send(target(telegram_fake), outgoing(message_id=812, rating_request=True), http)

    keyboard = telegram_fake.sent[0]["reply_markup"]["inline_keyboard"]
    assert [[(b["text"], b["callback_data"]) for b in row] for row in keyboard] == [
        [("👍", "rating:like:812"), ("👎", "rating:dislike:812")]
    ]


async def test_a_long_text_is_cut_to_telegrams_limit(telegram_fake, http):
    await send(target(telegram_fake), outgoing(text="😀" * 3000), http)

    text = telegram_fake.sent[0]["text"]
    assert text.startswith("Irina\n😀") and text.endswith("…")
    assert len(text.encode("utf-16-le")) // 2 <= 4096


@pytest.mark.parametrize(
    ("status", "permanent", "retry_after"),
    [(429, False, 7), (403, True, None), (400, True, None), (500, False, None)],
)
async def test_send_failures_map_to_delivery_errors(
    telegram_fake, http, status, permanent, retry_after
):
    telegram_fake.fail_next("sendMessage", status, retry_after=retry_after)

    with pytest.raises(DeliveryError) as caught:
        await send(target(telegram_fake), outgoing(), http)

    assert (caught.value.permanent, caught.value.retry_after) == (permanent, retry_after)
    assert str(status) in caught.value.reason
    if status == 403:
        assert "blocked by the user" in caught.value.reason
    assert_no_token(caught.value)


async def test_send_with_a_revoked_token_is_permanent(telegram_fake, http):
    with pytest.raises(DeliveryError) as caught:
        await send(target(telegram_fake, OTHER_TOKEN), outgoing(), http)

    assert caught.value.permanent
    assert_no_token(caught.value, OTHER_TOKEN)


async def test_send_network_failures_are_transient(telegram_fake, http, monkeypatch):
    down = Target(
        channel_id=3, config={"bot_token": TOKEN, "api_url": closed_port_url()}, secrets=()
    )
    with pytest.raises(DeliveryError) as refused:
        await send(down, outgoing(), http)
    monkeypatch.setattr(bot_api, "REQUEST_TIMEOUT_S", 0.2)
    telegram_fake.stall["sendMessage"] = 1.0
    with pytest.raises(DeliveryError) as timed_out:
        await send(target(telegram_fake), outgoing(), http)

    for caught in (refused, timed_out):
        assert not caught.value.permanent and caught.value.retry_after is None
        assert_no_token(caught.value)


async def test_send_without_api_url_goes_to_the_public_api():
    seen: list[httpx.URL] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return httpx.Response(200, json={"ok": True, "result": {"message_id": 5}})

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        sent = await send(Target(3, {"bot_token": TOKEN}, ()), outgoing(), http)

    assert sent.external_id == "5"
    assert str(seen[0]) == f"https://api.telegram.org/bot{TOKEN}/sendMessage"


async def test_send_without_a_token_is_permanent(http):
    with pytest.raises(DeliveryError) as caught:
        await send(Target(3, {}, ()), outgoing(), http)

    assert caught.value.permanent
