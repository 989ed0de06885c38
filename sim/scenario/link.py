"""[link]: how the simulated clinician (and patient) reach the pump (sim/telemetry_link.py):
direct calls, or programmer sessions over a byte link with its baud rate and the programmer's
patience."""

from sim.scenario.fields import Choice, Int

LINK_MODES = ("direct", "telemetry")

FIELDS = {
    "clinician": Choice(LINK_MODES, default="direct",
                        note=" (telemetry: each clinician action is a programmer session over "
                        "the link)", doc="how the clinician's actions reach the pump"),
    "patient": Choice(LINK_MODES, default="direct",
                      note=" (telemetry: each bolus press goes through the patient's remote)",
                      doc="how the patient's bolus presses reach the pump"),
    "baud": Int(300, 4000000, default=9600, unit="of bit/s", note=" (8N1: 10 bits a byte)",
                doc="the link's speed"),
    "timeout_ms": Int(10, 600000, default=1000, unit="of ms",
                      note=" (the programmer's wait for an answer before it resends)"),
    "retries": Int(0, 10, default=3, note=" (resends of the same frame before a link failure)"),
    "connect_attempts": Int(1, 10, default=3,
                            note=" (times the programmer tries to open a session)"),
}


def validate(c, t):
    T = "link"
    c.keys(T, t, tuple(FIELDS))
    return dict((key, spec.check(c, T, t, key)) for key, spec in FIELDS.items())
