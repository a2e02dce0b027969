"""contentgremlin: a self-hosted media publishing site that an admin can trust."""

__version__ = "0.1.0"
