"""Search attributes every dialog workflow keeps current, so ops can filter in the Temporal UI.

Values are ids and enums only: search attributes are stored unencrypted, so never a name,
phone or email.
"""

from temporalio.common import SearchAttributeIndexedValueType, SearchAttributeKey

LINE_ID = SearchAttributeKey.for_int("LineId")
OPERATOR_ID = SearchAttributeKey.for_int("OperatorId")
DIALOG_STATUS = SearchAttributeKey.for_keyword("DialogStatus")
CHANNEL_TYPE = SearchAttributeKey.for_keyword("ChannelType")
CLIENT_ID = SearchAttributeKey.for_int("ClientId")
# The dialog's database work keeps failing (an outage); it retries and says so here.
DIALOG_STALLED = SearchAttributeKey.for_bool("DialogStalled")

ALL = (LINE_ID, OPERATOR_ID, DIALOG_STATUS, CHANNEL_TYPE, CLIENT_ID, DIALOG_STALLED)


def cli_type(value_type: SearchAttributeIndexedValueType) -> str:
    """The type as the ``temporal`` CLI names it (``Int``, ``Keyword``, ``KeywordList``)."""
    return "".join(part.capitalize() for part in value_type.name.split("_"))
