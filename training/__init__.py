"""charcode.training: corpus, model, trainer, sampling, evaluation and checkpoints."""
