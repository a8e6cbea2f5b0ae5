"""Print one of the two commands at the top of README.md: the contract CI proves.

    python .ci/readme_commands.py main    # sets up and runs the main job
    python .ci/readme_commands.py test    # sets up and runs the tests

They are the first two command lines of the README's first ```bash block.
"""

import re
import sys
from pathlib import Path

text = Path(__file__).resolve().parent.parent.joinpath("README.md").read_text(encoding="utf-8")
block = re.search(r"```bash\n(.*?)```", text, re.S)
if block is None:
    sys.exit("README.md has no ```bash block at the top")
commands = [line.strip() for line in block.group(1).splitlines()
            if line.strip() and not line.strip().startswith("#")]
if len(commands) < 2:
    sys.exit("README.md's first ```bash block must hold two commands")
print(commands[{"main": 0, "test": 1}[sys.argv[1]]])
