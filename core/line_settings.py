"""Line settings: every group of spec/settings.md as pydantic models, shared by the API,
the workflows and the activities.

Values outside their ranges are refused (never clamped) and unknown fields are refused, so
a typo in a setting name is an error instead of a silently ignored value. Durations are
integer seconds.
"""

from datetime import date
from typing import Annotated, Any, Literal
from zoneinfo import available_timezones

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_core.core_schema import ValidationInfo

from core.languages import ISO_639_1


def _whole(value: Any) -> Any:
    """JSON has one number type: 60.0 is the whole number 60 (a string or a bool is not)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# An integer setting is strict, but 60.0 counts as 60. Its limits go before this validator
# (``Annotated[int, Field(ge=1), WHOLE]``): after it, pydantic cannot put them in the JSON
# schema as minimum and maximum.
WHOLE = BeforeValidator(_whole)
# A row id: PostgreSQL's integer, so a larger one is invalid input, not a failed query.
Id = Annotated[int, Field(ge=1, le=2**31 - 1), WHOLE]
Text2000 = Annotated[str, StringConstraints(max_length=2000)]
Text100 = Annotated[str, StringConstraints(max_length=100)]
# [0-9], not \d: pydantic's regex engine also takes the digits of other scripts.
HourMinute = Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
TextOrNone = Literal["text", "none"]

_TIMEZONES = frozenset(available_timezones())


def _calendar_day(holiday: str) -> str:
    try:
        date(2000, int(holiday[:2]), int(holiday[3:]))  # a leap year, so 02-29 is a holiday
    except ValueError:
        raise PydanticCustomError(
            "invalid_holiday", "'{holiday}' is not a calendar day (MM-DD)", {"holiday": holiday}
        ) from None
    return holiday


# Checked item by item, so an error names the item: ``worktime.holidays[1]``.
# The pattern admits calendar days only (02-29 included), so the schema says it too.
_MONTH_DAY = (
    r"^(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-9])|(?:0[13-9]|1[0-2])-30|(?:0[13578]|1[02])-31)$"
)
Holiday = Annotated[str, StringConstraints(pattern=_MONTH_DAY), AfterValidator(_calendar_day)]
# Lists whose items may not repeat (JSON schema's uniqueItems compares whole items).
UNIQUE = Field(json_schema_extra={"uniqueItems": True})


def needed_when(flag: str, field: str) -> dict[str, Any]:
    """The JSON schema of "``field`` is given (not null) when ``flag`` is true"."""
    return {
        "if": {"properties": {flag: {"const": True}}, "required": [flag]},
        "then": {"properties": {field: {"not": {"type": "null"}}}, "required": [field]},
    }


class Group(BaseModel):
    """Base of every settings group: strict types, unknown fields refused."""

    # Only the JSON names are accepted (``worktime.from``, never ``from_``).
    model_config = ConfigDict(extra="forbid", strict=True)


class Member(Group):
    type: Literal["operator", "department"]
    id: Id


class DisplayIdentity(Group):
    name: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    position: Annotated[str, StringConstraints(max_length=255)] | None = None
    avatar_url: Annotated[str, StringConstraints(max_length=2048)] | None = None


class Queue(Group):
    members: Annotated[list[Member], UNIQUE] = []
    distribution: Literal["evenly", "strictly", "all"] = "evenly"
    handover_after: Annotated[int, Field(ge=60, le=43200), WHOLE] = 60
    check_availability: bool = True
    max_dialogs_per_operator: Annotated[int, Field(ge=0, le=1000), WHOLE] = 0
    not_counted: Literal["answered", "awaiting_client", "closed"] = "answered"
    operator_display: Literal["profile", "line", "hidden"] = "profile"
    # Keys are operator ids (JSON object keys are strings).
    operator_overrides: Annotated[
        dict[Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]*$")], DisplayIdentity],
        Field(json_schema_extra={"additionalProperties": False}),  # other keys are refused
    ] = {}
    hidden_identity: DisplayIdentity = DisplayIdentity(name="Operator")

    @field_validator("members")
    @classmethod
    def _members_unique(cls, members: list[Member]) -> list[Member]:
        seen: set[tuple[str, int]] = set()
        for member in members:
            if (member.type, member.id) in seen:
                raise PydanticCustomError(
                    "duplicate_member",
                    "{type} {id} is listed twice",
                    {"type": member.type, "id": member.id},
                )
            seen.add((member.type, member.id))
        return members


class Crm(Group):
    enabled: bool = True
    chat_tracker: bool = True
    create: Literal["none", "lead"] = "lead"
    lead_source: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "channel"
    forward_to_responsible: bool = True
    transfer_changes_responsible: bool = True


class Worktime(Group):
    enabled: bool = False
    timezone: Annotated[str, Field(json_schema_extra={"enum": sorted(_TIMEZONES)})] = "UTC"
    from_: HourMinute = Field("09:00", alias="from")
    # Checked even when defaulted: {"from": "19:00"} alone is refused.
    to: HourMinute = Field("18:00", validate_default=True)
    days_off: Annotated[list[Weekday], UNIQUE] = ["sat", "sun"]
    holidays: list[Holiday] = []
    off_hours_action: TextOrNone = "text"
    off_hours_text: Text2000 = (
        "Thank you for your message. We are outside working hours now; "
        "an operator will answer as soon as we are back."
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if value not in _TIMEZONES:
            raise PydanticCustomError(
                "unknown_timezone", "unknown IANA time zone '{zone}'", {"zone": value}
            )
        return value

    @field_validator("to")
    @classmethod
    def _after_from(cls, value: str, info: ValidationInfo) -> str:
        start = info.data.get("from_")
        if start is not None and value <= start:
            raise PydanticCustomError(
                "worktime_order", "must be later than 'from' ({start})", {"start": start}
            )
        return value

    @field_validator("days_off")
    @classmethod
    def _days_unique(cls, days: list[str]) -> list[str]:
        if len(set(days)) != len(days):
            raise PydanticCustomError("duplicate_day", "a day is listed twice")
        return days


class Agreement(Group):
    model_config = ConfigDict(json_schema_extra=needed_when("required", "agreement_id"))
    required: bool = False
    agreement_id: Id | None = Field(None, validate_default=True)

    @field_validator("agreement_id")
    @classmethod
    def _needed_when_required(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is None and info.data.get("required"):
            raise PydanticCustomError("missing", "required when agreement.required is true")
        return value


class Welcome(Group):
    enabled: bool = True
    each_session: bool = False
    text: Text2000 = "Hello! Thank you for contacting us. An operator will answer shortly."


class NoAnswer(Group):
    after: Annotated[int, Field(ge=60, le=43200), WHOLE] = 60
    action: TextOrNone = "none"
    text: Text2000 = "All our operators are busy right now. Please wait, we will answer soon."


class Close(Group):
    action: TextOrNone = "text"
    text: Text2000 = "Thank you for contacting us. The dialog is closed."


class Inactivity(Group):
    after: Annotated[int, Field(ge=3600, le=2678400), WHOLE] = 14400
    action: TextOrNone = "none"
    text: Text2000 = "We have not heard from you for a while, so we are closing this dialog."


_RATING_REQUEST = "Please rate the operator's work"
_RATING_LIKE = "Thank you for your rating!"
_RATING_DISLIKE = "Thank you. We will try to do better."


class RatingTexts(Group):
    """Each text has its default, so ``{"like": "..."}`` alone is a valid group."""

    request: Text100 = _RATING_REQUEST
    like: Text100 = _RATING_LIKE
    dislike: Text100 = _RATING_DISLIKE


class TextRatingTexts(Group):
    request: Text2000 = f"{_RATING_REQUEST}: send 1 if you liked it, 0 if you did not."
    like: Text2000 = _RATING_LIKE
    dislike: Text2000 = _RATING_DISLIKE


class Rating(Group):
    enabled: bool = True
    close_on_rating: bool = False
    time_limit: Annotated[int, Field(ge=0, le=2592000), WHOLE] = 0
    widget_texts: RatingTexts = RatingTexts()
    text_texts: TextRatingTexts = TextRatingTexts()


class Bot(Group):
    model_config = ConfigDict(json_schema_extra=needed_when("enabled", "bot_id"))
    enabled: bool = False
    bot_id: Id | None = Field(None, validate_default=True)
    join: Literal["first", "always"] = "first"
    handover_after: Annotated[int, Field(ge=0, le=86400), WHOLE] = 600
    leave: Literal["queue", "close"] = "queue"

    @field_validator("bot_id")
    @classmethod
    def _needed_when_enabled(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is None and info.data.get("enabled"):
            raise PydanticCustomError("missing", "required when bot.enabled is true")
        return value


class KpiItem(Group):
    limit: Annotated[int, Field(ge=0, le=86400), WHOLE] = 0
    notify: bool = False
    recipients: list[Id] = []
    text: Text2000 = "#OPERATOR# has not answered dialog #DIALOG# in time."


class Kpi(Group):
    first_answer: KpiItem = KpiItem()
    further_answer: KpiItem = KpiItem()


class LineSettings(Group):
    """A whole line as clients send and receive it, minus its id."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = Field(
        None, description="Defaults to 'Line N' once the line has its id"
    )
    active: bool = True
    language: Annotated[str, Field(json_schema_extra={"enum": sorted(ISO_639_1)})] = "en"
    queue: Queue = Queue()
    crm: Crm = Crm()
    worktime: Worktime = Worktime()
    agreement: Agreement = Agreement()
    welcome: Welcome = Welcome()
    no_answer: NoAnswer = NoAnswer()
    close: Close = Close()
    rating_wait: Annotated[int, Field(ge=0, le=86400), WHOLE] = 600
    inactivity: Inactivity = Inactivity()
    quick_answers_list_id: Id | None = None
    watch_typing: bool = True
    rating: Rating = Rating()
    bot: Bot = Bot()
    kpi: Kpi = Kpi()

    @field_validator("language")
    @classmethod
    def _iso_639_1(cls, value: str) -> str:
        if value not in ISO_639_1:
            raise PydanticCustomError(
                "unknown_language", "'{code}' is not an ISO 639-1 language code", {"code": value}
            )
        return value

    def dump(self) -> dict[str, Any]:
        """The JSON form clients see (``worktime.from``, not ``from_``)."""
        return self.model_dump(mode="json", by_alias=True)


def merge_patch(
    current: dict[str, Any], patch: dict[str, Any], model: type[BaseModel]
) -> dict[str, Any]:
    """Apply a PATCH body: settings groups merge field by field, everything else is replaced.

    A group is a field whose type is a settings model, so ``{"queue": {"distribution": "all"}}``
    keeps the other queue fields, while a list or a map (``members``, ``operator_overrides``)
    is replaced whole.
    """
    merged = dict(current)
    for key, value in patch.items():
        field = model.model_fields.get(key) or _field_by_alias(model, key)
        sub_model = field.annotation if field is not None else None
        if (
            isinstance(value, dict)
            and isinstance(merged.get(key), dict)
            and isinstance(sub_model, type)
            and issubclass(sub_model, BaseModel)
        ):
            merged[key] = merge_patch(merged[key], value, sub_model)
        else:
            merged[key] = value
    return merged


def _field_by_alias(model: type[BaseModel], alias: str) -> Any:
    return next((f for f in model.model_fields.values() if f.alias == alias), None)
