from fleet.models.jobs import ItemStatus, Job, JobItem, JobStatus
from fleet.models.keys import DataKey
from fleet.models.miners import Miner, MinerHealth
from fleet.models.settings import FleetSettings
from fleet.models.telemetry import MinerLatest, Sample, SampleRollup

__all__ = [
    "DataKey",
    "FleetSettings",
    "ItemStatus",
    "Job",
    "JobItem",
    "JobStatus",
    "Miner",
    "MinerHealth",
    "MinerLatest",
    "Sample",
    "SampleRollup",
]
