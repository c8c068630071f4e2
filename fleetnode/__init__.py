"""The fleet-node agent: pure Python, no Django. See docs/fleet-node.md and docs/protocol.md."""

__version__ = "0.1.0"
