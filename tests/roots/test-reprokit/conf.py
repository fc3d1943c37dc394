# FIXTURE: Sphinx test project for reprokit.sphinxext (see tests/roots/README.md).
project = "reprokit fixture"
extensions = ["reprokit.sphinxext"]
exclude_patterns = ["_build"]
numfig = True
