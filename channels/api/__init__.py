"""The ``api`` channel: clients write through the inbound API and read the dialog's messages,
so a stored message is its own delivery."""

from pydantic import BaseModel, ConfigDict

from channels.contract import Connector, Traits


class ApiConfig(BaseModel):
    """No settings."""

    model_config = ConfigDict(extra="forbid")


CONNECTOR = Connector(type="api", config_model=ApiConfig, traits=Traits(files_through_api=True))
