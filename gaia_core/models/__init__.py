"""Users' own models: ONNX files imported into GAIA's compact graph format and run as inference tasks.

``onnx_import`` turns an ONNX file into a :class:`~gaia_core.models.graph.Graph`, ``graph`` holds the
format the ``onnx_interp`` WASM task interprets, ``store`` keeps imported models in the node home and
``batches`` splits an input array into tasks and joins their outputs (docs/models.md).
"""
