"""[drug]: which drug of the library (firmware/limits.py), its concentration and the first fill.
The concentration check is shared with refills ([refills], a timeline refill)."""

from firmware import limits as fw_limits
from sim.scenario.checker import REQUIRED
from sim.scenario.fields import CAPACITY, Choice, Field, Int
from sim.scenario.pump import MAX_CAPACITY_UL


class Concentration(Field):
    """A concentration the drug library lists for the scenario's drug (entry: its library
    entry, given to check())."""

    def check(self, c, table, t, key, entry=None, default=REQUIRED):
        allowed = entry["concentrations_ug_per_ml"]
        note = "must be one of %s ug/mL (%s concentrations in the drug library; " \
            "docs/clinical.md)" % (", ".join(str(a) for a in allowed), entry["drug"])
        value, given = c.get(table, t, key, default, note)
        if not given:
            return value
        if isinstance(value, bool) or not isinstance(value, int) or value not in allowed:
            if isinstance(value, float):
                note += " (got a float: no decimal point)"
            c.fail(table, key, value, note)
        return value

    def json_type(self):
        every = set()
        for entry in fw_limits.LIBRARY.values():
            every.update(entry["concentrations_ug_per_ml"])
        return {"type": "integer", "enum": sorted(every)}

    def allowed(self):
        return "ug/mL, one of the drug's concentrations in the drug library (firmware/limits.py)"


def volume_ul(note=" (the reservoir's capacity)", default=CAPACITY, doc=""):
    """A volume in uL from 0 to the reservoir's capacity (check() is given it as hi) -> nL."""
    return Int(0, unit="of uL", note=note, default=default, doc=doc, scale=1000,
               up_to="the reservoir's capacity", schema_hi=MAX_CAPACITY_UL)


FIELDS = {
    "name": Choice(sorted(fw_limits.LIBRARY), default="baclofen",
                   note=" (the drug library: firmware/limits.py)", doc="the drug"),
    "concentration_ug_per_ml": Concentration(doc="the drug's concentration in the reservoir"),
    "fill_ul": volume_ul(doc="the first fill (default: the reservoir's capacity)"),
}


def validate(c, t, config, capacity_ul):
    T = "drug"
    c.keys(T, t, tuple(FIELDS))
    drug = FIELDS["name"].check(c, T, t, "name")
    entry = fw_limits.library_entry(drug)
    config["drug"] = drug
    config["concentration_ug_per_ml"] = FIELDS["concentration_ug_per_ml"].check(
        c, T, t, "concentration_ug_per_ml", entry)
    config["fill_nl"] = FIELDS["fill_ul"].check(c, T, t, "fill_ul", hi=capacity_ul,
                                                default=capacity_ul)
    return entry
