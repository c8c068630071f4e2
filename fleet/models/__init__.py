from fleet.models.jobs import ItemStatus, Job, JobItem, JobStatus
from fleet.models.keys import DataKey
from fleet.models.miners import Miner, MinerHealth
from fleet.models.nodes import (
    CommandKey,
    CommandStatus,
    EnrollmentCode,
    FleetNode,
    NodeChallenge,
    NodeCommand,
    NodeSession,
    NodeStatus,
)
from fleet.models.settings import FleetSettings
from fleet.models.telemetry import MinerLatest, Sample, SampleRollup

__all__ = [
    "CommandKey",
    "CommandStatus",
    "DataKey",
    "EnrollmentCode",
    "FleetNode",
    "FleetSettings",
    "ItemStatus",
    "Job",
    "JobItem",
    "JobStatus",
    "Miner",
    "MinerHealth",
    "MinerLatest",
    "NodeChallenge",
    "NodeCommand",
    "NodeSession",
    "NodeStatus",
    "Sample",
    "SampleRollup",
]
