"""Native chemistry libraries, loaded in the one safe order.

Importing ``vina`` before Open Babel's compiled module aborts the process
(``terminate called after throwing an instance of 'swig::stop_iteration'``), and Open Babel's
plugins (charge models, formats) are registered only once ``pybel`` is imported. Every module
of tgsci gets Open Babel and Vina from here.
"""

from openbabel import pybel  # noqa: F401  (must come first; registers Open Babel plugins)
from openbabel import openbabel as ob

ob.obErrorLog.SetOutputLevel(0)  # Open Babel warnings go to stderr otherwise


def load_vina():
    """The ``vina`` module, imported after Open Babel."""
    import vina

    return vina


def openbabel_version() -> str:
    return ob.OBReleaseVersion()
