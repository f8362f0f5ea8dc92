"""The traced serving function answers exactly what Keras's predict_on_batch answers."""

from __future__ import annotations

import numpy as np

from stockpred.ml.model import build_model, seed_everything, serving_function


def test_the_serving_function_matches_predict_on_batch_for_any_batch_size() -> None:
    seed_everything(7)
    model = build_model(
        window=20, n_features=4, horizon=5, units=(8, 4), dropout=0.2, learning_rate=0.001
    )
    serve = serving_function(model)
    rng = np.random.default_rng(7)
    for batch in (1, 3, 17):
        x = rng.normal(size=(batch, 20, 4)).astype("float32")
        served = serve(x)
        assert isinstance(served, np.ndarray) and served.shape == (batch, 5)
        np.testing.assert_allclose(served, model.predict_on_batch(x), rtol=1e-5, atol=1e-6)
    # float64 input (what numpy arithmetic yields) is accepted as the model's float32
    x64 = rng.normal(size=(2, 20, 4))
    np.testing.assert_allclose(serve(x64), model.predict_on_batch(x64.astype("float32")), atol=1e-6)
    # a tensor made once (LoadedModel.model_input) is taken as it is
    from stockpred.infra.tf_runtime import tensorflow

    x32 = rng.normal(size=(1, 20, 4)).astype("float32")
    np.testing.assert_allclose(
        serve(tensorflow().constant(x32)), model.predict_on_batch(x32), atol=1e-6
    )
