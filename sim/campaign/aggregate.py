"""A finished campaign's aggregate: what the rows add up to, and a repro file per violation.

aggregate(spec, variants, results, out_dir) -> dict (written as DIR/aggregate.json):
    runs, patient_years, crashes (count, ids), violations by requirement (count, runs,
    first message, the repro file), per fault kind the distribution (min, median, p95, max) of
    time to detection and of drug missed or over-delivered, withdrawal-risk hours.

A violated requirement's repro file (DIR/repro/SR-nn.toml) is the scenario of the variant with
the fewest days that shows it, cut to the day of its first violation and checked by running
it again (the full variant is kept if the cut one does not show it).
"""

import json
import os

from firmware.dosing import MS_PER_DAY
from sim.campaign import variant as variant_module
from sim.campaign.store import write_atomic

KEEP_IDS = 20


def distribution(values):
    """{n, min, median, p95, max} of numbers (nearest-rank p95; None when empty)."""
    xs = sorted(v for v in values if v is not None)
    if not xs:
        return {"n": 0, "min": None, "median": None, "p95": None, "max": None}
    n = len(xs)
    if n % 2:
        median = xs[n // 2]
    else:
        median = (xs[n // 2 - 1] + xs[n // 2]) / 2.0
    p95 = xs[max(0, -(-95 * n // 100) - 1)]
    return {"n": n, "min": xs[0], "median": round(median, 3), "p95": p95, "max": xs[-1]}


def aggregate(spec, variants, results, out_dir, wall_s=None, verify=True):
    pairs = [(v, r) for v, r in zip(variants, results) if r is not None]
    crashed = [v["id"] for v, r in pairs if r["crash"]]
    ok = [(v, r) for v, r in pairs if not r["crash"]]
    years = sum(v["days"] for v, _r in pairs) / 365.0
    out = {
        "campaign": spec.name, "spec": spec.path, "runs": len(pairs), "planned": len(variants),
        "patient_years": round(years, 3),
        "crashes": {"count": len(crashed), "variants": crashed[:KEEP_IDS],
                    "tracebacks": [os.path.join("crashes", i + ".txt") for i in crashed[:KEEP_IDS]]},
        "violations": _violations(ok, out_dir, verify),
    }
    out["violations_total"] = sum(e["count"] for e in out["violations"].values())
    kinds = {}
    for _v, r in ok:
        for f in r["faults"]:
            kinds.setdefault(f["kind"], []).append(f)
    out["faults"] = {}
    for kind in sorted(kinds):
        fs = kinds[kind]
        out["faults"][kind] = {
            "occurrences": len(fs),
            "detected": sum(1 for f in fs if f["detected"]),
            "undetected": sum(1 for f in fs if not f["detected"]),
            "detection_hours": distribution(f["detection_h"] for f in fs if f["detected"]),
            "missed_ug": distribution(f["missed_ug"] for f in fs),
            "over_delivered_ug": distribution(f["over_ug"] for f in fs),
        }
    hours = [r["summary"]["withdrawal_risk_hours"] for _v, r in ok]
    out["withdrawal_risk"] = {
        "hours_total": round(sum(hours), 1),
        "hours_per_patient_year": round(sum(hours) / years, 2) if years else None,
        "runs_with_any": sum(1 for h in hours if h),
        "hours_per_run": distribution(hours),
    }
    programmed = sum(r["summary"]["programmed_ug"] for _v, r in ok)
    delivered = sum(r["summary"]["delivered_true_ug"] for _v, r in ok)
    out["dose"] = {"programmed_ug": programmed, "delivered_ug": delivered,
                   "delivered_vs_programmed_pct":
                   round(100.0 * delivered / programmed, 2) if programmed else None}
    if wall_s is not None:
        out["wall_seconds"] = round(wall_s, 1)
    write_atomic(os.path.join(out_dir, "aggregate.json"),
                 json.dumps(out, indent=2, sort_keys=False) + "\n")
    return out


def _violations(ok, out_dir, verify):
    by_req = {}
    for v, r in ok:
        for req, count in r["violation_counts"].items():
            entry = by_req.setdefault(req, {"count": 0, "runs": 0, "variants": [],
                                            "first": None})
            entry["count"] += count
            entry["runs"] += 1
            if len(entry["variants"]) < KEEP_IDS:
                entry["variants"].append(v["id"])
            first = next((x for x in r["violations"] if x.get("req") == req), None)
            # The smallest-days variant (then the lowest id) stands for the requirement.
            key = (v["days"], v["id"])
            if entry["first"] is None or key < entry["first"][0]:
                entry["first"] = (key, v, first)
    out = {}
    for req in sorted(by_req):
        entry = by_req[req]
        _key, v, first = entry.pop("first")
        entry["message"] = first.get("message") if first else None
        entry["repro"] = write_repro(req, v, first, out_dir, verify)
        entry["repro_variant"] = v["id"]
        out[req] = entry
    return out


def write_repro(req, variant, first, out_dir, verify=True):
    """DIR/repro/REQ.toml: the variant's scenario, cut to the day of the first violation when
    the cut run still shows it.  Returns the path relative to out_dir."""
    raw, config = variant_module.scenario_of(variant)
    days = config["days"]
    cut = days
    if first and first.get("t_ms") is not None:
        since = first["t_ms"] - config["start_wall_ms"]
        cut = min(days, max(1, -(-since // MS_PER_DAY)))
    chosen = raw
    if cut < days:
        shorter = dict(raw)
        shorter["scenario"] = dict(raw["scenario"], days=cut)
        if not verify or _shows(shorter, variant, req):
            chosen = shorter
    patient = variant["patient"]
    header = [
        "# A minimal reproduction of %s from campaign %r, variant %s (base scenario %s, seed %d)."
        % (req, variant["campaign"], variant["id"], variant["base"], variant["seed"]),
        "# First violation: %s" % (first.get("message") if first else "?"),
        "# Run it: vpump run THIS_FILE   (the invariant monitor reports %s)" % req,
    ]
    if patient:
        header.append("# The campaign also set the educational patient model's parameters %s "
                      "(they change the patient columns, not the pump)." % json.dumps(patient))
    chosen = dict(chosen)
    chosen["scenario"] = dict(chosen["scenario"])
    chosen["scenario"]["name"] = "%s-%s-%s" % (variant["campaign"], req, variant["base"])
    text = "\n".join(header) + "\n\n" + scenario_toml(chosen)
    folder = os.path.join(out_dir, "repro")
    os.makedirs(folder, exist_ok=True)
    write_atomic(os.path.join(folder, req + ".toml"), text)
    return os.path.join("repro", req + ".toml")


def _shows(raw, variant, req):
    from sim import scenario as scenario_module
    try:
        config = scenario_module.validate(raw, source="repro")
        summary, _c = variant_module.run_config(config, variant["patient"])
    except Exception:
        return False
    return any(x.get("req") == req for x in summary.get("violations") or [])


def scenario_toml(raw):
    """A scenario document as TOML the way scenario files are written: [table]s, then
    [[timeline]] / [[faults]] entries (and [[timeline.flex]], [[therapy.flex]] under them)."""
    import tomli_w

    def value_of(value):
        if isinstance(value, list):
            return "[%s]" % ", ".join(value_of(v) for v in value)
        if isinstance(value, dict):
            return "{%s}" % ", ".join("%s = %s" % (key_of(k), value_of(v))
                                      for k, v in value.items())
        return tomli_w.dumps({"v": value})[len("v = "):].strip()

    def key_of(key):
        return tomli_w.dumps({key: 0}).split(" = ")[0]

    def line(key, value):
        return "%s = %s" % (key_of(key), value_of(value))

    def body(name, table, out):
        later = []
        for key, value in table.items():
            if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                later.append((key, value))
            else:
                out.append(line(key, value))
        for key, entries in later:
            for entry in entries:
                out.append("")
                out.append("[[%s.%s]]" % (name, key))
                body("%s.%s" % (name, key), entry, out)

    out = []
    for name, value in raw.items():
        if isinstance(value, dict):
            out.append("[%s]" % name)
            body(name, value, out)
            out.append("")
    for name, value in raw.items():
        if isinstance(value, list):
            for entry in value:
                out.append("[[%s]]" % name)
                body(name, entry, out)
                out.append("")
    return "\n".join(out)
