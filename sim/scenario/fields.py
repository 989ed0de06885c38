"""Field specs: what each key of a scenario file may hold, declared once.

A spec checks a value (through sim/scenario/checker.py, which words the error) and describes it
in the scenario's JSON Schema (sim/scenario/schema.py) with the same words, so the validator and
the schema an editor completes against cannot drift apart.

    spec.check(c, table, data, key) -> the value in firmware units (None or the default when
                                       absent and not required)
    spec.schema() -> a JSON Schema (draft 2020-12) dict, its description the allowed values
"""

from sim.scenario.checker import (REQUIRED, TIME_ALLOWED, int_allowed, pct_allowed,
                                  scaled_allowed, toml_value)

# JSON Schema's view of a time of day: a string "HH:MM", or a TOML local time with zero seconds
# (which TOML-to-JSON tools write as "HH:MM:SS").
TIME_SCHEMA_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9](:00(\.0+)?)?$"
# A default that is the reservoir's capacity (it depends on [pump]): check() is given it.
CAPACITY = object()
_UNSET = object()


class Field:
    """One key of a table.  default: REQUIRED (the file must give it) or the value used when the
    key is absent; doc: what the key is, for the schema's description."""

    def __init__(self, default=REQUIRED, doc=""):
        self.default = default
        self.doc = doc

    @property
    def required(self):
        return self.default is REQUIRED

    def check(self, c, table, data, key):
        raise NotImplementedError

    def allowed(self):
        return ""

    def json_type(self):
        return {}

    def schema(self):
        out = self.json_type()
        words = [w for w in (self.doc, self.allowed().replace("must be ", "", 1)) if w]
        if words:
            out["description"] = ": ".join(words)
        if self.default is not REQUIRED and isinstance(self.default, (bool, int, str)):
            out["default"] = self.default
        return out


class Int(Field):
    """A whole number from lo to hi (hi None: no upper bound; up_to: words for a bound that
    depends on other fields, given to check() as hi).  scale converts the file's unit to the
    firmware's (minutes -> ms: 60000)."""

    def __init__(self, lo, hi=None, unit="", note="", default=REQUIRED, doc="", scale=1,
                 up_to=None, schema_hi=None):
        Field.__init__(self, default, doc)
        self.lo, self.hi, self.unit, self.note = lo, hi, unit, note
        self.scale = scale
        self.up_to = up_to
        self.schema_hi = schema_hi if schema_hi is not None else hi

    def check(self, c, table, data, key, hi=_UNSET, default=_UNSET, lo=_UNSET):
        value = c.int(table, data, key, self.lo if lo is _UNSET else lo,
                      self.hi if hi is _UNSET else hi,
                      default=self.default if default is _UNSET else default, unit=self.unit,
                      note=self.note)
        return value * self.scale if value is not None and self.scale != 1 else value

    def allowed(self):
        if self.up_to is None:
            return int_allowed(self.lo, self.hi, self.unit) + self.note
        unit = " " + self.unit if self.unit else ""
        return "must be a whole number%s from %d to %s" % (unit, self.lo, self.up_to)

    def json_type(self):
        out = {"type": "integer", "minimum": self.lo}
        if self.schema_hi is not None:
            out["maximum"] = self.schema_hi
        return out


class Choice(Field):
    def __init__(self, values, default=REQUIRED, note="", doc=""):
        Field.__init__(self, default, doc)
        self.values = tuple(values)
        self.note = note

    def check(self, c, table, data, key):
        return c.choice(table, data, key, self.values, default=self.default, note=self.note)

    def allowed(self):
        return "must be one of %s%s" % (", ".join(toml_value(v) for v in self.values), self.note)

    def json_type(self):
        return {"enum": list(self.values)}


class Bool(Field):
    def __init__(self, default=False, doc=""):
        Field.__init__(self, default, doc)

    def check(self, c, table, data, key):
        return c.bool(table, data, key, default=self.default)

    def allowed(self):
        return "must be true or false"

    def json_type(self):
        return {"type": "boolean"}


class Str(Field):
    def __init__(self, default=REQUIRED, nonempty=False, doc=""):
        Field.__init__(self, default, doc)
        self.nonempty = nonempty

    def check(self, c, table, data, key):
        return c.str(table, data, key, default=self.default, nonempty=self.nonempty)

    def allowed(self):
        return "must be a non-empty string" if self.nonempty else "must be a string"

    def json_type(self):
        return {"type": "string", "pattern": r"\S"} if self.nonempty else {"type": "string"}


class Time(Field):
    """A time of day "HH:MM" -> minutes after midnight."""

    def check(self, c, table, data, key):
        return c.opt_time(table, data, key, self.default)

    def allowed(self):
        return TIME_ALLOWED

    def json_type(self):
        return {"type": "string", "pattern": TIME_SCHEMA_PATTERN}


class Percent(Field):
    """A percentage (whole or decimal) from lo to hi -> parts per million (0 when absent)."""

    def __init__(self, lo, hi, note="", doc=""):
        Field.__init__(self, None, doc)
        self.lo, self.hi, self.note = lo, hi, note

    def check(self, c, table, data, key):
        return c.pct_ppm(table, data, key, self.lo, self.hi, self.note)

    def allowed(self):
        return pct_allowed(self.lo, self.hi, self.note)

    def json_type(self):
        return {"type": "number", "minimum": self.lo, "maximum": self.hi}


class Scaled(Field):
    """A number (whole or decimal) from lo to hi -> round(value * scale) (None when absent)."""

    def __init__(self, lo, hi, scale, unit, note="", doc=""):
        Field.__init__(self, None, doc)
        self.lo, self.hi, self.scale, self.unit, self.note = lo, hi, scale, unit, note

    def check(self, c, table, data, key):
        return c.scaled(table, data, key, self.lo, self.hi, self.scale, self.unit, self.note)

    def allowed(self):
        return scaled_allowed(self.lo, self.hi, self.unit, self.note)

    def json_type(self):
        return {"type": "number", "minimum": self.lo, "maximum": self.hi}


class Number(Field):
    """A number (whole or decimal) above lo (lo_exclusive) or from lo, to hi, with the allowed
    words given whole -> round(value * scale)."""

    def __init__(self, lo, hi, words, scale=1, lo_exclusive=False, default=None, doc=""):
        Field.__init__(self, default, doc)
        self.lo, self.hi, self.words, self.scale = lo, hi, words, scale
        self.lo_exclusive = lo_exclusive

    def check(self, c, table, data, key):
        if key not in data:
            return self.default
        value = c.number(table, data, key, self.lo, self.hi, self.words, self.lo_exclusive)
        scaled = int(round(value * self.scale))
        if self.lo_exclusive and scaled < 1:
            c.fail(table, key, value, self.words)
        return scaled

    def allowed(self):
        return self.words

    def json_type(self):
        out = {"type": "number", "maximum": self.hi}
        out["exclusiveMinimum" if self.lo_exclusive else "minimum"] = self.lo
        return out


class Custom(Field):
    """A key whose check is a function of its own (check(c, table, data, key)) and whose schema
    is given whole."""

    def __init__(self, check, schema, default=REQUIRED, doc=""):
        Field.__init__(self, default, doc)
        self._check = check
        self._schema = schema

    def check(self, c, table, data, key):
        return self._check(c, table, data, key)

    def json_type(self):
        return dict(self._schema)

    def schema(self):
        out = self.json_type()
        if self.doc and "description" not in out:
            out["description"] = self.doc
        return out


def table_schema(fields, doc="", required=None):
    """A TOML table of these fields: an object that takes no other key."""
    out = {"type": "object"}
    if doc:
        out["description"] = doc
    out["properties"] = dict((key, spec.schema()) for key, spec in fields.items())
    need = [key for key, spec in fields.items() if spec.required] if required is None \
        else list(required)
    if need:
        out["required"] = need
    out["additionalProperties"] = False
    return out
