"""Device payload decoders, one module per format (registered as `cityos.decoders`)."""
