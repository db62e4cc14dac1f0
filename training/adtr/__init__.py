"""ADTR toolkit: make line-like data, train ADTR / ADTR+, evaluate, export int8 TFLite and ONNX."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
