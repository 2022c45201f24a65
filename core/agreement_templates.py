# ruff: noqa: RUF001  (the Russian text is Cyrillic on purpose, not Latin look-alikes)
"""Ready personal-data consent texts to start an agreement from.

The texts fit how openlines asks for consent: the notice goes out at a new client's first
message and the client's next message is recorded as consent, so each text says so. Ids are
stable (``personal-data-<language>``): clients may keep them.
"""

from pydantic import BaseModel, ConfigDict


class AgreementTemplate(BaseModel):
    """One ready agreement text in one language."""

    model_config = ConfigDict(frozen=True)
    id: str
    language: str
    title: str
    text: str


_EN = AgreementTemplate(
    id="personal-data-en",
    language="en",
    title="Consent to the processing of personal data",
    text=(
        "Before we continue, please read how we handle your personal data.\n\n"
        "By sending your next message you consent to the processing of the personal data "
        "you give us in this chat: your name, phone number, email address and the contents "
        "of our conversation. We use them only to answer your request, to contact you about "
        "it and to keep a record of your requests, and we keep them no longer than these "
        "purposes or the law require.\n\n"
        "You may withdraw your consent at any time: just tell us so in this chat. If you do "
        "not agree, please do not send us further messages."
    ),
)

_RU = AgreementTemplate(
    id="personal-data-ru",
    language="ru",
    title="Согласие на обработку персональных данных",
    text=(
        "Прежде чем мы продолжим, пожалуйста, ознакомьтесь с тем, как мы обрабатываем "
        "ваши персональные данные.\n\n"
        "Отправляя следующее сообщение, вы даёте согласие на обработку персональных данных, "
        "которые сообщаете в этом чате (имя, номер телефона, адрес электронной почты, "
        "содержание переписки), в соответствии с Федеральным законом от 27.07.2006 "
        "№ 152-ФЗ «О персональных данных». Мы используем их только для того, чтобы ответить "
        "на ваше обращение, связаться с вами по нему и вести историю обращений, и храним их "
        "не дольше, чем необходимо для этих целей или требует закон.\n\n"
        "Вы можете отозвать согласие в любой момент — просто напишите нам об этом в чат. "
        "Если вы не согласны, пожалуйста, не отправляйте нам больше сообщений."
    ),
)

TEMPLATES: tuple[AgreementTemplate, ...] = (_EN, _RU)
"""Every template, in the order they are listed."""

_BY_ID = {template.id: template for template in TEMPLATES}


def find(template_id: str) -> AgreementTemplate | None:
    """The template with this id, or None."""
    return _BY_ID.get(template_id)


def in_language(language: str | None) -> list[AgreementTemplate]:
    """The templates in ``language`` (an ISO 639-1 code), or all of them for None."""
    return [t for t in TEMPLATES if language is None or t.language == language]
