"""demogen: predict the generalization gap of a trained network from its margin distributions.

    from demogen import margin_signature
    signature = margin_signature(model, dataset)   # 20 numbers, the layers used, the settings
"""

from demogen.margins import (DEFAULTS, EXTRACTOR_VERSION, Margins, Signature, extract_margins,
                             margin_signature)

__all__ = ["DEFAULTS", "EXTRACTOR_VERSION", "Margins", "Signature", "extract_margins",
           "margin_signature"]
