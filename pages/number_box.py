"""A number input that says in words why a typed value cannot be used."""
from ae.model.config import number_problem


def number_box(container, label: str, low: int, high: int, default: int, key: str, step: int = 1,
               help: str | None = None) -> int | None:
    """A number box that takes whatever is typed and, when it cannot be used, says why right
    below it and returns None (Streamlit's own min/max would keep the old value silently)."""
    value = container.number_input(label, value=default, step=step, key=key, help=help, persist_state="session")
    problem = number_problem(label, value, low, high)
    if problem:
        container.error(problem, icon=":material/error:")
        return None
    return int(value)
