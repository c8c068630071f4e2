"""Hardware catalogue of the simulated miners.

The numbers are rounded public datasheet figures; they only need to be plausible enough that a
fleet manager's charts, efficiency maths and alert thresholds behave as they would on real rigs.
"""

from __future__ import annotations

from dataclasses import dataclass

PROTOOS = "protoos"
ANTMINER = "antminer"
KINDS = (PROTOOS, ANTMINER)


@dataclass(frozen=True, slots=True)
class ModelSpec:
    kind: str
    name: str
    boards: int
    asics_per_board: int
    fans: int
    nominal_ths: float
    nominal_w: int
    min_w: int
    max_w: int
    fan_max_rpm: int
    psus: int = 1
    immersion: bool = False
    firmware: str = ""

    @property
    def nominal_board_w(self) -> float:
        return self.nominal_w / self.boards


MODELS: dict[str, ModelSpec] = {
    m.name: m
    for m in (
        ModelSpec(
            kind=PROTOOS,
            name="Rig",
            boards=3,
            asics_per_board=96,
            fans=4,
            nominal_ths=204.0,
            nominal_w=3500,
            min_w=1000,
            max_w=4200,
            fan_max_rpm=6600,
            psus=2,
            firmware="1.8.2",
        ),
        ModelSpec(
            kind=ANTMINER,
            name="Antminer S19 XP",
            boards=3,
            asics_per_board=110,
            fans=4,
            nominal_ths=140.0,
            nominal_w=3010,
            min_w=2200,
            max_w=3010,
            fan_max_rpm=6000,
            firmware="Thu May 26 11:55:20 CST 2022",
        ),
        ModelSpec(
            kind=ANTMINER,
            name="Antminer S21",
            boards=3,
            asics_per_board=108,
            fans=4,
            nominal_ths=200.0,
            nominal_w=3500,
            min_w=2600,
            max_w=3500,
            fan_max_rpm=6000,
            firmware="Tue Dec 19 15:41:08 CST 2023",
        ),
        ModelSpec(
            kind=ANTMINER,
            name="Antminer S19j Pro",
            boards=3,
            asics_per_board=126,
            fans=4,
            nominal_ths=104.0,
            nominal_w=3068,
            min_w=2300,
            max_w=3068,
            fan_max_rpm=6000,
            firmware="Wed Jan 12 10:21:44 CST 2022",
        ),
    )
}

DEFAULT_MODEL = {PROTOOS: "Rig", ANTMINER: "Antminer S19 XP"}


def model_for(kind: str, name: str | None) -> ModelSpec:
    """Look a model up by name, refusing one of the other kind (a typo must not go unnoticed)."""
    model = MODELS.get(name or DEFAULT_MODEL[kind])
    if model is None or model.kind != kind:
        known = ", ".join(n for n, m in MODELS.items() if m.kind == kind)
        raise ValueError(f"unknown {kind} model {name!r} (known: {known})")
    return model
