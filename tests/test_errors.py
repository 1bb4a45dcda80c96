"""Bad input gets a clear error that says what is wrong."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import cnn, data_for, keras, layers

from demogen import extract_margins, margin_signature


def test_several_inputs_or_outputs():
    a, b = keras.Input((3,)), keras.Input((3,))
    two_in = keras.Model([a, b], layers.Dense(2)(layers.Concatenate()([a, b])))
    with pytest.raises(ValueError, match="2 inputs and 1 outputs"):
        margin_signature(two_in, (np.zeros((4, 3)), np.zeros(4)))
    two_out = keras.Model(a, [layers.Dense(2)(a), layers.Dense(2)(a)])
    with pytest.raises(ValueError, match="1 inputs and 2 outputs"):
        margin_signature(two_out, (np.zeros((4, 3)), np.zeros(4)))


@pytest.mark.parametrize("head", [[layers.Dense(1, activation="sigmoid")],
                                  [layers.Dense(6), layers.Reshape((2, 3))]])
def test_output_that_is_not_a_class_score_vector(head):
    model = keras.Sequential([keras.Input((3,))] + head)
    with pytest.raises(ValueError, match="vector of n >= 2 class scores"):
        margin_signature(model, (np.zeros((4, 3)), np.zeros(4)))


def test_unbuilt_model():
    with pytest.raises(ValueError, match="not built"):
        margin_signature(keras.Sequential([layers.Dense(2)]), (np.zeros((4, 3)), np.zeros(4)))


def test_labels_out_of_range():
    model = cnn()
    x, y = data_for(model, n=10)
    y[3] = 7
    with pytest.raises(ValueError, match=r"labels out of range: the model has 5 classes.*\[7\]"):
        margin_signature(model, (x, y))


def test_empty_data():
    model = cnn()
    empty = tf.data.Dataset.from_tensor_slices((np.zeros((0, 12, 12, 1), np.float32),
                                                np.zeros(0, np.int32)))
    with pytest.raises(ValueError, match="empty"):
        margin_signature(model, empty)
    with pytest.raises(ValueError, match="empty"):
        margin_signature(model, (np.zeros((0, 12, 12, 1)), np.zeros(0)))


def test_infinite_dataset():
    model = cnn()
    x, y = data_for(model, n=4)
    with pytest.raises(ValueError, match="infinite"):
        margin_signature(model, tf.data.Dataset.from_tensor_slices((x, y)).repeat())


def test_input_shape_mismatch():
    with pytest.raises(ValueError, match=r"inputs have shape \(12, 12, 3\).*expects \(12, 12, 1\)"):
        margin_signature(cnn(), (np.zeros((4, 12, 12, 3)), np.zeros(4)))


def test_nan_in_weights():
    model = cnn()
    kernel, bias = model.layers[3].get_weights()
    kernel[0, 0, 0, 0] = np.nan
    model.layers[3].set_weights([kernel, bias])
    with pytest.raises(ValueError, match="holds NaN or Inf"):
        margin_signature(model, data_for(cnn(), n=8))


def test_inf_in_activations():
    model = cnn()
    x, y = data_for(model, n=8)
    with pytest.raises(ValueError, match="NaN or Inf in the activations of input"):
        margin_signature(model, (np.full_like(x, np.inf), y))
    big = keras.Sequential([keras.Input((3,)), layers.Dense(3, activation="relu"), layers.Dense(2)])
    big.set_weights([np.full((3, 3), 1e30, np.float32), np.zeros(3, np.float32),
                     np.ones((3, 2), np.float32), np.zeros(2, np.float32)])
    with pytest.raises(ValueError, match="NaN or Inf in the activations of 0:Dense"):
        margin_signature(big, (np.full((4, 3), 1e10, np.float32), np.zeros(4)))


def test_zero_total_variation_layer():
    model = keras.Sequential([keras.Input((3,)), layers.Dense(3, activation="relu"),
                              layers.Dense(3, activation="relu"), layers.Dense(2)])
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(size=(3, 3)).astype(np.float32), np.zeros(3, np.float32),
                       np.zeros((3, 3), np.float32), np.ones(3, np.float32),
                       rng.normal(size=(3, 2)).astype(np.float32), np.zeros(2, np.float32)])
    x = rng.normal(size=(20, 3)).astype(np.float32)
    margins = extract_margins(model, (x, np.zeros(20)))
    with pytest.raises(ValueError, match="1:Dense has zero total variation.*normalize=False"):
        margins.signature()


def test_no_correct_example_gives_a_documented_nan_signature():
    model = keras.Sequential([keras.Input((3,)), layers.Dense(4, activation="relu"),
                              layers.Dense(2)])
    rng = np.random.default_rng(0)
    model.set_weights([np.eye(3, 4, dtype=np.float32), np.zeros(4, np.float32),
                       rng.normal(0, 0.1, (4, 2)).astype(np.float32),
                       np.array([50.0, 0.0], np.float32)])
    x = rng.uniform(0.5, 1.5, size=(10, 3)).astype(np.float32)  # every ReLU unit active
    margins = extract_margins(model, (x, np.ones(10)))
    assert (margins.distances < 0).all()  # every margin is finite and negative
    with pytest.warns(UserWarning, match="no sampled example is classified correctly"):
        signature = margins.signature()
    assert np.isnan(signature.values).all()
    assert signature.n_used == [0, 0, 0, 0]
    assert signature.as_dict()["signature"] == [None] * 20
    assert np.isfinite(margins.signature(signed=True).values).all()


def test_bad_arguments():
    model = cnn()
    data = data_for(model, n=8)
    with pytest.raises(ValueError, match="unknown statistic"):
        margin_signature(model, data, statistic="median")
    with pytest.raises(ValueError, match="batch_size"):
        margin_signature(model, data, batch_size=0)
    with pytest.raises(TypeError, match="tf.data.Dataset"):
        margin_signature(model, data[0])
