from fleet.models.jobs import ItemStatus, Job, JobItem, JobStatus
from fleet.models.keys import DataKey
from fleet.models.miners import Miner, MinerHealth
from fleet.models.telemetry import MinerLatest, Sample, SampleRollup

__all__ = [
    "DataKey",
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
