"""demogen: predict the generalization gap of a trained network from its margin distributions.

    from demogen import margin_signature
    signature = margin_signature(model, dataset)   # 20 numbers, the layers used, the settings

The extractor's names are imported (with TensorFlow) on first use, so that `import demogen.cli`
stays fast.
"""

__all__ = ["DEFAULTS", "EXTRACTOR_VERSION", "Margins", "Signature", "extract_margins",
           "margin_signature"]


def __getattr__(name):
    if name in __all__:
        from demogen.measure import margins
        return getattr(margins, name)
    raise AttributeError(f"module 'demogen' has no attribute {name!r}")
