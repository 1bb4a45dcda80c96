"""Which four layers a signature reads: the input and three hidden layers (docs/method.md section 3).

The default rule: candidates are the outputs of the weighted layers before the logits, each taken
after the nonlinearity that follows it (in a residual network, the outputs of the residual blocks);
with K candidates, h1, h2, h3 are candidates ceil(K/3), ceil(2K/3) and K. Only candidates that
every path from input to output passes through (cuts of the graph) are kept, so that the logits are
a function of that layer's activations alone.
"""

import math

from demogen.measure.graph import (ACTIVATIONS, INPUT, MERGES, WEIGHTED, activation_name,
                                   class_name, is_pooling)

SLOTS = ("input", "h1", "h2", "h3")


def _after_nonlinearity(graph, k):
    """The position whose output is layer k's output after the nonlinearity that follows it: k
    itself if it applies one, else the next activation layer before the next weighted, merge or
    pooling layer (batch norm and the like in between belong to k), else k."""
    if activation_name(graph.layers[k]) != "linear":
        return k
    consumers = graph.consumers(k)
    while len(consumers) == 1:
        j = consumers[0]
        layer = graph.layers[j]
        if class_name(layer) in WEIGHTED or class_name(layer) in MERGES or is_pooling(layer):
            break
        if class_name(layer) in ACTIVATIONS and activation_name(layer) != "linear":
            return j
        consumers = graph.consumers(j)
    return k


def candidates(graph):
    """Positions of the candidate layers in forward order (docs/method.md section 3, rule 1): the
    weighted layers but the last (the logits), or in a residual network the residual blocks (the
    merge layers), each after its nonlinearity; only those that are cuts of the graph."""
    upto_logits = range(graph.logits_layer + 1)
    if any(class_name(graph.layers[k]) in MERGES for k in upto_logits):
        units = [k for k in upto_logits if class_name(graph.layers[k]) in MERGES]
    else:
        units = [k for k in upto_logits if class_name(graph.layers[k]) in WEIGHTED][:-1]
    found = [_after_nonlinearity(graph, k) for k in units]
    return [k for k in found if graph.is_cut(k)]


def default_layers(graph):
    """The positions for input, h1, h2, h3 by the default rule, and notes on how they were chosen."""
    found = candidates(graph)
    count = len(found)
    if count == 0:
        return [INPUT] * 4, ["no candidate hidden layer (a linear model?): the input fills h1, h2, h3"]
    hidden = [found[math.ceil(count * i / 3) - 1] for i in (1, 2, 3)]
    notes = []
    if count < 3:
        notes.append(f"only {count} candidate hidden layer(s): the deepest fills the missing slots")
    return [INPUT] + hidden, notes


def resolve_layer(graph, spec):
    """The position of the layer a user names: an index, "index:ClassName", a Keras layer name, or
    "input"."""
    if spec == "input":
        return INPUT
    if isinstance(spec, int):
        position = spec
    elif isinstance(spec, str) and ":" in spec and spec.split(":", 1)[0].lstrip("-").isdigit():
        index, name = spec.split(":", 1)
        position = int(index)
        if 0 <= position < len(graph.layers) and class_name(graph.layers[position]) != name:
            raise ValueError(f"layer {position} is a {class_name(graph.layers[position])}, not a {name}")
    else:
        matches = [k for k, layer in enumerate(graph.layers) if layer.name == spec]
        if not matches:
            raise ValueError(f"the model has no layer named {spec!r}; name layers by position "
                             f"('index:ClassName', 0 to {len(graph.layers) - 1}) or by Keras name")
        position = matches[0]
    if not 0 <= position < len(graph.layers):
        raise ValueError(f"layer index {position} is out of range: the model has "
                         f"{len(graph.layers)} layers")
    if position not in graph.inbound:
        return INPUT
    if position >= graph.logits_layer:
        raise ValueError(f"layer {graph.label(position)} is the logits layer or comes after the "
                         f"logits ({graph.label(graph.logits_layer)}); name hidden layers before "
                         "it")
    if not graph.is_cut(position):
        raise ValueError(f"layer {graph.label(position)} lies inside a branch of the graph (a path "
                         "from input to output bypasses it), so the logits are not a function of its "
                         "activations alone; choose a layer that every path passes through, such as "
                         "the output of a residual block")
    return position


def choose_layers(graph, layers=None):
    """Positions for the four slots and notes. `layers` optionally names h1, h2, h3 (three specs)
    or all four slots (four specs)."""
    if layers is None:
        return default_layers(graph)
    layers = list(layers)
    if len(layers) not in (3, 4):
        raise ValueError(f"name 3 layers (h1, h2, h3) or 4 (input, h1, h2, h3); got {len(layers)}")
    positions = [resolve_layer(graph, spec) for spec in layers]
    if len(positions) == 3:
        positions = [INPUT] + positions
    if positions != sorted(positions):
        named = ", ".join(graph.label(k) for k in positions[4 - len(layers):])
        raise ValueError(f"layers {named} are not in forward order; name them from the input "
                         "towards the logits (h1 nearest the input)")
    return positions, ["layers named by the user"]
