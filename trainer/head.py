"""Training the Siamese head on embeddings computed once: seconds on a CPU."""
from __future__ import annotations

import keras
import numpy as np

from .networks import siamese_parts


def head_model(siamese: keras.Model) -> keras.Model:
    """A model from two embeddings to the score that shares the Siamese model's distance and head layers."""
    embedding, head = siamese_parts(siamese)
    dim = int(embedding.output_shape[-1])
    a, b = keras.Input((dim,), name="embedding_a"), keras.Input((dim,), name="embedding_b")
    return keras.Model([a, b], head(siamese.get_layer("l1_distance")([a, b])), name="head_on_embeddings")


def adam(learning_rate: float, decay_steps: int = 1000, decay_rate: float = 0.96) -> keras.optimizers.Optimizer:
    """Adam with exponential learning-rate decay and gradient clipping, FaceReg's optimiser."""
    schedule = keras.optimizers.schedules.ExponentialDecay(learning_rate, decay_steps, decay_rate)
    return keras.optimizers.Adam(schedule, clipnorm=1.0)


def fit_head(
    siamese: keras.Model,
    a: np.ndarray,
    b: np.ndarray,
    labels: np.ndarray,
    *,
    epochs: int = 100,
    batch_size: int = 64,
    learning_rate: float = 5e-5,
    seed: int = 0,
    verbose: int | str = "auto",
    callbacks: list[keras.callbacks.Callback] | None = None,
) -> keras.callbacks.History:
    """Fit the head of a Siamese model by binary cross-entropy on pairs of precomputed embeddings."""
    keras.utils.set_random_seed(seed)
    model = head_model(siamese)
    model.compile(optimizer=adam(learning_rate), loss="binary_crossentropy", metrics=["accuracy"])
    return model.fit(
        [np.asarray(a, np.float32), np.asarray(b, np.float32)],
        np.asarray(labels, np.float32).reshape(-1, 1),
        epochs=epochs,
        batch_size=batch_size,
        shuffle=True,
        verbose=verbose,
        callbacks=callbacks,
    )
