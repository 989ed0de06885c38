"""FAKE mpremote for tests: no board here.  Records its arguments and working folder as JSON
lines in $FAKE_MPREMOTE_LOG, checks that every local file a `fs cp` names exists, and exits
with $FAKE_MPREMOTE_STATUS (default 0), printing $FAKE_MPREMOTE_SAYS to stderr."""

import json
import os
import sys


def main():
    args = sys.argv[1:]
    with open(os.environ["FAKE_MPREMOTE_LOG"], "a") as f:
        f.write(json.dumps({"args": args, "cwd": os.getcwd()}) + "\n")
    chain = []
    current = []
    for a in args:
        if a == "+":
            chain.append(current)
            current = []
        else:
            current.append(a)
    chain.append(current)
    for cmd in chain:
        if cmd[:2] == ["fs", "cp"]:
            for src in cmd[2:-1]:
                if src != "-r" and not os.path.exists(src):
                    sys.stderr.write("mpremote: cp: %s: No such file or directory\n" % src)
                    return 1
    status = int(os.environ.get("FAKE_MPREMOTE_STATUS", "0"))
    if os.environ.get("FAKE_MPREMOTE_SAYS"):
        sys.stderr.write(os.environ["FAKE_MPREMOTE_SAYS"] + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
