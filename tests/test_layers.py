"""The default layer rule (docs/method.md section 3) and user-named layers."""

import math

import numpy as np
import pytest
from conftest import cnn, data_for, keras, layers, randomize, resnet

from demogen import margin_signature
from demogen.measure.graph import INPUT, ModelGraph
from demogen.measure.layers import candidates, choose_layers


def dense_stack(hidden):
    return keras.Sequential([keras.Input((4,))] + [layers.Dense(3, activation="relu")
                                                   for _ in range(hidden)] + [layers.Dense(2)])


@pytest.mark.parametrize("hidden", range(0, 8))
def test_evenly_spaced_candidates_for_any_depth(hidden):
    positions, notes = choose_layers(ModelGraph(dense_stack(hidden)))
    if hidden == 0:
        assert positions == [INPUT] * 4
    else:
        # Candidate c (1-based) is layer c - 1.
        assert positions == [INPUT] + [math.ceil(hidden * i / 3) - 1 for i in (1, 2, 3)]
    assert bool(notes) == (hidden < 3)


def test_deepest_candidate_fills_missing_slots():
    positions, notes = choose_layers(ModelGraph(dense_stack(2)))
    assert positions == [INPUT, 0, 1, 1]
    assert "2 candidate" in notes[0]


def test_candidates_are_taken_after_the_nonlinearity():
    # Conv (linear) -> BN -> ReLU is one candidate, read at the ReLU; a Conv with its own
    # activation is read at itself; the logits layer is not a candidate.
    assert candidates(ModelGraph(cnn())) == [2, 3, 7]
    linear = keras.Sequential([keras.Input((4,)), layers.Dense(3), layers.Dropout(0.1),
                               layers.Dense(3), layers.BatchNormalization(),
                               layers.Activation("tanh"), layers.Dense(2)])
    assert candidates(ModelGraph(linear)) == [0, 4]


def test_all_convolutional_net_excludes_its_last_conv():
    model = keras.Sequential([keras.Input((8, 8, 1)), layers.Conv2D(4, 3, activation="relu"),
                              layers.Conv2D(4, 3, activation="relu"), layers.Conv2D(3, 1),
                              layers.GlobalAveragePooling2D()])
    assert candidates(ModelGraph(model)) == [0, 1]


def test_residual_network_candidates_are_block_outputs():
    model = resnet(blocks=3)
    graph = ModelGraph(model)
    found = candidates(graph)
    assert [graph.label(k) for k in found] == ["7:ReLU", "13:ReLU", "19:ReLU"]
    assert all(type(model.layers[k - 1]).__name__ == "Add" for k in found)


def test_functional_model_matches_its_sequential_twin():
    sequential = cnn()
    inputs = keras.Input((12, 12, 1))
    x = inputs
    for layer in [type(l).from_config(l.get_config()) for l in sequential.layers]:
        x = layer(x)
    functional = keras.Model(inputs, x)
    functional.set_weights(sequential.get_weights())
    data = data_for(sequential, n=60)
    a, b = margin_signature(sequential, data), margin_signature(functional, data)
    np.testing.assert_allclose(b.values, a.values, rtol=1e-6)
    # Functional models count their InputLayer as layer 0.
    assert a.layers == ["input", "2:ReLU", "3:Conv2D", "7:Dense"]
    assert b.layers == ["input", "3:ReLU", "4:Conv2D", "8:Dense"]


def test_user_named_layers():
    model = cnn()
    graph = ModelGraph(model)
    assert choose_layers(graph, [0, "3:Conv2D", model.layers[7].name])[0] == [INPUT, 0, 3, 7]
    assert choose_layers(graph, ["input", 1, 2, 3])[0] == [INPUT, 1, 2, 3]
    signature = margin_signature(model, data_for(model), layers=[0, 1, 2])
    assert signature.layers == ["input", "0:Conv2D", "1:BatchNormalization", "2:ReLU"]
    assert signature.settings["layer_rule"] == "user"


@pytest.mark.parametrize("spec, message", [
    ("3:Dense", "is a Conv2D, not a Dense"),
    (99, "out of range"),
    ("no_such_layer", "no layer named"),
    (10, "after the logits"),
])
def test_bad_layer_names(spec, message):
    model = cnn()
    model.add(layers.Softmax())
    with pytest.warns(UserWarning), pytest.raises(ValueError, match=message):
        choose_layers(ModelGraph(model), [0, 1, spec])


def test_the_logits_layer_and_layers_out_of_order_are_refused():
    graph = ModelGraph(cnn())  # layer 9 (Dense) computes the logits
    with pytest.raises(ValueError, match=r"layer 9:Dense is the logits layer .*name hidden layers "
                                         "before it"):
        choose_layers(graph, [0, 3, 9])
    with pytest.raises(ValueError, match=r"layers 7:Dense, 3:Conv2D, 0:Conv2D are not in forward "
                                         "order"):
        choose_layers(graph, [7, 3, 0])
    with pytest.raises(ValueError, match="not in forward order"):
        choose_layers(graph, [2, "input", 3, 7])
    assert choose_layers(graph, [3, 3, 7])[0] == [INPUT, 3, 3, 7]


def test_a_layer_inside_a_branch_is_refused():
    model = resnet()
    with pytest.raises(ValueError, match="inside a branch"):
        choose_layers(ModelGraph(model), [4, 7, 13])


def test_wrong_count_of_layer_names():
    with pytest.raises(ValueError, match="name 3 layers"):
        choose_layers(ModelGraph(cnn()), [0, 1])

