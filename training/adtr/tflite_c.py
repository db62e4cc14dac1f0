"""Runs a .tflite graph on the TFLite C library the daemon ships (through ctypes).

The daemon links libtensorflowlite_c.so from tfjs-tflite-node@0.0.2 (TFLite 2.9.0),
which is older than the Python interpreter; a graph is only deployable if it runs here.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

import numpy as np

_TYPES = {1: np.float32, 2: np.int32, 3: np.uint8, 4: np.int64, 9: np.int8}


class TFLiteCError(RuntimeError):
    pass


def default_library() -> Path:
    """The amd64 library `make deps` unpacks, or ADTR_TFLITE_LIB."""
    env = os.environ.get("ADTR_TFLITE_LIB")
    if env:
        return Path(env)
    root = Path(__file__).resolve().parents[2]
    return root / "third_party" / "tflite" / "linux_amd64" / "libtensorflowlite_c.so"


class _QuantParams(ctypes.Structure):
    _fields_ = [("scale", ctypes.c_float), ("zero_point", ctypes.c_int32)]


_ERRFN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p)


class CInterpreter:
    """One model, one interpreter, batch 1; close() frees them.

    xnnpack (the default, as in the daemon) runs the int8 FULLY_CONNECTED and CONV_2D
    on XNNPACK, which rounds them as the arm64 library and the Python interpreter do.
    """

    def __init__(self, model_path: str | Path, library: str | Path | None = None, threads: int = 1,
                 xnnpack: bool = True) -> None:
        lib_path = Path(library) if library else default_library()
        if not lib_path.is_file():
            raise TFLiteCError(f"{lib_path}: TFLite C library not found (run `make deps`)")
        self.lib = lib = ctypes.CDLL(str(lib_path))
        lib.TfLiteVersion.restype = ctypes.c_char_p
        lib.TfLiteModelCreateFromFile.restype = ctypes.c_void_p
        lib.TfLiteModelCreateFromFile.argtypes = [ctypes.c_char_p]
        lib.TfLiteInterpreterOptionsCreate.restype = ctypes.c_void_p
        lib.TfLiteInterpreterOptionsSetNumThreads.argtypes = [ctypes.c_void_p, ctypes.c_int32]
        lib.TfLiteInterpreterCreate.restype = ctypes.c_void_p
        lib.TfLiteInterpreterCreate.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.TfLiteInterpreterAllocateTensors.argtypes = [ctypes.c_void_p]
        lib.TfLiteInterpreterInvoke.argtypes = [ctypes.c_void_p]
        for name in ("TfLiteInterpreterGetInputTensor", "TfLiteInterpreterGetOutputTensor"):
            getattr(lib, name).restype = ctypes.c_void_p
            getattr(lib, name).argtypes = [ctypes.c_void_p, ctypes.c_int32]
        lib.TfLiteTensorType.argtypes = [ctypes.c_void_p]
        lib.TfLiteTensorNumDims.argtypes = [ctypes.c_void_p]
        lib.TfLiteTensorDim.argtypes = [ctypes.c_void_p, ctypes.c_int32]
        lib.TfLiteTensorByteSize.restype = ctypes.c_size_t
        lib.TfLiteTensorByteSize.argtypes = [ctypes.c_void_p]
        lib.TfLiteTensorQuantizationParams.restype = _QuantParams
        lib.TfLiteTensorQuantizationParams.argtypes = [ctypes.c_void_p]
        lib.TfLiteTensorCopyFromBuffer.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
        lib.TfLiteTensorCopyToBuffer.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
        lib.TfLiteInterpreterOptionsSetErrorReporter.argtypes = [ctypes.c_void_p, _ERRFN, ctypes.c_void_p]
        lib.TfLiteXNNPackDelegateCreate.restype = ctypes.c_void_p
        lib.TfLiteXNNPackDelegateCreate.argtypes = [ctypes.c_void_p]
        lib.TfLiteXNNPackDelegateDelete.argtypes = [ctypes.c_void_p]
        lib.TfLiteInterpreterOptionsAddDelegate.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        for name in ("TfLiteModelDelete", "TfLiteInterpreterOptionsDelete", "TfLiteInterpreterDelete"):
            getattr(lib, name).argtypes = [ctypes.c_void_p]

        self.version = lib.TfLiteVersion().decode()
        self._errors: list[str] = []
        # The reporter gets a printf format and a va_list; the format alone names the problem.
        self._reporter = _ERRFN(lambda _u, fmt, _ap: self._errors.append(fmt.decode(errors="replace")))
        self.model = self.options = self.interp = self.delegate = None
        self.model = lib.TfLiteModelCreateFromFile(str(model_path).encode())
        if not self.model:
            raise TFLiteCError(f"{model_path}: not a TFLite model the C library can read")
        try:
            self.options = lib.TfLiteInterpreterOptionsCreate()
            lib.TfLiteInterpreterOptionsSetNumThreads(self.options, threads)
            lib.TfLiteInterpreterOptionsSetErrorReporter(self.options, self._reporter, None)
            if xnnpack:
                # As the daemon's `xnnpack` delegate (tflite/tflite_linux.go): options
                # {int32 num_threads, uint32 flags} in a larger zeroed buffer, flags = QS8.
                opts = (ctypes.c_int32 * 32)()
                opts[0], opts[1] = (threads if threads > 1 else 0), 1
                self.delegate = lib.TfLiteXNNPackDelegateCreate(ctypes.byref(opts))
                if not self.delegate:
                    raise TFLiteCError(f"{lib_path}: XNNPACK delegate creation failed")
                lib.TfLiteInterpreterOptionsAddDelegate(self.options, self.delegate)
            self.interp = lib.TfLiteInterpreterCreate(self.model, self.options)
            if not self.interp:
                raise TFLiteCError(f"{model_path}: interpreter creation failed: {'; '.join(self._errors)}")
            if lib.TfLiteInterpreterAllocateTensors(self.interp) != 0:
                raise TFLiteCError(f"{model_path}: AllocateTensors failed: {'; '.join(self._errors)}")
        except BaseException:
            self.close()
            raise
        self.input = lib.TfLiteInterpreterGetInputTensor(self.interp, 0)
        self.output = lib.TfLiteInterpreterGetOutputTensor(self.interp, 0)

    def _shape(self, t: int) -> tuple[int, ...]:
        return tuple(self.lib.TfLiteTensorDim(t, i) for i in range(self.lib.TfLiteTensorNumDims(t)))

    def _dtype(self, t: int) -> type:
        code = self.lib.TfLiteTensorType(t)
        if code not in _TYPES:
            raise TFLiteCError(f"tensor type {code} not supported here")
        return _TYPES[code]

    @property
    def input_shape(self) -> list[int]:
        """The input tensor's shape (NHWC), as the Python runners' input_shape."""
        return list(self._shape(self.input))

    @property
    def output_quant(self) -> tuple[float, int]:
        q = self.lib.TfLiteTensorQuantizationParams(self.output)
        return float(q.scale), int(q.zero_point)

    def run(self, image: np.ndarray) -> np.ndarray:
        """One image, shaped like the input tensor without the batch axis, -> raw output."""
        x = np.ascontiguousarray(image.reshape(self._shape(self.input)), dtype=self._dtype(self.input))
        if self.lib.TfLiteTensorCopyFromBuffer(self.input, x.ctypes.data, x.nbytes) != 0:
            raise TFLiteCError("input copy failed: " + "; ".join(self._errors))
        if self.lib.TfLiteInterpreterInvoke(self.interp) != 0:
            raise TFLiteCError("invoke failed: " + "; ".join(self._errors))
        out = np.empty(self._shape(self.output), dtype=self._dtype(self.output))
        if self.lib.TfLiteTensorCopyToBuffer(self.output, out.ctypes.data, out.nbytes) != 0:
            raise TFLiteCError("output copy failed: " + "; ".join(self._errors))
        return out

    def close(self) -> None:
        if self.interp:
            self.lib.TfLiteInterpreterDelete(self.interp)
            self.interp = None
        if self.options:
            self.lib.TfLiteInterpreterOptionsDelete(self.options)
            self.options = None
        if self.model:
            self.lib.TfLiteModelDelete(self.model)
            self.model = None
        if self.delegate:  # after the interpreter that used it
            self.lib.TfLiteXNNPackDelegateDelete(self.delegate)
            self.delegate = None

    def __enter__(self) -> "CInterpreter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
