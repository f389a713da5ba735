"""symbolicator-py: a symbolication and source-map processing service."""

__version__ = "0.1.0"
