"""The reference article's worked example: an autoencoder on a customer-by-product purchase table.

Rows are customers, columns products, 1 means bought. The model is the article's tiny one:
code h = sigmoid(W x + b), output y = sigmoid(V h + c), loss binary cross-entropy averaged over
the products, trained by plain SGD one customer at a time. Everything is numpy, so a page can
show every number of a step: the input row, the code, the output, the loss, the gradients and
the update. `tests/test_step_by_step.py` checks the gradients against TensorFlow's and against
finite differences. Recommendations rank each customer's unbought products by the model's
reconstructed probability, and say which customers with the nearest codes bought them.

A visitor drives this in the web process, so it is bounded: at most MAX_EPOCHS_PER_CLICK epochs
per request (about 1.3 s on the built-in table) and the last MAX_HISTORY epoch losses kept per
model, older ones dropped and counted.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

PRODUCTS = ("Bread", "Butter", "Jam", "Coffee", "Tea", "Biscuits", "Beer", "Crisps")
CUSTOMERS = ("Ann", "Ben", "Cleo", "Dev", "Eva", "Finn", "Gus", "Hana", "Ivo", "Jo")
# Three groups that buy alike: breakfast (bread, butter, jam, coffee), tea time (tea,
# biscuits, and often milk-free bread), and a party crowd (beer, crisps); a few cross over.
PURCHASES = np.array([
    [1, 1, 1, 1, 0, 0, 0, 0],  # Ann
    [1, 1, 0, 1, 0, 0, 0, 0],  # Ben
    [1, 1, 1, 0, 0, 0, 0, 0],  # Cleo
    [0, 0, 0, 0, 1, 1, 0, 0],  # Dev
    [1, 0, 0, 0, 1, 1, 0, 0],  # Eva
    [0, 0, 0, 0, 1, 0, 0, 0],  # Finn
    [0, 0, 0, 0, 0, 0, 1, 1],  # Gus
    [0, 0, 0, 0, 0, 0, 1, 0],  # Hana
    [0, 0, 0, 1, 0, 0, 1, 1],  # Ivo
    [1, 1, 1, 1, 0, 0, 0, 1],  # Jo
], dtype=np.float64)
CODE_SIZES = (2, 3, 4)
MAX_EPOCHS_PER_CLICK = 1_000
MAX_HISTORY = 2_000  # epoch losses kept for the loss curve; older ones are dropped


class StepLimitError(ValueError):
    """A request beyond the page's bounds, in one sentence."""
EPSILON = 1e-7  # as Keras clips probabilities in its binary cross-entropy


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


@dataclass
class Parameters:
    """Encoder W (code x products), b; decoder V (products x code), c."""

    W: np.ndarray
    b: np.ndarray
    V: np.ndarray
    c: np.ndarray

    @classmethod
    def initial(cls, products: int, code_size: int, seed: int = 0) -> "Parameters":
        """Small random weights (Glorot-uniform, as Keras's Dense), zero biases."""
        rng = np.random.default_rng(seed)
        limit = np.sqrt(6.0 / (products + code_size))
        return cls(rng.uniform(-limit, limit, (code_size, products)), np.zeros(code_size),
                   rng.uniform(-limit, limit, (products, code_size)), np.zeros(products))

    def copy(self) -> "Parameters":
        return Parameters(self.W.copy(), self.b.copy(), self.V.copy(), self.c.copy())


@dataclass
class Step:
    """One customer's SGD step, with every number the page shows."""

    customer: int
    x: np.ndarray
    h: np.ndarray
    y: np.ndarray
    loss: float
    gradients: Parameters
    before: Parameters
    after: Parameters
    learning_rate: float


def forward(params: Parameters, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h = sigmoid(params.W @ x + params.b)
    return h, sigmoid(params.V @ h + params.c)


def loss_of(x: np.ndarray, y: np.ndarray) -> float:
    """Binary cross-entropy averaged over the products (Keras's, clipping included)."""
    y = np.clip(y, EPSILON, 1 - EPSILON)
    return float(-np.mean(x * np.log(y) + (1 - x) * np.log(1 - y)))


def gradients(params: Parameters, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, Parameters]:
    """Backpropagation by hand: the loss's gradient for each weight, for one customer."""
    h, y = forward(params, x)
    output_error = (y - x) / len(x)  # d loss / d (V h + c): sigmoid and cross-entropy cancel
    code_error = (params.V.T @ output_error) * h * (1 - h)  # d loss / d (W x + b)
    grads = Parameters(np.outer(code_error, x), code_error, np.outer(output_error, h), output_error)
    return h, y, loss_of(x, y), grads


def sgd_step(params: Parameters, table: np.ndarray, customer: int, learning_rate: float) -> Step:
    x = np.asarray(table[customer], dtype=np.float64)
    h, y, loss, grads = gradients(params, x)
    after = Parameters(params.W - learning_rate * grads.W, params.b - learning_rate * grads.b,
                       params.V - learning_rate * grads.V, params.c - learning_rate * grads.c)
    return Step(customer, x, h, y, loss, grads, params.copy(), after, learning_rate)


def table_loss(params: Parameters, table: np.ndarray) -> float:
    return float(np.mean([loss_of(row, forward(params, row)[1]) for row in np.asarray(table, dtype=np.float64)]))


@dataclass
class StepByStep:
    """Per-customer SGD over the table in a fixed order, an epoch being one pass."""

    table: np.ndarray
    code_size: int = 2
    learning_rate: float = 1.0
    seed: int = 0
    params: Parameters = None
    position: int = 0  # the next customer
    epochs_done: int = 0
    epoch_losses: list = field(default_factory=list)  # the table's loss after each epoch, the last MAX_HISTORY
    last_step: Step | None = None
    dropped_epochs: int = 0  # losses dropped from the front: epoch_losses[i] is after epoch dropped_epochs + i

    def __post_init__(self) -> None:
        self.table = np.asarray(self.table, dtype=np.float64)
        if self.params is None:
            self.params = Parameters.initial(self.table.shape[1], self.code_size, self.seed)
        if not self.epoch_losses:
            self.epoch_losses = [table_loss(self.params, self.table)]  # before any training

    def next_step(self) -> Step:
        step = sgd_step(self.params, self.table, self.position, self.learning_rate)
        self.params, self.last_step = step.after, step
        self.position += 1
        if self.position == len(self.table):
            self.position, self.epochs_done = 0, self.epochs_done + 1
            self.epoch_losses.append(table_loss(self.params, self.table))
            if len(self.epoch_losses) > MAX_HISTORY:
                del self.epoch_losses[0]
                self.dropped_epochs += 1
        return step

    def run_epochs(self, count: int) -> None:
        """Finish the current epoch, then run `count - 1` more whole ones: at most MAX_EPOCHS_PER_CLICK."""
        if not (isinstance(count, (int, np.integer)) and 1 <= count <= MAX_EPOCHS_PER_CLICK):
            raise StepLimitError(f"Epochs must be a whole number from 1 to {MAX_EPOCHS_PER_CLICK:,} at a time; got {count!r}.")
        target = self.epochs_done + count
        while self.epochs_done < target:
            self.next_step()


def codes(params: Parameters, table: np.ndarray) -> np.ndarray:
    return np.array([forward(params, row)[0] for row in np.asarray(table, dtype=np.float64)])


@dataclass(frozen=True)
class Recommendation:
    product: int
    probability: float
    because: tuple[int, ...]  # the nearest customers (by code) who bought it


def recommendations(params: Parameters, table: np.ndarray, customer: int, neighbours: int = 3) -> list[Recommendation]:
    """The products `customer` has not bought, most likely first by the reconstruction, each
    with the customers nearest in code space who did buy it."""
    table = np.asarray(table, dtype=np.float64)
    _, y = forward(params, table[customer])
    all_codes = codes(params, table)
    distance = np.linalg.norm(all_codes - all_codes[customer], axis=1)
    order = [other for other in np.argsort(distance, kind="stable") if other != customer]
    ranked = []
    for product in np.argsort(-y, kind="stable"):
        if table[customer, product] >= 0.5:
            continue
        buyers = tuple(int(other) for other in order if table[other, product] >= 0.5)[:neighbours]
        ranked.append(Recommendation(int(product), float(y[product]), buyers))
    return ranked


def because_sentence(recommendation: Recommendation, customers, products) -> str:
    product = products[recommendation.product]
    if not recommendation.because:
        return f"{product}: {recommendation.probability:.0%}. Nobody bought it; the model still gives it this much."
    names = [customers[index] for index in recommendation.because]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return (f"{product}: {recommendation.probability:.0%}. The customers whose codes are nearest "
            f"that bought it: {listed}.")
