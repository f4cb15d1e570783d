"""How it learns, step by step: the article's purchase-table autoencoder, one customer at a time."""
import numpy as np
import pandas as pd
import streamlit as st

from ae.figures import loss_curve_figure, weights_figure
from ae.purchases import CODE_SIZES, CUSTOMERS, PRODUCTS, PURCHASES, StepByStep, because_sentence, recommendations
from pages.shared import chart, number_box

st.title("How it learns, step by step")
st.caption("The article's worked example. Customers are rows, products columns, 1 means bought. The code is "
           "h = sigmoid(W x + b), the output y = sigmoid(V h + c), the loss binary cross-entropy, and training is plain "
           "SGD, one customer at a time. Every number below comes from that computation (numpy).")

table_column, settings_column = st.columns([1.6, 1], gap="medium")
with table_column:
    edited = st.data_editor(
        pd.DataFrame(PURCHASES.astype(bool), index=list(CUSTOMERS), columns=list(PRODUCTS)),
        key="purchase_table", width="stretch", height=388,
        column_config={name: st.column_config.CheckboxColumn(name, width="small") for name in PRODUCTS},
    )
table = edited.to_numpy(dtype=np.float64)
with settings_column:
    code_size = st.radio("Code size", CODE_SIZES, horizontal=True, key="steps_code_size")
    learning_rate = st.select_slider("Learning rate", [0.1, 0.3, 1.0, 2.0, 5.0], 1.0, key="steps_learning_rate")
    seed = number_box(st, "Seed", 0, 9999, 0, key="steps_seed")
    settings = (code_size, learning_rate, seed or 0)
    model = st.session_state.get("step_model")
    if st.button("Reset", icon=":material/restart_alt:", key="steps_reset") or model is None \
            or st.session_state.get("step_settings") != settings:
        model = StepByStep(table, code_size, learning_rate, seed or 0)
        st.session_state["step_model"], st.session_state["step_settings"] = model, settings
    if not np.array_equal(model.table, table):  # an edited table: training goes on, on the new rows
        model.table = table
    buttons = st.columns(3)
    if buttons[0].button("Next step", icon=":material/skip_next:", key="next_step", type="primary"):
        model.next_step()
    if buttons[1].button("Run one epoch", key="run_epoch"):
        model.run_epochs(1)
    epochs = number_box(st, "Epochs to run", 1, 5000, 100, key="steps_epochs")
    if buttons[2].button("Run N epochs", key="run_epochs", disabled=epochs is None):
        model.run_epochs(epochs)
    st.markdown(f"**Epoch {model.epochs_done + 1}, customer {model.position + 1} of {len(table)} next** "
                f"({CUSTOMERS[model.position]}). Loss over the table: {model.epoch_losses[-1]:.3f} after "
                f"{model.epochs_done} epoch(s).")

step = model.last_step
if step is None:
    st.info("Press **Next step** to train on the first customer and see every number of the step.")
else:
    st.subheader(f"The last step: {CUSTOMERS[step.customer]}")
    numbers = st.columns([1.2, 1, 1.2])
    with numbers[0]:
        rows = pd.DataFrame({"bought (x)": step.x.astype(int), "output (y)": step.y.round(3),
                             "dLoss/dc": step.gradients.c.round(4)}, index=list(PRODUCTS))
        st.dataframe(rows, width="stretch")
    with numbers[1]:
        st.markdown("**Code h = sigmoid(W x + b)**")
        st.dataframe(pd.DataFrame({"h": step.h.round(3), "dLoss/db": step.gradients.b.round(4)},
                                  index=[f"unit {i + 1}" for i in range(len(step.h))]), width="stretch")
        st.markdown(f"**Loss** (BCE, mean over {len(step.x)} products): **{step.loss:.4f}**")
        st.caption(f"Update: every weight w becomes w - {step.learning_rate:g} x dLoss/dw. "
                   f"The largest change this step: {np.abs(step.after.W - step.before.W).max():.4f} in W, "
                   f"{np.abs(step.after.V - step.before.V).max():.4f} in V.")
    with numbers[2]:
        chart(loss_curve_figure(model.epoch_losses), key="steps_loss")
    heatmaps = st.columns(2)
    chart(container=heatmaps[0], figure=weights_figure(step.before.W, step.after.W, [f"unit {i + 1}" for i in range(code_size)],
                                            list(PRODUCTS), "Encoder weights W (code x products)"),
                             key="encoder_weights")
    chart(container=heatmaps[1], figure=weights_figure(step.before.V.T, step.after.V.T, [f"unit {i + 1}" for i in range(code_size)],
                                            list(PRODUCTS), "Decoder weights V (shown code x products)"),
                             key="decoder_weights")

st.subheader("Recommendations")
customer = st.selectbox("For", range(len(CUSTOMERS)), format_func=lambda i: CUSTOMERS[i], key="recommend_for")
ranked = recommendations(model.params, table, customer)
if not ranked:
    st.info(f"{CUSTOMERS[customer]} has bought every product.")
for recommendation in ranked:
    st.markdown("- " + because_sentence(recommendation, CUSTOMERS, PRODUCTS))
st.caption("Products not yet bought, ranked by the model's reconstruction: how likely the output layer thinks each one "
           "belongs in this customer's basket. Untrained, the ranking is noise; after a few hundred epochs it follows the groups.")
