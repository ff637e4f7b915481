"""The one error the exporter raises for a model NIR cannot express."""


class ExportError(ValueError):
    """A layer, operation or neuron setting that has no exact NIR equivalent (the message names it)."""
