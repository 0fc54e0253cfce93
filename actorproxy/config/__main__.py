"""`python -m actorproxy.config schema|reference|check FILE`: the schema, the key reference, a file checked.

`check` loads FILE as the server would (environment overrides included) and prints the effective
configuration as YAML, or the problems and exit status 1.
"""

from __future__ import annotations

import json
import sys

from ._error import ConfigError
from ._load import load_conf
from ._reference import reference_markdown
from ._schema import json_schema

USAGE = "usage: python -m actorproxy.config schema | reference | check FILE"


def main(argv: list[str]) -> int:
    match argv:
        case ["schema"]:
            print(json.dumps(json_schema(), indent=2))
        case ["reference"]:
            print(reference_markdown(), end="")
        case ["check", path]:
            try:
                print(load_conf(path).to_yaml(), end="")
            except ConfigError as exc:
                print(exc, file=sys.stderr)
                return 1
        case _:
            print(USAGE, file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
