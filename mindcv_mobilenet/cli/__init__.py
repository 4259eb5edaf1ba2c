"""The command-line layer: the option table (:mod:`.options`), the parser (:mod:`.parser`: defaults < ``-c`` YAML <
command line) and the other suites' key names (:mod:`.foreign`). It only parses: the one file it reads is the ``-c``
file, and it returns plain values (a :class:`~.parser.Config`, an :class:`argparse.Namespace`) that the layers below
take without importing this one. It is the top layer of the package but for the commands that use it."""

from .options import KINDS, OPTIONS, OPTIONS_BY_NAME, Option
from .parser import Config, load_yaml, parse_args

__all__ = ["KINDS", "OPTIONS", "OPTIONS_BY_NAME", "Config", "Option", "load_yaml", "parse_args"]
