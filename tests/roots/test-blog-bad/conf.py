import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

project = "bad"
extensions = ["ablog", "reprokit.blogheader"]
exclude_patterns = ["_build"]
