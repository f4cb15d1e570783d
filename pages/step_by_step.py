"""How it learns, step by step: the article's purchase-table autoencoder, one customer at a time."""
from typing import NamedTuple

import numpy as np
import pandas as pd
import streamlit as st

from ae.display.figures import loss_curve_figure, weights_figure
from ae.analysis.step_by_step import (CODE_SIZES, CUSTOMERS, MAX_EPOCHS_PER_CLICK, MAX_HISTORY, PRODUCTS, PURCHASES, StepByStep,
                                      StepLimitError, because_sentence, recommendations)
from pages.legacy_pages_mode import leave_legacy_pages_mode
from pages.number_box import number_box
from pages.presentation import chart, presenting

INTRODUCTION = ("The article's worked example. Customers are rows, products columns, 1 means bought. The code is "
                "h = sigmoid(W x + b), the output y = sigmoid(V h + c), the loss binary cross-entropy, and training is plain "
                "SGD, one customer at a time. Every number below comes from that computation (numpy).")


class StepControls(NamedTuple):
    """The settings and which button was pressed in this run."""

    code_size: int
    learning_rate: float
    seed: int | None
    epochs: int | None
    next_step: bool
    one_epoch: bool
    many_epochs: bool
    reset: bool


def step_controls() -> StepControls:
    # Widths that leave each button's label whole on a 1280-pixel projector in presentation mode.
    controls = st.columns([1.3, 1.2, 0.7, 0.75, 1.15, 1.1, 1.15, 1.0], vertical_alignment="bottom")
    code_size = controls[0].radio("Code size", CODE_SIZES, horizontal=True, key="steps_code_size")
    learning_rate = controls[1].select_slider("Learning rate", [0.1, 0.3, 1.0, 2.0, 5.0], 1.0, key="steps_learning_rate")
    seed = number_box(controls[2], "Seed", 0, 9999, 0, key="steps_seed")
    epochs = number_box(controls[3], "Epochs", 1, MAX_EPOCHS_PER_CLICK, 100, key="steps_epochs",
                        help=f"At most {MAX_EPOCHS_PER_CLICK:,} per click; click again to train on.")
    next_step = controls[4].button("Next step", icon=":material/skip_next:", key="next_step", type="primary", width="stretch")
    one_epoch = controls[5].button("One epoch", key="run_epoch", width="stretch")
    many_epochs = controls[6].button(f"{epochs or 'N'} epochs", key="run_epochs", disabled=epochs is None, width="stretch")
    reset = controls[7].button("Reset", icon=":material/restart_alt:", key="steps_reset", width="stretch")
    return StepControls(code_size, learning_rate, seed, epochs, next_step, one_epoch, many_epochs, reset)


def purchase_table():
    """The editable purchase table, as 0/1 numbers: every customer in view (no scrolling), and the
    columns as wide as their product's name, so no header is cut."""
    row_height = 40 if presenting() else 35
    edited = st.data_editor(
        pd.DataFrame(PURCHASES.astype(bool), index=list(CUSTOMERS), columns=list(PRODUCTS)),
        key="purchase_table", width="stretch", row_height=row_height, height=(len(CUSTOMERS) + 1) * row_height + 10,
        column_config={name: st.column_config.CheckboxColumn(name) for name in PRODUCTS},
    )
    return edited.to_numpy(dtype=np.float64)


def trained_model(table, chosen: StepControls) -> StepByStep:
    """This session's model, new for new settings or Reset, trained as far as this run's button says."""
    settings = (chosen.code_size, chosen.learning_rate, chosen.seed or 0)
    model = st.session_state.get("step_model")
    if chosen.reset or model is None or st.session_state.get("step_settings") != settings:
        model = StepByStep(table, chosen.code_size, chosen.learning_rate, chosen.seed or 0)
        st.session_state["step_model"], st.session_state["step_settings"] = model, settings
    if not np.array_equal(model.table, table):  # an edited table: training goes on, on the new rows
        model.table = table
    if chosen.next_step:
        model.next_step()
    if chosen.one_epoch:
        model.run_epochs(1)
    if chosen.many_epochs:
        try:
            model.run_epochs(chosen.epochs)
        except StepLimitError as refused:
            st.error(str(refused), icon=":material/error:")
    return model


def last_step(step_area, numbers_column, model, code_size: int) -> None:
    """Every number of the last step: the weights before and after, right under the buttons (on a
    projector's first screen); the inputs, outputs and gradients under the table."""
    step = model.last_step
    if step is None:
        step_area.info("Press **Next step** to train on the first customer and see every number of the step.")
        return
    step_area.markdown(f"#### The last step: {CUSTOMERS[step.customer]}")
    heatmaps = step_area.columns(2)  # wide enough for 8 products' numbers at the projector's font size
    units = [f"unit {i + 1}" for i in range(code_size)]
    chart(weights_figure(step.before.W, step.after.W, units, list(PRODUCTS), "Encoder weights W"),
          container=heatmaps[0], key="encoder_weights")
    chart(weights_figure(step.before.V.T, step.after.V.T, units, list(PRODUCTS), "Decoder weights V (transposed)"),
          container=heatmaps[1], key="decoder_weights")
    numbers = numbers_column.columns([1.1, 1, 1.3])
    curve = loss_curve_figure(model.epoch_losses)
    curve.data[0].x = list(range(model.dropped_epochs, model.dropped_epochs + len(model.epoch_losses)))  # the epochs kept
    chart(curve, container=numbers[2], key="steps_loss")
    if model.dropped_epochs:
        numbers[2].caption(f"The curve shows the last {MAX_HISTORY:,} epochs; the {model.dropped_epochs:,} before them "
                            "were dropped to keep the page light.")
    with numbers[0]:
        rows = pd.DataFrame({"x": step.x.astype(int), "y": step.y.round(3), "dL/dc": step.gradients.c.round(4)},
                            index=list(PRODUCTS))
        st.dataframe(rows, width="stretch")
    with numbers[1]:
        st.markdown("**Code h = sigmoid(W x + b)**")
        st.dataframe(pd.DataFrame({"h": step.h.round(3), "dL/db": step.gradients.b.round(4)},
                                  index=[f"unit {i + 1}" for i in range(len(step.h))]), width="stretch")
        st.markdown(f"**Loss** (BCE, mean over {len(step.x)} products): **{step.loss:.4f}**")
        st.caption(f"x: bought, y: the output, dL/d...: the loss's gradient. Update: every weight w becomes "
                   f"w - {step.learning_rate:g} x dL/dw. "
                   f"The largest change this step: {np.abs(step.after.W - step.before.W).max():.4f} in W, "
                   f"{np.abs(step.after.V - step.before.V).max():.4f} in V.")


def recommendations_list(model, table) -> None:
    st.subheader("Recommendations")
    customer = st.selectbox("For", range(len(CUSTOMERS)), format_func=lambda i: CUSTOMERS[i], key="recommend_for")
    ranked = recommendations(model.params, table, customer)
    if not ranked:
        st.info(f"{CUSTOMERS[customer]} has bought every product.")
    for recommendation in ranked:
        st.markdown("- " + because_sentence(recommendation, CUSTOMERS, PRODUCTS))
    st.caption("Products not yet bought, ranked by the model's reconstruction: how likely the output layer thinks each one "
               "belongs in this customer's basket. Untrained, the ranking is noise; after a few hundred epochs it follows the groups.")


def step_by_step_page() -> None:
    leave_legacy_pages_mode()
    st.title("How it learns, step by step")
    if presenting():  # the lecturer says it; the buttons and the heatmaps need the first screen
        st.expander("What this page computes").caption(INTRODUCTION)
    else:
        st.caption(INTRODUCTION)
    chosen = step_controls()
    step_area = st.container()  # filled once the model has taken this run's step
    table_column, numbers_column = st.container(), st.container()  # the table as wide as its 8 product names
    with table_column:
        table = purchase_table()
    model = trained_model(table, chosen)
    table_column.caption(f"**Epoch {model.epochs_done + 1}, {CUSTOMERS[model.position]} next** (customer {model.position + 1} "
                         f"of {len(table)}). Loss over the table: {model.epoch_losses[-1]:.3f} after {model.epochs_done} "
                         "epoch(s). Tick or untick boxes to change what the customers bought.")
    last_step(step_area, numbers_column, model, chosen.code_size)
    recommendations_list(model, table)


step_by_step_page()
