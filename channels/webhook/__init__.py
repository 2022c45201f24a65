"""The ``webhook`` channel: any messenger or backend talks to a line over signed HTTP.

Every request either way is signed with the channel's secret. A receiver of openlines' POSTs
should, before trusting one: take the ``X-Openlines-Timestamp`` header (unix seconds) and
refuse it when more than 300 s off its own clock, either way (a replay); compute the
HMAC-SHA256, keyed with the channel secret, of the timestamp exactly as sent, a ``.`` and
the raw request body bytes (before any JSON parsing); compare its hex digest, in constant
time, with ``X-Openlines-Signature`` after its ``sha256=`` prefix; and drop a message whose
``X-Openlines-Delivery`` it has already taken (retries send the same id again). After a
secret rotation openlines signs its POSTs with the new secret at once (its own inbound
endpoint still accepts the old one for 24 h), so a receiver should accept both secrets
until it has switched over.
"""

from channels.contract import Connector, Traits
from channels.webhook.schemas import WebhookConfig

# Not imported as ``send``: that name would hide the ``channels.webhook.send`` module.
from channels.webhook.send import send as send_message

CONNECTOR = Connector(
    type="webhook",
    config_model=WebhookConfig,
    send=send_message,
    traits=Traits(files_through_api=True, signed=True),
)
