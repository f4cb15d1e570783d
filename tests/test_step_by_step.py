"""The article's purchase-table example: numpy gradients against TensorFlow's and finite
differences, SGD lowering the loss, and recommendations on a table with an obvious answer."""
import json

import numpy as np
import pytest

from ae.analysis.step_by_step import (MAX_EPOCHS_PER_CLICK, MAX_HISTORY, PURCHASES, Parameters, StepByStep, StepLimitError,
                                      forward, gradients, loss_of, recommendations, because_sentence, table_loss, CUSTOMERS,
                                      PRODUCTS)


def _params(code_size=3, seed=1):
    params = Parameters.initial(PURCHASES.shape[1], code_size, seed)
    rng = np.random.default_rng(seed)
    params.b, params.c = rng.normal(size=params.b.shape), rng.normal(size=params.c.shape)  # nonzero biases too
    return params


@pytest.mark.parametrize("customer", [0, 4, 9])
def test_numpy_gradients_match_tensorflow(customer):
    import tensorflow as tf

    params, x = _params(), PURCHASES[customer]
    _, _, loss, grads = gradients(params, x)
    variables = [tf.Variable(value) for value in (params.W, params.b, params.V, params.c)]
    with tf.GradientTape() as tape:
        W, b, V, c = variables
        h = tf.sigmoid(tf.linalg.matvec(W, x) + b)
        y = tf.sigmoid(tf.linalg.matvec(V, h) + c)
        tf_loss = tf.reduce_mean(tf.keras.losses.binary_crossentropy(x[None], y[None]))
    expected = tape.gradient(tf_loss, variables)
    assert loss == pytest.approx(float(tf_loss), rel=1e-6)
    for ours, theirs in zip((grads.W, grads.b, grads.V, grads.c), expected):
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-5, atol=1e-9)


def test_numpy_gradients_match_finite_differences():
    params, x = _params(code_size=2, seed=3), PURCHASES[2]
    _, _, _, grads = gradients(params, x)
    step = 1e-6
    for name in ("W", "b", "V", "c"):
        values = getattr(params, name)
        numeric = np.zeros_like(values)
        for index in np.ndindex(values.shape):
            original = values[index]
            values[index] = original + step
            up = loss_of(x, forward(params, x)[1])
            values[index] = original - step
            down = loss_of(x, forward(params, x)[1])
            values[index] = original
            numeric[index] = (up - down) / (2 * step)
        np.testing.assert_allclose(getattr(grads, name), numeric, rtol=1e-4, atol=1e-8)


def test_a_step_moves_each_weight_against_its_gradient_and_epochs_lower_the_loss():
    model = StepByStep(PURCHASES, code_size=2, learning_rate=1.0, seed=0)
    step = model.next_step()
    assert step.customer == 0 and model.position == 1
    np.testing.assert_allclose(step.after.W, step.before.W - 1.0 * step.gradients.W)
    np.testing.assert_allclose(step.after.c, step.before.c - 1.0 * step.gradients.c)
    assert not np.allclose(step.after.V, step.before.V)
    model.run_epochs(300)
    assert model.epochs_done == 300 and model.position == 0
    assert model.epoch_losses[-1] < 0.6 * model.epoch_losses[0]


def test_recommendations_on_a_table_with_an_obvious_answer():
    # Four customers buy A, B and C; one buys A and B only: C is what to offer them.
    table = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 0, 0], [1, 1, 0, 0, 0],
                      [0, 0, 0, 1, 1], [0, 0, 0, 1, 1], [0, 0, 0, 1, 1]], dtype=float)
    model = StepByStep(table, code_size=2, learning_rate=2.0, seed=0)
    model.run_epochs(400)
    ranked = recommendations(model.params, table, customer=4)
    assert [r.product for r in ranked] == [2, 3, 4] or ranked[0].product == 2
    assert ranked[0].probability > max(r.probability for r in ranked[1:])
    assert set(ranked[0].because) <= {0, 1, 2, 3} and ranked[0].because
    sentence = because_sentence(ranked[0], [f"C{i}" for i in range(8)], ["A", "B", "C", "D", "E"])
    assert sentence.startswith("C: ") and "bought it" in sentence


def test_the_built_in_table_has_groups_the_model_finds():
    model = StepByStep(PURCHASES, code_size=2, learning_rate=1.0, seed=0)
    model.run_epochs(500)
    ben = recommendations(model.params, PURCHASES, CUSTOMERS.index("Ben"))
    assert PRODUCTS[ben[0].product] == "Jam"  # his breakfast group buys jam


# ---- bounds: what one visitor can make the web process do -----------------------------------
TINY = PURCHASES[:2]  # two customers: an epoch is two steps, so thousands of epochs take a moment


def _long_trained() -> StepByStep:
    model = StepByStep(TINY, code_size=2, learning_rate=1.0, seed=0)
    for _ in range(3):
        model.run_epochs(MAX_EPOCHS_PER_CLICK)
    return model


@pytest.mark.parametrize("count", [MAX_EPOCHS_PER_CLICK + 1, 0, 2.5])
def test_more_epochs_than_a_click_allows_are_refused_in_a_sentence(count):
    model = StepByStep(TINY, code_size=2)
    with pytest.raises(StepLimitError) as refused:
        model.run_epochs(count)
    sentence = str(refused.value)
    assert sentence == f"Epochs must be a whole number from 1 to {MAX_EPOCHS_PER_CLICK:,} at a time; got {count!r}."
    assert model.epochs_done == 0 and model.last_step is None  # nothing ran


def test_the_loss_history_keeps_the_last_epochs_and_counts_the_dropped_ones():
    model = _long_trained()
    assert model.epochs_done == 3 * MAX_EPOCHS_PER_CLICK
    assert len(model.epoch_losses) == MAX_HISTORY
    assert model.dropped_epochs == model.epochs_done + 1 - MAX_HISTORY  # +1: the loss before any training
    assert model.epoch_losses[-1] == pytest.approx(table_loss(model.params, model.table))


def test_the_page_refuses_too_many_epochs_and_says_when_older_epochs_were_dropped(app_env):
    from tests.test_pages import assert_clean, open_page, texts

    app = open_page("pages/step_by_step.py")
    app.number_input(key="steps_epochs").set_value(MAX_EPOCHS_PER_CLICK + 1).run()
    assert any(f"Epochs must be a whole number from 1 to {MAX_EPOCHS_PER_CLICK:,}; got {MAX_EPOCHS_PER_CLICK + 1}." in e.value
               for e in app.error)
    assert app.button(key="run_epochs").disabled
    app.session_state["step_model"], app.session_state["step_settings"] = _long_trained(), (2, 1.0, 0)
    app.button(key="next_step").click().run()  # the long-trained model goes on, on the page's table
    assert_clean(app)
    dropped = 3 * MAX_EPOCHS_PER_CLICK + 1 - MAX_HISTORY
    assert f"The curve shows the last {MAX_HISTORY:,} epochs; the {dropped:,} before them were dropped" in texts(app)
    curve = next(json.loads(c.proto.spec) for c in app.get("plotly_chart") if "Loss over the table" in c.proto.spec)
    assert len(curve["data"][0]["x"]) == MAX_HISTORY and curve["data"][0]["x"][0] == dropped
