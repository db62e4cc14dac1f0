"""ADTR toolkit: make line-like data, train ADTR / ADTR+, evaluate, export int8 TFLite and ONNX."""

import os

# Same seed, same model. Measured here: two trainings from one seed differed after one
# epoch unless TensorFlow ran one inter-op thread AND Python's string hashing was fixed
# (PYTHONHASHSEED=0, which only works from the interpreter's start: `python -m adtr`
# re-executes itself with it, the Makefile sets it for tests); op determinism alone
# was not enough. The inter-op thread count must be set before TensorFlow starts.
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
