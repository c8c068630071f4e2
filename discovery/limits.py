"""The sizes discovery validates against: each is the size of the column that stores it."""

from __future__ import annotations

MAX_ADDRESSES = 4096
MAX_PORTS = 256
WIDEST_V4_PREFIX = 20  # no CIDR wider than /20 (4,096 addresses)
WIDEST_V6_PREFIX = 116
MAX_TARGETS = 256  # target strings per run
TARGET_CHARS = 255  # one target as typed (a hostname is at most 253)
IDENTIFIER_CHARS = 120  # = fleet.Miner.identifier
SCHEME_CHARS = 8
DRIVER_CHARS = 40
MAKE_CHARS = 60
MODEL_CHARS = 120
FIRMWARE_CHARS = 120
MAC_CHARS = 17
SERIAL_CHARS = 100  # serial: identifiers keep 100 characters of it
ERROR_CHARS = 500
MAX_BATCH_DEVICES = 512  # devices in one discovery_batch
SCHEMES = ("", "http", "https", "tcp")  # what a found device may be dialled with
NAME_CHARS = 120
MIN_INTERVAL_MINUTES = 5
MAX_INTERVAL_MINUTES = 7 * 24 * 60
