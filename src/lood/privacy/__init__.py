"""Privacy stage, one subpackage per room: :mod:`~lood.privacy.mia` (the retrained-model MIA and
the LiRA / RMIA attacks), :mod:`~lood.privacy.audit` (one-run audit, canaries, DP tables),
:mod:`~lood.privacy.panoramia` (generated non-members) and :mod:`~lood.privacy.reconstruction`
(MI-FACE and what reconstructions recover); beside them the membership ``signals`` and attack
``metrics`` they share and the parsed settings (``spec``)."""

from lood.lazy import exports

#: public name -> module of this package that defines it (imported on first use)
PUBLIC = {
    "AttacksSpec": "spec",
    "AuditSpec": "spec",
    "GeneratorSpec": "spec",
    "InversionSpec": "spec",
    "MiaSpec": "spec",
    "PanoramiaSpec": "spec",
}
__all__ = sorted(PUBLIC)
__getattr__ = exports(__name__, PUBLIC)
