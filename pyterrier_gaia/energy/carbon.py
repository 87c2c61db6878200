"""Carbon and water accounting: kWh x PUE x grid intensity, and kWh x WUE.

Grid intensities by country come from CodeCarbon's offline data, read through its own loader
(``codecarbon.input.DataSource``: ``get_global_energy_mix_data()``, by ISO 3166-1 alpha-3 code);
without a country or a number, CodeCarbon's world average (``get_carbon_intensity_per_source_data()``)
is used.
"""
import numbers
from typing import Dict, Optional

from .profile import codecarbon_data

JOULES_PER_KWH = 3.6e6


def _energy_mix() -> Dict[str, dict]:
    return codecarbon_data().get_global_energy_mix_data()


def _world_average() -> float:
    return float(codecarbon_data().get_carbon_intensity_per_source_data()["world_average"])


class Grid:
    """Where the electricity comes from: grid carbon intensity, data-centre PUE and WUE.

    >>> Grid()                        # CodeCarbon's world average intensity, PUE 1.0, no water figure
    >>> Grid("FRA", pue=1.2)          # France's intensity from CodeCarbon's data
    >>> Grid(intensity=50, wue=1.8)   # a known intensity (gCO2e/kWh) and WUE (L/kWh)

    ``carbon=`` arguments elsewhere accept a Grid, a country code (str) or an intensity (number).
    """

    def __init__(self, country: Optional[str] = None, intensity: Optional[float] = None, pue: float = 1.0,
                 wue: Optional[float] = None):
        if country is not None and intensity is not None:
            raise ValueError("gaia.Grid: give a country or an intensity, not both")
        if country is not None:
            code = str(country).upper()
            mix = _energy_mix().get(code)
            if mix is None or mix.get("carbon_intensity") is None:
                raise ValueError(f"gaia.Grid: country {country!r} is not in CodeCarbon's global_energy_mix.json; "
                                 "expected an ISO 3166-1 alpha-3 code such as 'FRA', 'USA' or 'DEU'")
            intensity = float(mix["carbon_intensity"])
            source = f"CodeCarbon global_energy_mix.json: {mix.get('country_name', code)} ({code}), {mix.get('year')}"
        elif intensity is not None:
            source = "given"
        else:
            intensity, source = _world_average(), "CodeCarbon world_average (carbon_intensity_per_source.json)"
        for name, value in [("intensity", intensity), ("pue", pue)] + ([("wue", wue)] if wue is not None else []):
            if not isinstance(value, numbers.Real) or value < 0:
                raise ValueError(f"gaia.Grid: {name}={value!r}, expected a non-negative number")
        if pue < 1:
            raise ValueError(f"gaia.Grid: pue={pue!r}, expected at least 1 (facility energy / IT energy)")
        self.country = country.upper() if country is not None else None
        self.intensity = float(intensity)
        self.source = source
        self.pue = float(pue)
        self.wue = None if wue is None else float(wue)

    @classmethod
    def coerce(cls, value) -> "Grid":
        """A Grid from a Grid, a country code, an intensity in gCO2e/kWh, or None (the default grid)."""
        if value is None:
            return cls()
        if isinstance(value, Grid):
            return value
        if isinstance(value, str):
            return cls(country=value)
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            return cls(intensity=value)
        raise TypeError(f"gaia: carbon={value!r} ({type(value).__name__}); expected a gaia.Grid, "
                        "a country code such as 'FRA', or an intensity in gCO2e/kWh")

    def account(self, joules: float) -> Dict[str, Optional[float]]:
        """kWh (at the meter, before PUE), gCO2e (kWh x PUE x intensity) and litres of water (kWh x WUE, or None)."""
        kwh = joules / JOULES_PER_KWH
        return {"kwh": kwh, "gco2e": kwh * self.pue * self.intensity,
                "water_l": None if self.wue is None else kwh * self.wue}

    def constants(self) -> Dict[str, object]:
        """The accounting constants as a JSON-serialisable dict, for ledger records."""
        return {"intensity_gco2e_per_kwh": self.intensity, "intensity_source": self.source,
                "pue": self.pue, "wue_l_per_kwh": self.wue}

    def __repr__(self):
        where = f"{self.country!r}" if self.country else f"intensity={self.intensity:g}"
        return f"Grid({where}, pue={self.pue:g}, wue={self.wue!r})"
