"""A layer-by-layer view of a single-input Keras classifier.

`ModelGraph` runs the model's own layers one at a time, so that the activations of any layer are
ordinary tensors that a GradientTape can differentiate against. It works the same way for Sequential
and functional models built by Keras 3 or by tf_keras (the legacy Keras 2), because it only uses
what both share: `model.layers`, `layer.input` and the `_keras_history` of symbolic tensors.

Layers are referred to by their position in `model.layers`; the model's input is `INPUT`. The
layer kinds (WEIGHTED, ACTIVATIONS, ...) need no TensorFlow; a ModelGraph imports it.
"""

import dataclasses
import warnings

INPUT = -1


@dataclasses.dataclass(frozen=True)
class Ref:
    """Output `index` of the layer at position `layer` (INPUT for the model's input)."""
    layer: int
    index: int = 0

WEIGHTED = frozenset({
    "Dense", "EinsumDense",
    "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
    "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D",
})
ACTIVATIONS = frozenset({"Activation", "ReLU", "LeakyReLU", "ELU", "PReLU", "Softmax",
                         "ThresholdedReLU"})
MERGES = frozenset({"Add"})


def class_name(layer):
    """The layer's class name, e.g. "Conv2D"."""
    return type(layer).__name__


def activation_name(layer):
    """The name of the activation a layer applies ("linear" when it applies none): "relu" for a
    ReLU layer, "softmax" for Dense(activation="softmax") or a Softmax layer."""
    if class_name(layer) in ACTIVATIONS and class_name(layer) != "Activation":
        return class_name(layer).lower()
    activation = layer.get_config().get("activation")
    if activation is None:
        return "linear"
    if isinstance(activation, dict):  # a serialized (custom) activation
        return str(activation.get("config", {}).get("name", activation.get("class_name")))
    return str(activation)


def is_pooling(layer):
    return "Pooling" in class_name(layer)


def _is_sequential(model):
    return any(cls.__name__ == "Sequential" for cls in type(model).__mro__)


class ModelGraph:
    """The layers of `model` in forward order, each with the positions of the layers it reads."""

    def __init__(self, model):
        import tensorflow as tf

        self.layers = list(model.layers)
        inputs = list(getattr(model, "inputs", None) or [])
        outputs = list(getattr(model, "outputs", None) or [])
        if not inputs or not outputs:
            raise ValueError("the model is not built: build it first (model.build(input_shape), or "
                             "call it once on a batch) so that its input and output shapes are known")
        if len(inputs) != 1 or len(outputs) != 1:
            raise ValueError(f"the model has {len(inputs)} inputs and {len(outputs)} outputs; demogen "
                             "needs a classifier with one input and one output of class scores")
        self.input_shape = tuple(inputs[0].shape)[1:]
        self.input_dtype = tf.as_dtype(inputs[0].dtype)
        output_shape = tuple(outputs[0].shape)
        if len(output_shape) != 2 or output_shape[1] is None or output_shape[1] < 2:
            raise ValueError(f"the model's output has shape {output_shape}; demogen needs a vector of "
                             "n >= 2 class scores per example, shape (batch, n)")
        self.n_classes = int(output_shape[1])

        if _is_sequential(model):
            self.inbound = {k: Ref(k - 1 if k else INPUT) for k in range(len(self.layers))}
            output_layer = len(self.layers) - 1
        else:
            position = {id(layer): k for k, layer in enumerate(self.layers)}
            for k, layer in enumerate(self.layers):
                if class_name(layer) == "InputLayer":
                    position[id(layer)] = INPUT
            self.inbound = {}
            for k, layer in enumerate(self.layers):
                if position[id(layer)] == INPUT:
                    continue
                try:
                    layer_input = layer.input
                except (AttributeError, RuntimeError, ValueError) as error:
                    raise ValueError(f"layer {k}:{class_name(layer)} is used more than once or is not "
                                     f"connected ({error}); demogen supports models whose layers are "
                                     "each called once") from None
                self.inbound[k] = tf.nest.map_structure(
                    lambda t: Ref(position[id(t._keras_history[0])], t._keras_history[2]), layer_input)
            output_layer = position[id(outputs[0]._keras_history[0])]
        self.output_layer = output_layer
        self.logits_layer, self.logits_head = self._find_logits(output_layer)

    def _find_logits(self, k):
        """The position of the layer that computes the logits, and, when that layer applies
        softmax itself, a linear twin of it to compute them with."""
        import tensorflow as tf

        layer = self.layers[k]
        if activation_name(layer) != "softmax":
            return k, None
        warnings.warn(f"the model's last layer {k}:{class_name(layer)} applies softmax; demogen reads "
                      "the logits below it", stacklevel=4)
        if class_name(layer) in ACTIVATIONS:
            return self.inbound[k].layer, None
        config = dict(layer.get_config(), activation="linear")
        head = type(layer).from_config(config)
        head(tf.zeros((1,) + self.input_shape_of(k)))
        head.set_weights(layer.get_weights())
        return k, head

    def input_shape_of(self, k):
        """Shape (without batch) of the tensor layer k reads."""
        import tensorflow as tf

        parent = self.inbound[k].layer
        if parent == INPUT:
            return self.input_shape
        return tuple(tf.nest.flatten(self.layers[parent].output)[0].shape)[1:]

    def label(self, k):
        """How reports name a layer: "index:ClassName", or "input"."""
        return "input" if k == INPUT else f"{k}:{class_name(self.layers[k])}"

    def consumers(self, k):
        """Positions of the layers that read the output of layer k."""
        import tensorflow as tf

        return [j for j, parents in self.inbound.items()
                if any(ref.layer == k for ref in tf.nest.flatten(parents))]

    def is_cut(self, k):
        """Whether every path from the input to the output passes through the output of layer k."""
        import tensorflow as tf

        if k == INPUT:
            return True
        return not any(ref.layer < k < j
                       for j, parents in self.inbound.items() for ref in tf.nest.flatten(parents))

    def _run(self, start, activation, stop):
        """The outputs of the layers after `start` up to `stop`, in inference mode, from
        `activation` taken as the output of layer `start` (INPUT for the input)."""
        import tensorflow as tf

        values = {start: [activation]}
        for k in sorted(self.inbound):
            if start < k <= stop:
                args = tf.nest.map_structure(lambda ref: values[ref.layer][ref.index],
                                             self.inbound[k])
                values[k] = tf.nest.flatten(self.layers[k](args, training=False))
        return values

    def _logits(self, values):
        if self.logits_head is None:
            return values[self.logits_layer][0]
        return self.logits_head(values[self.inbound[self.logits_layer].layer][0])

    def forward(self, x, taps):
        """Run the model on x in inference mode; return the outputs of the `taps` layers, the
        logits and the model's own output."""
        values = self._run(INPUT, x, len(self.layers))
        return [values[k][0] for k in taps], self._logits(values), values[self.output_layer][0]

    def run_from(self, k, activation):
        """The logits computed from `activation` taken as the output of layer k (INPUT for the
        input) through the rest of the network, in inference mode. Layer k must come before the
        logits and be a cut of the graph (as the layer rule's slots are), so that the logits are
        a function of its output alone."""
        if k >= self.logits_layer or not self.is_cut(k):
            raise ValueError(f"layer {self.label(k)} is not a cut of the graph before the logits "
                             f"({self.label(self.logits_layer)}): the rest of the network cannot run "
                             "from its output alone; use a slot of the layer rule")
        return self._logits(self._run(k, activation, self.logits_layer))
