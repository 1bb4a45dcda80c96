"""demogen: predict the generalization gap of a trained network from its margin distributions.

    from demogen import margin_signature
    signature = margin_signature(model, dataset)   # 20 numbers, the layers used, the settings

The extractor's names are imported on first use (extract_margins and margin_signature with
TensorFlow), so that `import demogen.cli` stays fast.
"""

import importlib

_HOMES = {"DEFAULTS": "demogen.defaults", "EXTRACTOR_VERSION": "demogen.defaults",
          "Margins": "demogen.measure.signature", "Signature": "demogen.measure.signature",
          "extract_margins": "demogen.measure.margins",
          "margin_signature": "demogen.measure.margins"}
__all__ = list(_HOMES)


def __getattr__(name):
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'demogen' has no attribute {name!r}")
