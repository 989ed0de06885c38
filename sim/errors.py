"""The simulator's exceptions (host only).

    Exception
     +-- SimError                 anything the sim package raises on purpose
          +-- ScenarioError       a scenario file is missing, not TOML, or not a valid scenario
          +-- CampaignError       a bad campaign spec, or a campaign that cannot go on

Catch SimError to report any of them without a traceback (the CLI exits with status 2 for a
ScenarioError: it is the user's input).  New kinds (a run that cannot proceed, a bad link
address, a report without data) subclass SimError here, so callers need not change.
"""


class SimError(Exception):
    """Base class of every error the sim package raises on purpose."""


class ScenarioError(SimError):
    """A bad scenario file.

    The message names the file, the [table] and the key, the value given and what is allowed:
    ``adult.toml: [therapy] basal_ug_per_day = -5: must be a whole number from 0 to 1000000``.
    The parts are kept as attributes for callers that want them (any may be None).
    """

    def __init__(self, message, source=None, table=None, key=None, value=None, allowed=None,
                 line=None):
        super().__init__(message)
        self.source = source
        self.table = table
        self.key = key
        self.value = value
        self.allowed = allowed
        self.line = line


class CampaignError(SimError):
    """A bad campaign spec (sim/campaign/spec.py), or a campaign that cannot go on (an output
    folder that cannot be written, a Dask scheduler that cannot be reached).

    A spec's message has the same shape as a scenario's: file, [table], key, value given and
    what is allowed: ``fleet.toml: [vary] motor_noise_pct = 80: must be a number ... 0 to 50``.
    """
