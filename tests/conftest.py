import sys
from pathlib import Path

# Make `kit` importable from every kit test.
sys.path.insert(0, str(Path(__file__).resolve().parent))
