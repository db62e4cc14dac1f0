"""ADTR toolkit: make line-like data, train ADTR / ADTR+, evaluate, export int8 TFLite and ONNX."""

__version__ = "0.1.0"
