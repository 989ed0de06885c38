"""A campaign's output folder: per-variant results as they finish, then rows and the aggregate.

    DIR/runs/ID.json        one finished variant (written atomically: temp file + rename)
    DIR/crashes/ID.txt      the traceback of a run that crashed
    DIR/results.parquet     a row per run (results.csv with csv=True)
    DIR/faults.parquet      a row per fault occurrence (faults.csv)
    DIR/aggregate.json      violations by requirement, crashes, per-fault-kind distributions
    DIR/repro/SR-nn.toml    the smallest run that shows each violated requirement

A rerun into the same folder skips variants whose DIR/runs/ID.json has the same fingerprint
(sim/campaign/spec.py fingerprint), so an interrupted campaign continues where it stopped and a
changed spec reruns only what changed.
"""

import json
import os
import tempfile

from sim.campaign.spec import VARY
from sim.errors import CampaignError

WALL_COLUMNS = ("wall_s",)          # the only columns that differ between identical campaigns


class Store:
    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.runs_dir = os.path.join(out_dir, "runs")
        try:
            os.makedirs(self.runs_dir, exist_ok=True)
        except OSError as exc:
            raise CampaignError("--out %s: cannot create the folder: %s"
                                % (out_dir, exc.strerror or exc)) from None

    def path(self, variant_id):
        return os.path.join(self.runs_dir, variant_id + ".json")

    def finished(self, variants):
        """Ids of the variants already done with the same fingerprint."""
        done = set()
        for v in variants:
            result = self.read(v["id"])
            if result is not None and result.get("fingerprint") == v["fingerprint"]:
                done.add(v["id"])
        return done

    def read(self, variant_id):
        try:
            with open(self.path(variant_id), encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError):
            return None     # missing, or a torn file from before atomic writes: run again

    def save(self, result):
        """Write one finished variant atomically (a kill leaves the old file or the new)."""
        write_atomic(self.path(result["id"]), json.dumps(result, sort_keys=True, indent=1))
        if result.get("traceback"):
            crashes = os.path.join(self.out_dir, "crashes")
            os.makedirs(crashes, exist_ok=True)
            write_atomic(os.path.join(crashes, result["id"] + ".txt"), result["traceback"])

    def results(self, variants):
        """The stored result of each variant, in variant-id order (None where missing)."""
        return [self.read(v["id"]) for v in variants]


def write_atomic(path, text):
    folder = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# -------------------------------------------------------------------------------- rows

def rows(spec, variants, results):
    """(run rows, fault rows): plain dicts with the same keys in every row, sorted by id."""
    kinds = sorted(set(f["kind"] for r in results if r for f in r["faults"]))
    reqs = sorted(set(req for r in results if r for req in r["violation_counts"]))
    vary_keys = [k for k in VARY if any(k in v["params"] for v in variants)]
    patient_keys = sorted(set(k for v in variants for k in v["patient"]))
    run_rows, fault_rows = [], []
    for v, r in sorted(zip(variants, results), key=lambda pair: pair[0]["id"]):
        if r is None:
            continue
        row = {"variant": v["id"], "base": v["base"], "seed": v["seed"], "days": v["days"],
               "patient_years": round(v["days"] / 365.0, 6)}
        for key in vary_keys:
            value = v["params"].get(key)
            row[key] = None if value is None else str(value) if value == "random" else \
                float(value)
        for key in patient_keys:
            row["patient_" + key] = v["patient"].get(key)
        for f in v["faults"]:
            prefix = "fault%d_%s_" % (f["number"], f["kind"])
            row[prefix + "rate_per_year"] = float(f["rate_per_year"]) if f["applied"] else None
            hours = f["duration_hours"]
            row[prefix + "duration_hours"] = float(hours) if f["applied"] and hours else None
        s = r["summary"] or {}
        row["crash"] = bool(r["crash"])
        row["programmed_ug"] = s.get("programmed_ug")
        row["delivered_ug"] = s.get("delivered_true_ug")
        row["delivered_to_csf_ug"] = s.get("delivered_to_csf_ug")
        row["delivered_vs_programmed_pct"] = s.get("delivered_vs_programmed_pct")
        if s:
            csf = s["delivered_to_csf_ug"] - s["injected_to_csf_ug"]
            row["missed_ug"] = max(0, s["programmed_ug"] - csf)
            row["over_delivered_ug"] = max(0, csf - s["programmed_ug"])
        else:
            row["missed_ug"] = row["over_delivered_ug"] = None
        row["withdrawal_risk_hours"] = s.get("withdrawal_risk_hours")
        row["overdose_hours"] = s.get("overdose_hours")
        row["alarms"] = sum((s.get("alarms_raised") or {}).values()) if s else None
        for kind in kinds:
            mine = [f for f in r["faults"] if f["kind"] == kind]
            times = [f["detection_h"] for f in mine if f["detected"]]
            row["faults_" + kind] = len(mine)
            row["undetected_" + kind] = sum(1 for f in mine if not f["detected"])
            row["detection_h_max_" + kind] = max(times) if times else None
            row["missed_ug_" + kind] = round(float(sum(f["missed_ug"] for f in mine)), 3)
            row["over_ug_" + kind] = round(float(sum(f["over_ug"] for f in mine)), 3)
        row["violations"] = sum(r["violation_counts"].values())
        for req in reqs:
            row["violations_" + req] = r["violation_counts"].get(req, 0)
        row["wall_s"] = r.get("wall_s")
        run_rows.append(row)
        for f in r["faults"]:
            fault_rows.append({"variant": v["id"], "base": v["base"], "seed": v["seed"],
                               "kind": f["kind"], "fault": f["fault"], "start_h": f["start_h"],
                               "duration_h": f["duration_h"], "detected": f["detected"],
                               "detection_h": f["detection_h"], "missed_ug": f["missed_ug"],
                               "over_ug": f["over_ug"]})
    return _one_type(run_rows), _one_type(fault_rows)


def _one_type(rows_):
    # A column with whole and decimal numbers (0 and 12.5 hours) becomes all floats, so a row
    # reads the same from Parquet, from CSV and from this list.
    for key in (rows_[0] if rows_ else ()):
        values = [r[key] for r in rows_]
        if any(isinstance(x, float) for x in values):
            for r in rows_:
                if isinstance(r[key], int) and not isinstance(r[key], bool):
                    r[key] = float(r[key])
    return rows_


def write_table(rows_, path_stem, csv):
    """Rows to PATH_STEM.parquet (pyarrow) or PATH_STEM.csv: the path written."""
    if csv:
        import csv as csv_module
        path = path_stem + ".csv"
        columns = list(rows_[0]) if rows_ else []
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            writer = csv_module.DictWriter(f, fieldnames=columns, lineterminator="\n")
            writer.writeheader()
            for row in rows_:
                writer.writerow({k: "" if row[k] is None else row[k] for k in columns})
        os.replace(tmp, path)
        return path
    import pyarrow as pa
    import pyarrow.parquet as pq
    path = path_stem + ".parquet"
    table = pa.Table.from_pylist(rows_) if rows_ else pa.table({})
    tmp = path + ".tmp"
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return path


def read_table(path):
    """A results table back as a list of row dicts (Parquet or CSV by its extension)."""
    if path.endswith(".csv"):
        import csv as csv_module
        with open(path, encoding="utf-8", newline="") as f:
            return list(csv_module.DictReader(f))
    import pyarrow.parquet as pq
    return pq.read_table(path).to_pylist()
