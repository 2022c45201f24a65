"""The registry is the one list of channel types, and its traits decide where types differ."""

from typing import get_args

from api.routes.channels import ChannelType
from channels import registry
from core.inbound import rating_reply


def test_the_api_accepts_exactly_the_registrys_types():
    assert sorted(get_args(ChannelType)) == sorted(registry.TYPES)


def test_a_1_or_0_is_a_rating_except_where_the_client_has_buttons_only():
    assert [rating_reply(t, " 1 ") for t in ("api", "webhook", "telegram")] == ["like"] * 3
    assert rating_reply("telegram", "0") == "dislike"
    assert rating_reply("webchat", "1") is None
    assert rating_reply("api", "10") is None


def test_only_the_web_chat_does_not_write_back_and_it_is_a_web_lead_source():
    assert [t for t in registry.TYPES if not registry.traits(t).writes_back] == ["webchat"]
    assert registry.traits("webchat").crm_source == "WEB"
    assert registry.traits("something-new") == registry.traits("api").__class__()
