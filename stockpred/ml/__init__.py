"""Models: features, LSTM training with honest evaluation, the versioned registry, inference.

Modules that need TensorFlow (`model`, `training`, `predict`) import it lazily through
`stockpred.infra.tf_runtime`; `config`, `features`, `dataset`, `evaluation` and `registry` do
not, so the web process can read the registry.
"""
