"""The live view's words: ordinals, and the epochs a page reports before and after a Continue."""
import pytest

from ae.display.texts import ordinal, progress_text, trained_epochs_text
from ae.model.config import TrainingConfig
from ae.model.history import History
from ae.training.snapshot import JobSnapshot, JobState, Phase, continued_total


@pytest.mark.parametrize("number, text", [
    (0, "0th"), (1, "1st"), (2, "2nd"), (3, "3rd"), (4, "4th"), (10, "10th"), (11, "11th"), (12, "12th"),
    (13, "13th"), (21, "21st"), (22, "22nd"), (23, "23rd"), (52, "52nd"), (100, "100th"), (101, "101st"),
    (111, "111th"), (112, "112th"), (1002, "1002nd"),
])
def test_ordinal_suffixes(number, text):
    assert ordinal(number) == text


def snapshot(state: JobState, done: float, total: float, planned: int = 30, step: int = 0) -> JobSnapshot:
    phase = Phase.TRAINING if state is JobState.RUNNING else Phase.DONE
    return JobSnapshot(key="k", config=TrainingConfig(epochs=planned), state=state, phase=phase, step=step,
                       steps_per_epoch=100, history=History(epochs_done=done, epochs_total=total, training_seconds=75))


def test_continue_after_a_mid_epoch_stop_counts_whole_epochs():
    """Stopped at 6.27 of 30, then Continue +2: the model trains to 8.27 epochs, and the page
    counts whole epochs ("Epoch 7 of 9": the 9th is the part-epoch) with no "8.27 of 8.27"."""
    stopped = snapshot(JobState.STOPPED, 6.27, 30)
    assert progress_text(stopped, 10_000) == "Stopped after 6.27 of 30 epochs"
    total = continued_total(JobState.STOPPED, True, None, 6.27, extra_epochs=2)
    assert total == pytest.approx(8.27)
    assert progress_text(snapshot(JobState.RUNNING, 6.27, total, step=40), 10_000).startswith("Epoch 7 of 9 · step 40/100")
    assert progress_text(snapshot(JobState.RUNNING, 7.27, total, step=40), 10_000).startswith("Epoch 8 of 9 ")
    assert progress_text(snapshot(JobState.RUNNING, 8.0, total, step=10), 10_000).startswith("Epoch 9 of 9 ")
    finished = snapshot(JobState.FINISHED, 8.27, total)
    assert progress_text(finished, 10_000) == "8.27 epochs (its settings planned 30) · 1 min 15 s of training"
    assert trained_epochs_text(finished) == "8.27 of 30 epochs"
    assert progress_text(snapshot(JobState.STOPPED, 7.5, total), 10_000) == "Stopped after 7.5 epochs (its settings planned 30)"
    # A Continue from a whole number of epochs plans a whole total, and says it.
    assert progress_text(snapshot(JobState.STOPPED, 9.5, 12), 10_000) == "Stopped after 9.5 of 12 epochs (its settings planned 30)"


def test_a_finished_plan_reads_as_whole_epochs():
    assert progress_text(snapshot(JobState.FINISHED, 30, 30), 10_000) == "30 epochs · 1 min 15 s of training"
    assert progress_text(snapshot(JobState.FINISHED, 1, 1, planned=1), 10_000) == "1 epoch · 1 min 15 s of training"
    assert progress_text(snapshot(JobState.FINISHED, 32, 32), 10_000).startswith("32 epochs (its settings planned 30)")


def test_a_failed_run_never_reads_as_trained():
    assert progress_text(snapshot(JobState.FAILED, 2.5, 10, planned=10), 10_000) == "Failed after 2.5 of 10 epochs"
