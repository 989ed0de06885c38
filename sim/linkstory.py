"""The telemetry link's story in a run: what the noise did and what the programmer made of it.

LinkStory().add(record) takes the run's sim records one by one (the runner as they happen, the
report from events.jsonl); as_dict() is the tally (None when the run had no link activity) and
text() one line for a summary:

    30 faults (22 dropped, 8 corrupted); programmer: 18 resends, 3 reconnects, 6 frames given up;
    6 visits: 5 done, 1 failed (no_session); pump: 2 NAKs (bad_crc x2), 4 answers from its cache
"""

_FAULT_ACTIONS = ("dropped", "corrupted", "delayed")


class LinkStory:
    def __init__(self):
        self.faults = {}            # action -> count
        self.resends = 0
        self.reconnects = 0
        self.gave_up = 0
        self.visits = {}            # outcome -> count
        self.naks = {}              # reason -> count
        self.cached = 0

    def add(self, record):
        if record.get("src") != "sim":
            return
        name = record.get("event")
        if name == "link_fault":
            action = str(record.get("action"))
            self.faults[action] = self.faults.get(action, 0) + 1
        elif name == "programmer_resend":
            self.resends += 1
        elif name == "programmer_reconnect":
            self.reconnects += 1
        elif name == "programmer_gave_up":
            self.gave_up += 1
        elif name == "programmer_session":
            outcome = str(record.get("outcome"))
            self.visits[outcome] = self.visits.get(outcome, 0) + 1
        elif name == "pump_nak":
            reason = str(record.get("reason"))
            self.naks[reason] = self.naks.get(reason, 0) + 1
        elif name == "pump_cached_answer":
            self.cached += 1

    def as_dict(self):
        if not (self.faults or self.resends or self.reconnects or self.gave_up or self.visits
                or self.naks or self.cached):
            return None
        return {"faults": dict(sorted(self.faults.items())), "resends": self.resends,
                "reconnects": self.reconnects, "frames_given_up": self.gave_up,
                "visits": dict(sorted(self.visits.items())), "naks": dict(sorted(self.naks.items())),
                "cached_answers": self.cached}


def text(story):
    """One line from as_dict()'s tally (or "" for None)."""
    if not story:
        return ""
    faults = story["faults"]
    total = sum(faults.values())
    parts = ["%d link faults%s" % (total, " (%s)" % ", ".join(
        "%d %s" % (faults[a], a) for a in _FAULT_ACTIONS if faults.get(a)) if total else "")]
    parts.append("programmer: %d resends, %d reconnects, %d frames given up"
                 % (story["resends"], story["reconnects"], story["frames_given_up"]))
    visits = story["visits"]
    if visits:
        failed = dict((k, v) for k, v in visits.items() if k != "ok")
        line = "%d visits: %d done" % (sum(visits.values()), visits.get("ok", 0))
        if failed:
            line += ", %d not (%s)" % (sum(failed.values()), ", ".join(
                "%s x%d" % (k, v) for k, v in sorted(failed.items())))
        parts.append(line)
    if story["naks"] or story["cached_answers"]:
        parts.append("pump: %d NAKs%s, %d answers from its cache" % (
            sum(story["naks"].values()),
            " (%s)" % ", ".join("%s x%d" % kv for kv in sorted(story["naks"].items()))
            if story["naks"] else "", story["cached_answers"]))
    return "; ".join(parts)
