"""The Temporal client, configured the same way for the API, the worker and the tools."""

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from core.config import Settings


async def connect(settings: Settings) -> Client:
    """Connect to the configured Temporal frontend; pydantic models travel as JSON."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
    )
