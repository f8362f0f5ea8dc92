"""The Flask front: HTTP in, tasks out by name, Redis read. Never imports TensorFlow."""

from web.app import create_app

__all__ = ["create_app"]
