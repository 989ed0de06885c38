"""`vpump report DIR` (tools/report.py): plots, a self-contained HTML page and report.json from a
run's output folder; with --scenario the IEC 60601-2-24 start-up and trumpet curves.

One 10-day run of the adult scenario and one report of it (with the curves) are shared by the
module; the bad-input tests use tiny hand-made folders.
"""

import io
import json
import os
import re
import shutil
import sys

import pytest

from tools import cli, report

pytest.importorskip("matplotlib", reason="vpump report needs the report extra: pip install vpump[report]")

ADULT = "adult-sci-continuous"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ALWAYS = ("reservoir", "dose", "patient", "battery", "timeline")   # patient: runs have its columns
CURVES = ("startup", "trumpet")


def call(*argv):
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("run") / "adult")
    code, _, err = call("run", ADULT, "--days", "10", "--out", d, "--quiet")
    assert code == 0, err
    return d


@pytest.fixture(scope="module")
def reported(run_dir, tmp_path_factory):
    """The report with curves, written to a separate --out folder."""
    out = str(tmp_path_factory.mktemp("report"))
    code, stdout, err = call("report", run_dir, "--scenario", ADULT, "--out", out)
    assert code == 0, err
    assert "report.html" in stdout
    return out


def test_pngs_are_valid(reported):
    for name in ALWAYS + CURVES:
        path = os.path.join(reported, name + ".png")
        assert os.path.getsize(path) > 1000, name
        with open(path, "rb") as f:
            assert f.read(8) == PNG_MAGIC, name


def test_html_is_self_contained_with_every_section(reported):
    with open(os.path.join(reported, "report.html"), encoding="utf-8") as f:
        page = f.read()
    assert page.count("data:image/png;base64,") == len(ALWAYS + CURVES)
    for title in ("Summary", "Reservoir: true vs estimated", "Delivered dose per day vs programmed",
                  "Battery remaining", "Timeline of therapy states and alarms",
                  "Start-up curve (IEC 60601-2-24)", "Trumpet curve (IEC 60601-2-24)"):
        assert title in page, title
    assert "not clinical advice" in page
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", page, re.I)
    assert not re.search(r"<(script|link)\b", page, re.I)
    # every img is a data URI
    assert all(src.startswith("data:image/png;base64,")
               for src in re.findall(r'src="([^"]*)"', page))


def test_report_json(reported, run_dir):
    with open(os.path.join(reported, "report.json"), encoding="utf-8") as f:
        data = json.load(f)
    assert set(data) >= {"educational", "source", "summary", "daily", "figures", "flow_curves"}
    s = data["summary"]
    assert s["scenario"] == ADULT and s["days"] == 10
    for key in ("refills", "boluses", "alarms_raised", "alarms_cleared", "refusals",
                "low_reservoir_alarm_ul"):
        assert key in s
    assert s["low_reservoir_alarm_ul"] == 2000
    assert s["boluses"].get("patient", 0) > 0
    assert data["daily"]["day"] == list(range(10))
    # 400 ug/day basal plus 25 ug patient boluses, all delivered by the ideal pump
    for delivered, programmed in zip(data["daily"]["delivered_true_ug"], data["daily"]["programmed_ug"]):
        assert programmed >= 400 and abs(delivered - programmed) <= 10
    assert set(data["figures"]) == set(ALWAYS + CURVES)
    # the run folder itself is untouched by --out
    assert not os.path.exists(os.path.join(run_dir, "report.html"))


def test_trumpet_curve_is_sane_for_the_ideal_pump(reported):
    with open(os.path.join(reported, "report.json"), encoding="utf-8") as f:
        curves = json.load(f)["flow_curves"]
    st, tr = curves["startup"], curves["trumpet"]
    assert len(st["t_min"]) == 240 and st["t_min"][0] == 0.5 and st["t_min"][-1] == 120
    assert [w["window_min"] for w in tr["windows"]] == [2, 5, 11, 19, 31]
    # Quantised 1 uL strokes: the second hour's error is within one stroke of what was programmed.
    one_stroke_pct = 100.0 * 1.0 / (tr["mean_flow_ul_per_h"] or 1.0)
    assert abs(tr["mean_error_pct"]) <= one_stroke_pct + 1e-6
    for w in tr["windows"]:
        assert w["min_error_pct"] <= tr["mean_error_pct"] + 1e-9 <= w["max_error_pct"] + 2e-9
        assert w["min_error_pct"] >= -100.0
    # the trumpet narrows: the longest window spreads less than the shortest
    spread = [w["max_error_pct"] - w["min_error_pct"] for w in tr["windows"]]
    assert spread[-1] < spread[0]
    assert curves["strokes"] > 0


def test_without_scenario_the_runs_own_scenario_gives_the_curves(run_dir, reported):
    code, _, err = call("report", run_dir)
    assert code == 0, err
    with open(os.path.join(run_dir, "report.json"), encoding="utf-8") as f:
        data = json.load(f)
    with open(os.path.join(reported, "report.json"), encoding="utf-8") as f:
        given = json.load(f)
    assert data["flow_curves"] == given["flow_curves"] is not None
    assert set(data["figures"]) == set(ALWAYS + CURVES)


def test_another_scenarios_curves_are_refused(run_dir, tmp_path):
    out = str(tmp_path / "r")
    code, stdout, err = call("report", run_dir, "--scenario", "mri-scan", "--out", out)
    assert code == 2 and stdout == ""
    assert err == ("vpump report: --scenario mri-scan: is scenario mri-scan, but this run is of "
                   "scenario adult-sci-continuous (its events.jsonl says so); give --scenario "
                   "adult-sci-continuous, or leave it out\n")
    assert not os.path.exists(out)


def test_a_scenario_outside_the_library_needs_its_file_for_the_curves(tmp_path):
    from sim import scenario
    with open(scenario.find(ADULT), encoding="utf-8") as f:
        text = f.read()
    toml = tmp_path / "mine.toml"
    toml.write_text(text.replace('name = "adult-sci-continuous"', 'name = "my-own"'),
                    encoding="utf-8")
    d = str(tmp_path / "run")
    assert call("run", str(toml), "--days", "1", "--out", d, "--quiet")[0] == 0
    code, _, err = call("report", d)
    assert code == 0
    assert "no flow curves: the run's scenario my-own is not in the library; give its file " \
           "with --scenario FILE" in err
    with open(os.path.join(d, "report.html"), encoding="utf-8") as f:
        assert "is not in the library" in f.read()
    code, _, err = call("report", d, "--scenario", str(toml))
    assert code == 0 and err == ""


def _copy_run(run_dir, tmp_path):
    d = str(tmp_path / "copy")
    os.makedirs(d)
    for name in ("events.jsonl", "timeseries.csv"):
        shutil.copy(os.path.join(run_dir, name), d)
    return d


def test_missing_folder(tmp_path):
    missing = str(tmp_path / "nope")
    code, _, err = call("report", missing)
    assert code == 2
    assert missing in err and "no such folder" in err


def test_empty_folder_names_the_file(tmp_path):
    code, _, err = call("report", str(tmp_path))
    assert code == 2
    assert "events.jsonl: missing" in err


@pytest.mark.parametrize("name, content, expect", [
    ("events.jsonl", "", "events.jsonl: empty"),
    ("events.jsonl", '{"t_ms": 1, "event": "start"}\nnot json\n', "events.jsonl: line 2 is not valid JSON"),
    ("events.jsonl", '[1, 2]\n', "events.jsonl: line 1: must be a JSON object"),
    ("timeseries.csv", "", "timeseries.csv: empty"),
    ("timeseries.csv", "t_ms,time\n1,x\n", "timeseries.csv: header lacks column(s)"),
])
def test_corrupt_files(run_dir, tmp_path, name, content, expect):
    d = _copy_run(run_dir, tmp_path)
    with open(os.path.join(d, name), "w", encoding="utf-8") as f:
        f.write(content)
    code, _, err = call("report", d)
    assert code == 2
    assert expect in err
    assert "Traceback" not in err


def test_header_only_and_bad_number(run_dir, tmp_path):
    d = _copy_run(run_dir, tmp_path)
    path = os.path.join(d, "timeseries.csv")
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    with open(path, "w", encoding="utf-8") as f:
        f.write(lines[0] + "\n")
    code, _, err = call("report", d)
    assert code == 2 and "timeseries.csv: no data rows" in err
    with open(path, "w", encoding="utf-8") as f:
        f.write(lines[0] + "\n" + lines[1].replace(lines[1].split(",")[0], "abc", 1) + "\n")
    code, _, err = call("report", d)
    assert code == 2 and "t_ms = 'abc' is not a number" in err


def test_unknown_scenario(run_dir):
    code, _, err = call("report", run_dir, "--scenario", "no-such-scenario")
    assert code == 2
    assert "--scenario no-such-scenario" in err


def test_matplotlib_missing(run_dir, monkeypatch):
    for mod in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, _, err = call("report", run_dir)
    assert code == 1
    assert "pip install vpump[report]" in err


def test_no_flow_programmed_reports_why(tmp_path):
    # Basal 0 and no presses in the first hours: the trumpet curve has no yardstick.
    from sim import scenario
    with open(scenario.find(ADULT), encoding="utf-8") as f:
        text = f.read()
    assert "basal_ug_per_day = 400" in text
    toml = tmp_path / "zero.toml"
    toml.write_text(text.replace("basal_ug_per_day = 400", "basal_ug_per_day = 0")
                    .replace("requests_per_day = 2", "requests_per_day = 0"), encoding="utf-8")
    d = str(tmp_path / "run")
    assert call("run", str(toml), "--days", "1", "--out", d, "--quiet")[0] == 0
    code, _, err = call("report", d, "--scenario", str(toml))
    assert code == 0
    assert "no flow curves" in err and "nothing programmed" in err
    with open(os.path.join(d, "report.json"), encoding="utf-8") as f:
        data = json.load(f)
    assert data["flow_curves"] is None and "nothing programmed" in data["flow_curves_error"]
    assert not os.path.exists(os.path.join(d, "trumpet.png"))


def test_battery_and_clock_show_eri_eos_the_true_cell_and_drift(tmp_path):
    # A 30 mAh cell (ERI and EOS within weeks) of the li-cfx-svo kind, 4 % short, and a crystal
    # 20 ppm slow: the report says when ERI and EOS came and how far the clock drifted.
    toml = tmp_path / "cell.toml"
    toml.write_text(
        '[scenario]\nname = "cell"\ndays = 60\nseed = 7\n'
        '[pump]\nbattery_capacity_nah = 30000000\neri_remaining_nah = 1200000\n'
        'eos_remaining_nah = 100000\n'
        '[drug]\nconcentration_ug_per_ml = 500\n'
        '[therapy]\nmode = "continuous"\nbasal_ug_per_day = 200\n'
        '[models]\nbattery = "li-cfx-svo"\nbattery_capacity_error_pct = -4\n'
        'clock_drift_ppm = -20\n', encoding="utf-8")
    d = str(tmp_path / "run")
    code, _, err = call("run", str(toml), "--out", d, "--quiet")
    assert code == 0, err
    code, _, err = call("report", d, "--scenario", str(toml))
    assert code == 0, err
    with open(os.path.join(d, "report.json"), encoding="utf-8") as f:
        battery = json.load(f)["battery_and_clock"]
    events = [json.loads(line) for line in open(os.path.join(d, "events.jsonl"))]
    raised = dict((e["alarm"], e["t_ms"]) for e in events
                  if e["event"] == "alarm_raised" and e["alarm"] in ("elective_replacement",
                                                                      "end_of_service"))
    assert set(raised) == {"elective_replacement", "end_of_service"}
    start = events[0]["t_ms"]
    assert battery["eri_day"] == round((raised["elective_replacement"] - start) / 864e5, 3)
    assert battery["eri_day"] < battery["eos_day"] < 60
    assert battery["lowest_mv"] < 2600                  # the voltage fell past EOS's threshold
    assert battery["clock_offset_s"] == pytest.approx(-20e-6 * 60 * 86400, abs=0.01)
    with open(os.path.join(d, "report.html"), encoding="utf-8") as f:
        page = f.read()
    assert "ERI (elective replacement), day</th><td>%s</td>" % battery["eri_day"] in page


def test_therapy_time_adds_up_exactly(run_dir):
    events, rows = report.load_run(run_dir)
    hours, bin_days, shares = report.therapy_shares(events, rows)
    assert sum(hours.values()) == pytest.approx(10 * 24)
    assert hours["infusing"] > hours.get("lockout", 0) > 0
    n = len(shares["infusing"])
    assert n * bin_days >= 10 > (n - 1) * bin_days
    for i in range(n):
        assert sum(lane[i] for lane in shares.values()) == pytest.approx(1.0)


def test_summary_table_has_totals_final_state_and_one_number_format(reported):
    with open(os.path.join(reported, "report.html"), encoding="utf-8") as f:
        page = f.read()
    for label in ("programmed", "delivered (true)", "to CSF", "final state",
                  "reservoir at the end", "battery at the end"):
        assert "<th>%s</th>" % label in page, label
    assert re.search(r"<td>[\d,]+ ug \(\d+\.\d\d % of programmed\)</td>", page)
    assert "therapy infusing, reservoir_ok, battery_ok" in page
    # ug always whole and grouped; never a bare float such as 37779.399 or 32376.0
    assert not re.search(r"\d\.\d+ ug", page)
    assert not re.search(r"<td>\d+\.\d+</td>", page)


@pytest.fixture(scope="module")
def noisy_run(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("noisy") / "run")
    out, err = io.StringIO(), io.StringIO()
    assert cli.main(["run", "noisy-telemetry-link", "--out", d, "--quiet", "--json"],
                    stdout=out, stderr=err) == 0, err.getvalue()
    return d, json.loads(out.getvalue())


def test_the_link_story_is_in_the_run_summary_and_the_report(noisy_run):
    d, summary = noisy_run
    link = summary["link"]
    assert sum(link["faults"].values()) > 0 and link["resends"] > 0
    assert link["visits"]["ok"] >= 1 and sum(link["visits"].values()) > link["visits"]["ok"]
    code, out, err = call("report", d)
    assert code == 0, err
    with open(os.path.join(d, "report.json"), encoding="utf-8") as f:
        assert json.load(f)["summary"]["link"] == link
    with open(os.path.join(d, "report.html"), encoding="utf-8") as f:
        page = f.read()
    assert "<th>telemetry link</th><td>%d link faults" % sum(link["faults"].values()) in page
    assert "%d resends" % link["resends"] in page


def test_a_bridge_bolus_is_not_counted_as_dose_on_top_of_the_program(noisy_run):
    # After the refill the bridge gives the basal with the old drug: programmed == delivered.
    d, summary = noisy_run
    events, _ = report.load_run(d)
    assert any(e["event"] == "bolus_start" and e.get("kind") == "bridge" for e in events)
    assert abs(summary["programmed_ug"] - summary["delivered_true_ug"]) <= 2
