"""Channels: how clients reach a line and how what the line says reaches them.

``contract`` is what every connector provides, ``registry`` maps channel types to connectors,
and each connector (``api``, ``webhook``, ``telegram``) is a subpackage of its own.
"""
