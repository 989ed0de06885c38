"""One role's key from a key file, on the host (the programmer's side of protocol/keys.py).

    load_key_file(path, role) -> 32 bytes

Raises KeyFileError (protocol/client_errors.py) naming the file and the problem, so `vpump prog`,
`vpump conform` and a script of your own say what to fix.  Host only, like protocol/client.py
(which offers it too): a board reads its own keys.json with protocol/keys.py.
"""

from protocol.client_errors import KeyFileError
from protocol.keys import ROLES, parse_keys


def load_key_file(path, role="clinician"):
    """The role's key (32 bytes) from a key file as `vpump serve` writes it.

    Raises KeyFileError naming the file and the problem (missing, unreadable, not a key file,
    no key for the role)."""
    if role not in ROLES:
        raise KeyFileError("%s: role %r unknown; allowed: %s" % (path, role, ", ".join(ROLES)))
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise KeyFileError("%s: no such key file (`vpump serve` names the file it writes on its "
                           "second line, `keys: FILE`)" % path) from None
    except IsADirectoryError:
        raise KeyFileError("%s: is a directory, not a key file" % path) from None
    except UnicodeDecodeError:
        raise KeyFileError("%s: not a key file: not UTF-8 text (a key file is JSON: "
                           "{\"serial\": ..., \"clinician\": \"<64 hex>\", "
                           "\"patient\": \"<64 hex>\"})" % path) from None
    except OSError as exc:
        raise KeyFileError("%s: cannot read the key file: %s" % (path, exc.strerror or exc)) from None
    try:
        keys = parse_keys(text)
    except ValueError as exc:
        raise KeyFileError("%s: not a usable key file: %s" % (path, exc)) from None
    key = keys.get(role)
    if not key:
        raise KeyFileError("%s: has no %s key" % (path, role))
    return key
