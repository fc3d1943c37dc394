# Sphinx extension: `extensions = ["reprokit.sphinxext"]` in conf.py gives the
# directives repro-trace, repro-variants and repro-timeline (one module each)
# and a small stylesheet. Directives only record what to embed; the evidence
# is read by one transform per document (common.py), which also registers the
# files as dependencies. Nothing is executed during a build, and both reading
# and writing are safe in parallel (no state outside the doctree).
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sphinx.util import logging
from sphinx.util.fileutil import copy_asset_file

from reprokit import __version__
from reprokit.sphinxext.common import setup_common
from reprokit.sphinxext.timeline import setup_timeline
from reprokit.sphinxext.trace import setup_trace
from reprokit.sphinxext.variants import setup_variants

if TYPE_CHECKING:
    from sphinx.application import Sphinx
    from sphinx.util.typing import ExtensionMetadata

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
CSS_FILE = "reprokit.css"


def _copy_static(app: Sphinx, exception: BaseException | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    if not (STATIC_DIR / CSS_FILE).is_file():  # a wheel built without its package data
        logger.warning(
            "reprokit: %s is missing from the installed package; pages will lack its styles",
            STATIC_DIR / CSS_FILE,
            type="reprokit",
            subtype="install",
        )
        return
    destination = Path(app.outdir, "_static", CSS_FILE)
    destination.parent.mkdir(parents=True, exist_ok=True)
    copy_asset_file(STATIC_DIR / CSS_FILE, destination, force=True)


def setup(app: Sphinx) -> ExtensionMetadata:
    setup_common(app)
    setup_trace(app)
    setup_variants(app)
    setup_timeline(app)
    app.add_css_file(CSS_FILE)
    app.connect("build-finished", _copy_static)
    return {
        "version": __version__,
        "env_version": 1,
        "parallel_read_safe": True,
        "parallel_write_safe": True,
    }
