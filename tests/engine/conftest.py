"""Without a GPU, the Triton scan's tests run its kernel on CPU tensors in Triton's interpreter.

Triton reads ``TRITON_INTERPRET`` when a kernel is defined, and ssmctl defines its kernel on first use (never at
import), so setting it here — before any test of this folder runs — is early enough. Nothing else in the suite
uses triton: the scan's ``backend="auto"`` never picks the kernel for CPU tensors.
"""

from __future__ import annotations

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
