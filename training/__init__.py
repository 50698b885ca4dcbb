"""charcode.training: corpus, model, trainer, distributed launch, checkpoints, registry, recipes, validation bits per char."""
