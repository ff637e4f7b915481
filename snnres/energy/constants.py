"""Energy per operation, with sources. An AC (accumulate) is what a spike costs at each synapse,
a MAC (multiply-accumulate) what a real-valued input costs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EnergyModel:
    e_ac_pj: float = 0.9
    e_mac_pj: float = 4.6
    name: str = "45nm-fp32"
    source: str = "Horowitz, ISSCC 2014, 45 nm: 32-bit float add 0.9 pJ, multiply 3.7 pJ (MAC 4.6 pJ)"


PRESETS: dict[str, EnergyModel] = {
    "45nm-fp32": EnergyModel(),
    "45nm-fp16": EnergyModel(0.4, 1.5, "45nm-fp16",
                             "Horowitz, ISSCC 2014, 45 nm: 16-bit float add 0.4 pJ, multiply 1.1 pJ"),
    "45nm-int32": EnergyModel(0.1, 3.2, "45nm-int32",
                              "Horowitz, ISSCC 2014, 45 nm: 32-bit int add 0.1 pJ, multiply 3.1 pJ"),
    "45nm-int8": EnergyModel(0.03, 0.23, "45nm-int8",
                             "Horowitz, ISSCC 2014, 45 nm: 8-bit int add 0.03 pJ, multiply 0.2 pJ"),
}


def energy_model(preset: str = "45nm-fp32", e_ac_pj: float | None = None, e_mac_pj: float | None = None) -> EnergyModel:
    """A preset, with either constant overridden (the name then says so)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown energy preset {preset!r}; presets: {sorted(PRESETS)}")
    base = PRESETS[preset]
    if e_ac_pj is None and e_mac_pj is None:
        return base
    return EnergyModel(base.e_ac_pj if e_ac_pj is None else e_ac_pj, base.e_mac_pj if e_mac_pj is None else e_mac_pj,
                       f"{base.name} (overridden)", f"user-set constants; default source: {base.source}")
