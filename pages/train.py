"""Train: choose a config, start, stop, continue or resume a job, and watch it learn.

Training runs in its own process (ae.training.process). A fragment polls the shown job's
snapshot while it is active, every second in a small room and less often in a big one
(ae.display.polling), and stops polling when it ends; while nothing live is shown, a fragment
that draws nothing looks for a run that starts, so a page opened before the lecturer pressed
Train shows the run without a reload. The main script stays short.
The settings live in the URL (`/train?code=10&epochs=3`), so a reload keeps them and a
lecturer can share a link that opens exactly that config and its job. The layout keeps the
running job's progress, Stop, loss chart and digits on one 1280x720 projector screen.
"""
import math
from types import SimpleNamespace

import streamlit as st

from ae.model.config import MAX_EPOCHS, TrainingConfig, number_problem, usable_training_digits, validation_errors
from ae.display.feed import feed_settings
from ae.display.figures import loss_figure_for_projector
from ae.display.live import live_loss_figure, panel_png, picture_snapshot
from ae.display.polling import room
from ae.display.texts import progress_text, queue_note, trained_epochs_text
from ae.model.architectures import ARCHITECTURES, MAX_CODE_SIZE
from ae.model.history import reached
from ae.model.noise import LEVEL_MEANING, NOISE_KINDS
from pages.error_guard import guarded
from pages.legacy_pages_mode import leave_legacy_pages_mode
from pages.live_feed import live_feed_view
from pages.model_picker import manager_or_stop, quick_train_button
from pages.presentation import presenting
from ae.roles import roles_in_use
from pages.lecturer import role_box, room_panel
from pages.session import (FOLLOWED_RUN, MY_JOBS, SELECTED_JOB, default_model, remember_my_job, request_job,
                           this_session, visitor)

BATCH_SIZES = [32, 64, 128, 256, 512, 1024]
LEARNING_RATES = [0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03]
SPARSITIES = [0.0, 1e-5, 1e-4, 1e-3, 1e-2]
CONTRACTIVE_WEIGHTS = [0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0]
STATE_TEXT = {
    "queued": ":material/hourglass_top: Queued",
    "running": ":material/play_arrow: Training",
    "stopping": ":material/pause: Stopping",
    "finished": ":material/check_circle: Finished",
    "stopped": ":material/stop_circle: Stopped",
    "failed": ":material/error: Failed",
}
SETTING = dict(bind="query-params", persist_state="session")  # in the URL, and kept across pages
URL_SETTINGS = ("arch", "code", "epochs", "batch", "lr", "digits", "seed", "noise", "noise_level", "beta", "l1", "cae")
WATCH_SECONDS = 2.0  # how often a session watching nothing live looks for a run that started
SHOWN_JOB = "train_page_shown_job"  # what this page showed last: a run watched to its end stays shown
PROJECTOR_CHART_HEIGHT = 245  # pixels: the loss chart's height in presentation mode


def architecture_named_in_url() -> None:
    """A hand-typed link says `arch=conv`; the selectbox's own links carry its label
    ("Convolutional") and would drop the short name silently, so it is put in the session first."""
    named = st.query_params.get("arch")
    if named in ARCHITECTURES and "arch" not in st.session_state:
        st.session_state["arch"] = named


def training_settings(dataset) -> tuple[TrainingConfig | None, dict]:
    """The settings' controls, each problem in words below its control. Returns the config
    (None while a setting is unusable) and the problems by field."""
    architecture_named_in_url()
    architecture = st.selectbox(
        "Architecture", list(ARCHITECTURES), format_func=lambda name: ARCHITECTURES[name].label, key="arch",
        help="\n\n".join(f"**{spec.label}**: {spec.description}" for spec in ARCHITECTURES.values()), **SETTING,
    )
    code_size = st.number_input(
        f"Code size (1 to {MAX_CODE_SIZE})", value=49, step=1, key="code", **SETTING,
        help="How many numbers each 784-pixel digit is squeezed into. The article's model uses 49.",
    )
    code_error = st.empty()
    epochs = st.number_input(f"Epochs (1 to {MAX_EPOCHS})", value=5, step=1, key="epochs", **SETTING)
    epochs_error = st.empty()
    with st.expander("More settings"):
        batch_size = st.select_slider("Batch size", BATCH_SIZES, 256, key="batch", **SETTING)
        learning_rate = st.select_slider(
            "Learning rate (Adam)", LEARNING_RATES, 0.001, format_func=lambda v: f"{v:g}", key="lr", **SETTING
        )
        usable = usable_training_digits(dataset)
        train_size = st.number_input(f"Training digits (10 to {usable:,})", value=usable, step=1000, key="digits", **SETTING)
        digits_error = st.empty()
        seed = st.number_input("Seed", value=0, step=1, key="seed", **SETTING)
        seed_error = st.empty()
        noise_kind = st.selectbox("Denoising: input noise", list(NOISE_KINDS), format_func=NOISE_KINDS.get, key="noise",
                                  help="A denoising model sees corrupted digits and learns to give back the clean ones.",
                                  **SETTING)
        noise_level = st.number_input(
            "Noise level (0 to 1)", value=0.0, step=0.05, format="%.2f", key="noise_level", **SETTING,
            help=" · ".join(f"{kind.replace('_', ' and ')}: {meaning}" for kind, meaning in LEVEL_MEANING.items()),
        )
        noise_error = st.empty()
        beta = st.number_input("Beta: weight of the KL term (VAE only)", value=1.0, step=0.5, format="%.2f", key="beta",
                               help="1 is the standard VAE; larger values trade sharpness for a smoother code.",
                               **SETTING)
        beta_error = st.empty()
        sparsity = st.select_slider(
            "Sparsity: L1 penalty on the code", SPARSITIES, 0.0, key="l1", format_func=lambda v: f"{v:g}" if v else "off",
            help="A sparse model pays for every active code unit, so each digit uses few of them.", **SETTING,
        )
        contractive = st.select_slider(
            "Contractive: penalty on the encoder's Jacobian (dense only)", CONTRACTIVE_WEIGHTS, 0.0, key="cae",
            format_func=lambda v: f"{v:g}" if v else "off", **SETTING,
            help="A contractive model pays λ x the squared Frobenius norm of d code / d pixels, so small changes "
                 "of the input barely move its code (Rifai et al. 2011).",
        )
        contractive_error = st.empty()

    values = SimpleNamespace(
        architecture=architecture, code_size=code_size, epochs=epochs, batch_size=int(batch_size),
        learning_rate=float(learning_rate), train_size=train_size, seed=seed,
        noise_kind=noise_kind, noise_level=noise_level, sparsity=float(sparsity), beta=beta,
        contractive=float(contractive),
    )
    errors = validation_errors(values)
    digits_problem = number_problem("Training digits", train_size, 10, usable)  # this data file's range
    if digits_problem:
        errors["train_size"] = digits_problem
    places = {"code_size": code_error, "epochs": epochs_error, "train_size": digits_error, "seed": seed_error,
              "noise_kind": noise_error, "noise_level": noise_error, "beta": beta_error,
              "contractive": contractive_error}
    for field_name, message in errors.items():
        places.get(field_name, st).error(message, icon=":material/error:")
    return None if errors else TrainingConfig(**vars(values)), errors


def train_button(manager, config, errors) -> None:
    if manager.cache_problem:
        st.warning(f"Models will not be kept after a restart: {manager.cache_problem}. "
                   "Trained models still work until then.", icon=":material/warning:")
    # Handled in this run, not in an on_click callback: a callback would run with the
    # settings of the run that drew the button, which lag behind a value typed just before.
    if st.button(
        "Train", type="primary", icon=":material/play_arrow:", disabled=config is None,
        key="train_button", width="stretch",
    ):
        request_job(manager, config)  # a refusal is shown here, in words
    if config is None:
        hidden = [name for name in ("train_size", "seed", "noise_kind", "noise_level", "sparsity", "beta", "contractive")
                  if name in errors]
        st.caption("Train is off until the settings above are fixed"
                   + (" (see More settings)." if hidden else "."))


def settings_in_url() -> bool:
    """The page was opened with settings in its address (a shared link, a reload)."""
    return any(name in st.query_params for name in URL_SETTINGS)


def shown_job(manager, config):
    """A run that started while this session watched nothing live; else this session's job (or
    the one it picked last); else the saved or running job of the settings in the controls (a
    shared link opens its job, and a link to settings nothing was trained with shows just that,
    whatever ran before); else whatever trains now; else the job this page showed last (a
    watched run that just ended); else the default model."""
    followed, running = manager.get(st.session_state.get(FOLLOWED_RUN, "")), manager.running()
    if followed is not None and not followed.snapshot().is_active and running is not None:
        followed = running  # the followed run ended and another trains: follow that one
        st.session_state[FOLLOWED_RUN] = running.key
    job = followed or manager.get(st.session_state.get(SELECTED_JOB, ""))
    if job is None and config is not None:
        job = manager.get(config.key)
        if job is None and settings_in_url():
            return None  # the link's settings: not trained yet, and the page says so
    return (job or running or manager.get(st.session_state.get(SHOWN_JOB, ""))
            or default_model(manager)[0])


def job_buttons(manager, job, snapshot) -> None:
    """Stop (only if this session may), Continue +N, Resume to the planned epochs, and the
    model's menu (pin, delete). A model this session may not change (pinned, or another
    session's) is continued as this session's own copy, and the page says so."""
    who = visitor()
    stop_col, continue_col, extra_col, resume_col, menu_col = st.columns([1, 1.25, 0.7, 1.3, 1],  # no label cut
                                                                         vertical_alignment="bottom")
    permission = job.stop_permission(**who) if snapshot.is_active else None

    def stop() -> None:
        try:
            answer = job.stop(**who)
        except ValueError as error:  # the service did not answer in time: a sentence, never a red box
            st.session_state["stop_note"] = str(error)
            return
        if not answer.stops:
            st.session_state["stop_note"] = answer.reason

    stop_col.button(
        "Stop", icon=":material/stop:", on_click=stop, key="stop_button", width="stretch",
        disabled=permission is None or not permission.allowed,
        help=permission.reason if permission is not None and permission.reason else "Stop and keep the model trained so far",
    )
    extra = extra_col.number_input("Epochs to add", value=2, step=1, key="extra_epochs", persist_state="session",
                                   label_visibility="collapsed", help="Epochs to add with Continue")
    extra_problem = number_problem("Epochs to add", extra, 1, MAX_EPOCHS)
    idle_with_model = not snapshot.is_active and snapshot.has_model
    refusal = manager.change_refusal(job.key, **who) if idle_with_model else None

    def go_on(action) -> None:
        try:
            result = action()
            remember_my_job(result.key if result is not None else job.key)
        except ValueError as error:
            st.session_state["continue_error"] = str(error)

    def more(total: float, resume: bool = False):
        """Continue (or Resume) this model, or train this session's own copy to `total` epochs."""
        if refusal is not None:
            return lambda: manager.own_copy(job, who["session"], total, who["lecturer"])
        return (lambda: job.resume_to(total, **who)) if resume else (lambda: job.extend(int(extra), **who))

    continued = snapshot.history.epochs_done + (int(extra) if extra_problem is None else 0)
    continue_col.button(
        f"Continue +{int(extra) if extra_problem is None else '?'}", icon=":material/fast_forward:",
        disabled=not idle_with_model or extra_problem is not None, key="continue_button", width="stretch",
        on_click=go_on, args=(more(continued),),
        help="Train the shown model for more epochs" if refusal is None else "Train your own copy for this many epochs in all",
    )
    planned = snapshot.config.epochs
    can_resume = idle_with_model and not reached(snapshot.history.epochs_done, planned) and refusal is None
    resume_col.button(
        f"Resume to {planned}", icon=":material/replay:", disabled=not can_resume, key="resume_button",
        width="stretch", on_click=go_on, args=(more(planned, resume=True),),
        help=f"Train on until the model has the {planned} epochs its settings planned" if refusal is None else refusal,
    )
    model_menu(menu_col, manager, job, snapshot, who)
    if extra_problem is not None:
        st.error(extra_problem, icon=":material/error:")
    if refusal is not None:
        copy_epochs = max(1, math.ceil(continued - 1e-9))
        st.caption(f":material/push_pin: {refusal} Your copy: the same settings for {copy_epochs} epochs, "
                   "trained from scratch (not from these weights), as a model of your own.")
    if permission is not None and permission.reason and not permission.allowed:
        st.caption(f":material/lock: {permission.reason}")
    for note in ("stop_note", "continue_error"):
        if st.session_state.get(note):
            (st.info if note == "stop_note" else st.error)(st.session_state.pop(note))


def model_menu(column, manager, job, snapshot, who) -> None:
    """Pin (the lecturer, where roles are in use) and Delete, each disabled with its reason."""
    with column.popover("Model", icon=":material/more_horiz:", width="stretch"):
        if roles_in_use():
            pin_refusal = None if who["lecturer"] else "Only the lecturer may pin or unpin models."
            label = "Unpin" if snapshot.pinned else "Pin for the lecture"
            if st.button(label, key="pin_button", icon=":material/push_pin:", disabled=pin_refusal is not None,
                         help=pin_refusal or "A pinned model stays as it is: students get their own copy instead."):
                act(lambda: manager.pin(job.key, not snapshot.pinned, **who))
        delete_refusal = manager.delete_refusal(job.key, **who)
        if st.button("Delete this model", key="delete_button", icon=":material/delete:",
                     disabled=delete_refusal is not None or not snapshot.has_model, help=delete_refusal):
            if act(lambda: manager.delete(job.key, **who)):
                st.session_state.pop(SELECTED_JOB, None)
                st.rerun()
        if delete_refusal:
            st.caption(delete_refusal)


def act(action) -> bool:
    try:
        action()
    except ValueError as refusal:
        st.warning(str(refusal), icon=":material/block:")
        return False
    return True


@st.cache_data(max_entries=32, show_spinner=False)
def live_loss_chart(key: str, version: int, projector: bool, _snapshot) -> None:
    """The loss chart, drawn once per snapshot version and replayed to every other session
    watching: Streamlit replays the elements a cached function drew, without serializing the
    Plotly figure again (most of an update's cost: about 10 ms a session)."""
    figure = live_loss_figure(_snapshot)
    if projector:  # a little lower, so the whole chart is on a 1280x720 projector's first screen
        figure = loss_figure_for_projector(figure, PROJECTOR_CHART_HEIGHT)
    st.plotly_chart(figure, key="loss_chart", theme=None)


def job_header(job, snapshot) -> None:
    """What the job is and its buttons: drawn in the page's full run, not on every poll (a
    change of state reruns the page), so each poll draws only what moves."""
    config = snapshot.config
    whose = "yours" if job.key in st.session_state.get(MY_JOBS, ()) else "shared"
    if snapshot.pinned and roles_in_use():
        whose += " · pinned by the lecturer"
    kind = ARCHITECTURES[config.architecture].label + config.variants
    st.markdown(f"#### {STATE_TEXT[snapshot.state.value]}: {kind}, code size "
                f"{config.code_size} <small style='opacity:.6'>({whose})</small>", unsafe_allow_html=True)
    st.caption(config.describe())
    job_buttons(job.manager, job, snapshot)


def render(manager, job) -> None:
    """Everything here is cheap per session: the figure and the panel picture are built once
    per snapshot version (ae.display.live) and shared by every session watching."""
    dataset = manager.dataset
    snapshot = job.snapshot()
    config = snapshot.config
    st.progress(snapshot.progress, text=progress_text(snapshot, len(dataset.x_test)))
    if snapshot.error:
        st.error(f"Training failed: {snapshot.error}")
    if snapshot.warning:
        st.warning(snapshot.warning, icon=":material/warning:")
    if snapshot.state.value == "queued":
        st.info(queue_note(snapshot, manager.running()), icon=":material/hourglass_top:")
        return
    if not snapshot.history.step_losses and not snapshot.history.train_loss:
        return  # starting or compiling: nothing to draw yet, and an empty chart would say nothing

    picture = picture_snapshot(snapshot)  # the chart and the digits: renewed every 2 s at most
    chart_col, panel_col = st.columns([1.35, 1])
    with chart_col:
        metric_cols = st.columns(3)
        metric_cols[0].metric("Train loss", f"{snapshot.history.train_loss[-1]:.4f}" if snapshot.history.train_loss else "–")
        metric_cols[1].metric("Validation loss", f"{snapshot.history.val_loss[-1]:.4f}" if snapshot.history.val_loss else "–")
        metric_cols[2].metric("Test loss", f"{snapshot.test_metrics.bce:.4f}" if snapshot.test_metrics else "–",
                              help="Binary cross-entropy per pixel on the 10,000 test digits, after training")
        live_loss_chart(picture.key, picture.version, presenting(), picture)
    with panel_col:
        st.markdown("**Noisy input**, its **reconstruction**, and the **clean digit**" if config.denoising
                    else "**16 test digits** over their **reconstructions**")
        # PNG as it is: Streamlit would decode and re-encode it as a JPEG for every session.
        st.image(panel_png(picture, dataset.test_images, dataset.y_test), width="stretch", output_format="PNG")
        if picture.panel_epoch is not None:
            st.caption(f"Reconstructions after {picture.panel_epoch:.2f} epochs · model: {trained_epochs_text(snapshot)}.")
        else:
            st.caption("Reconstructions appear once training starts.")


def live_view(manager, job, polling: bool, interval: float | None, drawn_state) -> None:
    """The shown job, drawn again on every poll while it trains (a fragment's body)."""
    render(manager, job)
    if polling:
        room().polled(this_session())
    if job.snapshot().state is not drawn_state:
        st.rerun()  # queued -> training -> stopping -> done: the heading and buttons follow, polling starts or stops
    if polling and room().retune(interval):
        st.rerun()  # the room grew or shrank: a full rerun sends this session's new timer


def watch_for_runs(manager, shown_key: str | None, running_when_drawn: str | None) -> None:
    """While this session watches nothing live, a run that starts is shown without a reload:
    a fragment that draws nothing and only reruns the page when a run starts."""
    room().polled(this_session())
    running = manager.running()
    if running is not None and running.key not in (shown_key, running_when_drawn):
        st.session_state[FOLLOWED_RUN] = running.key
        st.rerun()


def shown_job_view(manager, job, config) -> None:
    """The shown job, live; or, with none, the way to a first model. Behind `ae.serve` the
    browser draws the live view from the feed (pages/live_feed.py); else fragments poll."""
    feed = feed_settings()
    # One snapshot for the heading, the buttons and the state the live view compares against:
    # a job that starts between two snapshots would keep a "Queued" heading for its whole run.
    snapshot = job.snapshot() if job is not None else None
    polling = snapshot is not None and snapshot.is_active
    interval = room().interval()  # grows with the room, so a big room still gets every update
    if feed is None and not polling:
        running = manager.running()
        st.fragment(guarded(watch_for_runs), run_every=max(WATCH_SECONDS, interval))(
            manager, job and job.key, running and running.key)
    if job is None:
        if config is not None and settings_in_url() and manager.trained_jobs():
            st.info("Nothing is trained with these settings yet: press **Train** to train them. Progress, loss "
                    "curves and reconstructions appear here live.", icon=":material/info:")
        else:
            st.info("No model is trained yet. Choose settings and press **Train**, or start with the article's model: "
                    "progress, loss curves and reconstructions appear here live.", icon=":material/info:")
            quick_train_button("train_quick")
        if feed is not None:
            live_feed_view(manager, None, None, feed, presenting())  # draws nothing; a run that starts reruns the page
        return
    if config is not None and config.key != job.key:
        st.caption("Shown below: " + ("the job you picked" if job.key == st.session_state.get(SELECTED_JOB)
                                      else "the job running now" if snapshot.is_active else "the default model")
                   + ". Your settings at left are for the next Train; changing them never interrupts it.")
    job_header(job, snapshot)
    if feed is not None:
        live_feed_view(manager, job, snapshot, feed, presenting())
        if not polling:
            render(manager, job)  # done: drawn once, here
        return
    st.fragment(guarded(live_view), run_every=interval if polling else None)(
        manager, job, polling, interval, snapshot.state)


def train_page() -> None:
    leave_legacy_pages_mode()
    manager = manager_or_stop()
    st.title("Train")
    controls, live_area = st.columns([1, 3.2], gap="medium")
    with controls:
        config, errors = training_settings(manager.dataset)
        train_button(manager, config, errors)
        role_box()
        room_panel(manager)
    job = shown_job(manager, config)
    if job is not None:
        st.session_state[SHOWN_JOB] = job.key
    with live_area:
        shown_job_view(manager, job, config)


train_page()
