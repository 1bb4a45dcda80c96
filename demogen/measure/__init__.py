"""The measure: margin distributions and weight metrics of a trained network, and the features
computed from them."""
