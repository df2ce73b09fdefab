"""Self-supervised objectives, each a thin subclass of :class:`ultrassl.engine.base.PretrainModule`."""
