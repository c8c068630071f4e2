from fleet.models.keys import DataKey
from fleet.models.miners import Miner, MinerHealth
from fleet.models.telemetry import MinerLatest, Sample

__all__ = ["DataKey", "Miner", "MinerHealth", "MinerLatest", "Sample"]
