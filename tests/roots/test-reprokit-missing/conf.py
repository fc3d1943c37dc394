# FIXTURE: Sphinx test project for reprokit.sphinxext (see tests/roots/README.md).
project = "reprokit missing-evidence fixture"
extensions = ["reprokit.sphinxext"]
exclude_patterns = ["_build"]
