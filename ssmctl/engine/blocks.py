"""Chunk-by-chunk forward of one input-dependent block (Mamba, Mamba-2, RG-LRU), carrying its states.

Each runner reads a :class:`~ssmctl.models.base.Layer` in its family's checkpoint layout (keys relative to the
block, as ``models/<family>.py`` defines them), computes the block's projections, norms and causal
convolution for one chunk of tokens — with the last ``d_conv − 1`` convolution inputs and the SSM state carried
over from the previous chunk — and runs :func:`~ssmctl.engine.scan.selective_scan`. The family modules
compute whole sequences with zero history; these runners are their chunked counterparts (same formulas, and
tests hold them to the families' ``ltv(u)`` and to transformers' forward).

Every runner exposes the separable decay of its layer, log|Ā_t[h, n]| = −rate_t[h]·a[h, n]
(:attr:`BlockRunner.a`), which the streaming statistics consume.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import UnsupportedSystemError
from ..models import _torch_ops as ops
from ..models.base import Layer
from ..systems.ltv import LTVSystem
from .scan import ScanResult, selective_scan
from .ssd import ssd_preferred

__all__ = ["BlockRunner", "ChunkOutput", "runner_for", "RUNNERS"]


@dataclass
class ChunkOutput:
    """What one block produced for one chunk.

    Attributes
    ----------
    out : Tensor, shape (batch, T, d_model)
        The block's output (its residual stream after the temporal mixer).
    rate : Tensor, shape (batch, T, H)
        Δ_t per channel (RG-LRU: c·r_t).
    n_fallback : int
        Scan columns that took the exact slow path.
    window : dict or None
        For the tokens of a requested window: ``system`` (:class:`LTVSystem` in the family's layout),
        ``states`` (h_t, family layout without the trailing input axis), ``ssm_output`` (C_t h_t + D u_t) and
        ``h_before`` (the state before the window's first token).
    """

    out: torch.Tensor
    rate: torch.Tensor
    n_fallback: int = 0
    window: dict[str, Any] | None = None


def _conv_with_state(x: torch.Tensor, state: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None):
    """Causal depthwise conv of x (batch, T, ch) continuing from the previous inputs ``state`` (batch, k−1, ch).

    ``weight`` is torch's Conv1d layout (ch, 1, k), weight[..., k−1] on the current token. Computed as k shifted
    multiply-adds in the (batch, T, ch) layout: no transposes (a transposing copy costs more than the conv).
    """
    k = weight.shape[-1]
    T = x.shape[1]
    full = torch.cat([state, x], dim=1)  # (batch, k−1+T, ch)
    w = weight[:, 0, :].T.contiguous()  # (k, ch)
    y = full[:, :T] * w[0] if bias is None else torch.addcmul(bias, full[:, :T], w[0])
    for j in range(1, k):  # over the kernel taps, not over tokens
        y.addcmul_(full[:, j:j + T], w[j])
    return y, full[:, T:].clone()


@dataclass
class BlockRunner:
    """Chunked forward of one layer. Build with :func:`runner_for`."""

    layer: Layer
    device: torch.device
    slab: int | None = None
    backend: str = "auto"
    params: dict[str, torch.Tensor] = field(default_factory=dict)

    family = ""

    def __post_init__(self) -> None:
        self.params = {k: v.to(self.device, torch.float32) for k, v in self.layer.params.items()}
        self.used_backend = ""  # the scan that ran last ("native", "tensor" or "ssd")
        self.cfg = self.layer.config
        self.setup()

    def setup(self) -> None:  # pragma: no cover - overridden
        """Derive the family's constants (H, P, N, A, conv sizes) from ``params``; run by ``__post_init__``."""
        raise NotImplementedError

    @property
    def a(self) -> torch.Tensor:
        """Decay constants a ≥ 0 with log|Ā_t[h, n]| = −rate_t[h]·a[h, n], shape (H, Na)."""
        return -self.A

    def init_state(self, batch: int) -> dict[str, torch.Tensor]:
        """Zero states before the first token.

        Parameters
        ----------
        batch : int
            Number of sequences.

        Returns
        -------
        dict of str to Tensor
            ``conv``: the previous conv inputs, (batch, d_conv − 1, conv channels); ``ssm``: h, (batch, H, P, N);
            float32 on the runner's device.
        """
        return {
            "conv": torch.zeros(batch, self.d_conv - 1, self.conv_channels, device=self.device),
            "ssm": torch.zeros(batch, self.H, self.P, self.N, device=self.device),
        }

    def forward(
        self, u: torch.Tensor, state: dict[str, torch.Tensor], t0: int, *, block: int = 8,
        window: tuple[int, int] | None = None,
    ) -> ChunkOutput:
        """Run tokens [t0, t0 + T) of ``u`` (batch, T, d_model); ``state`` is updated in place.

        Parameters
        ----------
        u : Tensor, shape (batch, T, d_model)
            The chunk's block input, float32 on the runner's device.
        state : dict of str to Tensor
            From :meth:`init_state` or the previous chunk; replaced entries carry over to the next chunk.
        t0 : int
            Absolute index of the chunk's first token (RG-LRU resets its state at token 0).
        block : int, default 8
            Tokens per block of the scan's cumulative-sum form (results do not depend on it).
        window : (int, int), optional
            Absolute tokens [start, stop) whose per-token systems and states to return.

        Returns
        -------
        ChunkOutput
            out (batch, T, d_model), rate (batch, T, H) and, for the tokens of ``window`` in this chunk, the
            window dict.
        """
        raise NotImplementedError  # pragma: no cover

    def _scan(self, dt, v, B, C, state, want_states: bool, block: int) -> ScanResult:
        backend, slab = self.backend, self.slab
        if block == 1 and (backend == "ssd" or backend == "auto" and ssd_preferred(self.device, self.A.shape[1],
                                                                                    self.P)):
            # block=1 asks for a strictly causal scan (the driver's search for where a NaN starts): the SSD
            # form's matrix products spread a NaN to earlier tokens of its chunk. Its chunks of tokens are ~16×
            # the tensor form's: slabs keep the tensor form's temporaries at their usual size.
            backend, slab = "tensor", slab or 256
        # rates come from softplus / sigmoid (≥ 0 by construction): no host-side check, which would wait for a GPU
        res = selective_scan(dt, self.A, v, B, C, state["ssm"], block=block, slab=slab,
                             return_states=want_states, backend=backend, check=False)
        state["ssm"] = res.h_last
        self.used_backend = res.backend
        return res

    def _scan_window(self, dt, v, B, C, state, ws: slice, block: int) -> tuple[ScanResult, torch.Tensor]:
        """The chunk's scan keeping every state only for the window's tokens ``ws``: up to three calls, each
        continuing the state of the one before.

        Returns the result (y for all tokens, ``states`` for ``ws`` only) and the state before ``ws.start``. The
        states of a whole chunk would take T·H·P·N numbers: 3.2 GB at Mamba-2 130m size for the 4,096-token
        chunks a GPU takes with the SSD form.
        """
        T = dt.shape[1]
        ys, states, h_before, n_fallback, res = [], None, None, 0, None
        for lo, hi in ((0, ws.start), (ws.start, ws.stop), (ws.stop, T)):
            if lo == hi:
                continue
            inside = lo == ws.start
            if inside:
                h_before = state["ssm"].clone()
            res = self._scan(dt[:, lo:hi], v[:, lo:hi], B[:, lo:hi], C[:, lo:hi], state, inside, block)
            ys.append(res.y)
            states = res.states if inside else states
            n_fallback += res.n_fallback
        y = ys[0] if len(ys) == 1 else torch.cat(ys, dim=1)
        return ScanResult(y=y, h_last=res.h_last, states=states, n_fallback=n_fallback, backend=res.backend), h_before

    @staticmethod
    def _window_slice(t0: int, T: int, window: tuple[int, int] | None) -> slice | None:
        if window is None:
            return None
        lo, hi = max(window[0], t0), min(window[1], t0 + T)
        return slice(lo - t0, hi - t0) if lo < hi else None


class MambaRunner(BlockRunner):
    """S6 / Mamba-1 block: u + out_proj(y ⊙ SiLU(z)); Jamba's optional Δ/B/C RMSNorms are honoured."""

    family = "mamba"

    def setup(self) -> None:
        cfg, p = self.cfg, self.params
        self.H, self.P, self.N = cfg["d_inner"], 1, cfg["d_state"]
        self.d_conv, self.conv_channels = cfg["d_conv"], cfg["d_inner"]
        self.A = -torch.exp(p["mixer.A_log"])  # (d_inner, N)
        self.inner_norms = {k: p.get(f"mixer.{k}_layernorm.weight") for k in ("dt", "b", "c")}
        self.inner_eps = float(cfg.get("inner_norm_eps", cfg["eps"]))

    def _norm(self, x: torch.Tensor, key: str) -> torch.Tensor:
        w = self.inner_norms[key]
        return x if w is None else ops.rms_norm(x, w, self.inner_eps)

    def forward(self, u, state, t0, *, block=8, window=None):
        cfg, p = self.cfg, self.params
        d_inner, N, r = cfg["d_inner"], cfg["d_state"], cfg["dt_rank"]
        b, T = u.shape[:2]
        hidden = ops.rms_norm(u, p["norm.weight"], cfg["eps"])
        x, z = F.linear(hidden, p["mixer.in_proj.weight"], p.get("mixer.in_proj.bias")).chunk(2, dim=-1)
        x, state["conv"] = _conv_with_state(x, state["conv"], p["mixer.conv1d.weight"], p.get("mixer.conv1d.bias"))
        x = F.silu(x)
        delta, B_t, C_t = torch.split(F.linear(x, p["mixer.x_proj.weight"]), [r, N, N], dim=-1)
        delta, B_t, C_t = self._norm(delta, "dt"), self._norm(B_t, "b"), self._norm(C_t, "c")
        dt = F.softplus(F.linear(delta, p["mixer.dt_proj.weight"], p["mixer.dt_proj.bias"]))
        ws = self._window_slice(t0, T, window)
        h_before = state["ssm"].clone() if ws is not None and ws.start == 0 else None
        res = self._scan(dt, (dt * x)[..., None], B_t[:, :, None], C_t[:, :, None], state, ws is not None, block)
        y = res.y[..., 0] + p["mixer.D"] * x
        out = u + F.linear(y * F.silu(z), p["mixer.out_proj.weight"], p.get("mixer.out_proj.bias"))
        win = None
        if ws is not None:
            dtw, xw, Bw, Cw = dt[:, ws], x[:, ws], B_t[:, ws], C_t[:, ws]
            w = dtw.shape[1]
            system = LTVSystem(
                lam=torch.exp(dtw[..., None] * self.A), B=(dtw[..., None] * Bw[:, :, None, :])[..., None],
                C=Cw[:, :, None, None, :].expand(b, w, d_inner, 1, N), D=p["mixer.D"][:, None, None], dt=dtw,
                output="real", inputs=xw[..., None], meta={"family": self.family, "layer": self.layer.index},
            )
            states = res.states[:, ws, :, 0]
            win = {"system": system, "states": states, "ssm_output": y[:, ws], "layer_output": out[:, ws],
                   "h_before": _state_before(h_before, res.states[:, :, :, 0], ws)}
        return ChunkOutput(out=out, rate=dt, n_fallback=res.n_fallback, window=win)


class Mamba2Runner(BlockRunner):
    """Mamba-2 block: u + out_proj(GatedRMSNorm(y, z)); one scalar decay per head."""

    family = "mamba2"

    def setup(self) -> None:
        cfg, p = self.cfg, self.params
        self.H, self.P, self.N = cfg["nheads"], cfg["headdim"], cfg["d_state"]
        self.G = cfg["ngroups"]
        self.d_conv = cfg["d_conv"]
        self.conv_channels = cfg["d_inner"] + 2 * self.G * self.N
        self.A = -torch.exp(p["mixer.A_log"])[:, None]  # (nheads, 1)
        D = p["mixer.D"]
        self.D = D.view(self.H, self.P) if cfg["D_has_hdim"] else D[:, None].expand(self.H, self.P)

    def forward(self, u, state, t0, *, block=8, window=None):
        cfg, p = self.cfg, self.params
        d_inner, H, P, G, N = cfg["d_inner"], self.H, self.P, self.G, self.N
        b, T = u.shape[:2]
        hidden = ops.rms_norm(u, p["norm.weight"], cfg["eps"])
        zxbcdt = F.linear(hidden, p["mixer.in_proj.weight"], p.get("mixer.in_proj.bias"))
        z, xBC, delta = torch.split(zxbcdt, [d_inner, d_inner + 2 * G * N, H], dim=-1)
        xBC, state["conv"] = _conv_with_state(
            xBC, state["conv"], p["mixer.conv1d.weight"], p.get("mixer.conv1d.bias")
        )
        x, B_t, C_t = torch.split(F.silu(xBC), [d_inner, G * N, G * N], dim=-1)
        lo, hi = cfg["dt_limit"]
        dt = F.softplus(delta + p["mixer.dt_bias"]).clamp(min=lo, max=hi)  # (b, T, H)
        xh = x.reshape(b, T, H, P)
        ws = self._window_slice(t0, T, window)
        scan_in = (dt, dt[..., None] * xh, B_t.view(b, T, G, N), C_t.view(b, T, G, N), state)
        if ws is None:
            res = self._scan(*scan_in, False, block)
        else:  # states of the window's tokens only (res.states holds those)
            res, h_before = self._scan_window(*scan_in, ws, block)
        y = res.y + self.D * xh  # (b, T, H, P)
        gated = y.reshape(b, T, d_inner) * F.silu(z)
        groups = gated.view(b, T, G, d_inner // G)
        normed = groups * torch.rsqrt(groups.pow(2).mean(-1, keepdim=True) + cfg["norm_eps"])
        normed = normed.view(b, T, d_inner) * p["mixer.norm.weight"]
        out = u + F.linear(normed, p["mixer.out_proj.weight"], p.get("mixer.out_proj.bias"))
        win = None
        if ws is not None:
            dtw, xw = dt[:, ws], xh[:, ws]
            w = dtw.shape[1]
            Bh = B_t.view(b, T, G, N)[:, ws].repeat_interleave(H // G, dim=2)  # (b, w, H, N)
            Ch = C_t.view(b, T, G, N)[:, ws].repeat_interleave(H // G, dim=2)
            system = LTVSystem(
                lam=torch.exp(dtw * self.A[:, 0])[..., None, None].expand(b, w, H, P, N),
                B=(dtw[..., None] * Bh)[:, :, :, None, :, None].expand(b, w, H, P, N, 1),
                C=Ch[:, :, :, None, None, :].expand(b, w, H, P, 1, N), D=self.D[..., None, None],
                dt=dtw[..., None].expand(b, w, H, P), output="real", inputs=xw[..., None],
                meta={"family": self.family, "layer": self.layer.index},
            )
            win = {"system": system, "states": res.states, "ssm_output": y[:, ws], "layer_output": out[:, ws],
                   "h_before": h_before}
        return ChunkOutput(out=out, rate=dt, n_fallback=res.n_fallback, window=win)


_PRE = "temporal_block."
_LRU = "temporal_block.rg_lru."


class RGLRURunner(BlockRunner):
    """RG-LRU temporal block: u + linear_out(h ⊙ GELU(linear_y(û))); state reset at token 0."""

    family = "rglru"

    def setup(self) -> None:
        cfg, p = self.cfg, self.params
        self.H, self.P, self.N = cfg["lru_width"], 1, 1
        self.d_conv, self.conv_channels = cfg["d_conv"], cfg["lru_width"]
        self.c = float(cfg["c"])
        self.A = -F.softplus(p[_LRU + "recurrent_param"])[:, None]  # log a, (w, 1)

    def forward(self, u, state, t0, *, block=8, window=None):
        cfg, p = self.cfg, self.params
        w, heads = cfg["lru_width"], cfg["num_heads"]
        b, T = u.shape[:2]
        hidden = ops.rms_norm(u, p["temporal_pre_norm.weight"], cfg["eps"], unit_offset=True)
        y_branch = F.gelu(F.linear(hidden, p[_PRE + "linear_y.weight"], p[_PRE + "linear_y.bias"]), approximate="tanh")
        x = F.linear(hidden, p[_PRE + "linear_x.weight"], p[_PRE + "linear_x.bias"])
        x, state["conv"] = _conv_with_state(x, state["conv"], p[_PRE + "conv_1d.weight"], p[_PRE + "conv_1d.bias"])
        xh = x.view(b, T, heads, w // heads)
        gate_i = torch.sigmoid(
            torch.einsum("blhi,hij->blhj", xh, p[_LRU + "input_gate_weight"]) + p[_LRU + "input_gate_bias"]
        ).reshape(b, T, w)
        gate_r = torch.sigmoid(
            torch.einsum("blhi,hij->blhj", xh, p[_LRU + "recurrent_gate_weight"]) + p[_LRU + "recurrent_gate_bias"]
        ).reshape(b, T, w)
        rate = self.c * gate_r
        log_a = rate * self.A[:, 0]
        multiplier = torch.sqrt(1.0 - torch.exp(2.0 * log_a))
        if t0 == 0:
            multiplier[:, 0] = 1.0  # segment start: the reference resets the state and feeds i_0 x_0 unscaled
        bbar = multiplier * gate_i
        ones = torch.ones(b, T, 1, 1, device=self.device)
        ws = self._window_slice(t0, T, window)
        h_before = state["ssm"].clone() if ws is not None and ws.start == 0 else None
        res = self._scan(rate, (bbar * x)[..., None], ones, ones, state, ws is not None, block)
        h = res.y[..., 0]
        out = u + F.linear(h * y_branch, p[_PRE + "linear_out.weight"], p[_PRE + "linear_out.bias"])
        win = None
        if ws is not None:
            n = rate[:, ws].shape[1]
            system = LTVSystem(
                lam=torch.exp(log_a[:, ws])[..., None], B=bbar[:, ws][..., None, None],
                C=torch.ones((), device=self.device).expand(b, n, w, 1, 1),
                D=torch.zeros((), device=self.device).expand(w, 1, 1), dt=rate[:, ws], output="real",
                inputs=x[:, ws][..., None], meta={"family": self.family, "layer": self.layer.index},
            )
            win = {"system": system, "states": res.states[:, ws, :, 0], "ssm_output": h[:, ws],
                   "layer_output": out[:, ws], "h_before": _state_before(h_before, res.states[:, :, :, 0], ws)}
        return ChunkOutput(out=out, rate=rate, n_fallback=res.n_fallback, window=win)


def _state_before(h0: torch.Tensor | None, states: torch.Tensor, ws: slice) -> torch.Tensor:
    """The state just before the window's first token of this chunk (the chunk's h0 when it starts there)."""
    if ws.start == 0:
        return h0 if h0.shape[1:] == states.shape[2:] else h0.reshape(states.shape[:1] + states.shape[2:])
    return states[:, ws.start - 1]


RUNNERS: dict[str, type[BlockRunner]] = {"mamba": MambaRunner, "mamba2": Mamba2Runner, "rglru": RGLRURunner}


def runner_for(layer: Layer, device: Any, slab: int | None = None, backend: str = "auto") -> BlockRunner:
    """The chunked runner of ``layer`` on ``device`` (parameters copied there in float32).

    Parameters
    ----------
    layer : Layer
        A layer of an input-dependent family (``"mamba"``, ``"mamba2"`` or ``"rglru"``).
    device : str or torch.device
        Where the runner keeps its parameters and runs.
    slab : int or None, default None
        Tokens the scan handles at once inside a chunk; None takes the whole chunk.
    backend : {"auto", "tensor", "native", "ssd", "triton"}, default "auto"
        Which scan runs (see :func:`~ssmctl.engine.scan.selective_scan`; "ssd" for Mamba-2 layers only).

    Returns
    -------
    BlockRunner
        The family's runner (:data:`RUNNERS`).

    Raises
    ------
    UnsupportedSystemError
        When the layer's family has no runner (every LTI family).
    """
    try:
        cls = RUNNERS[layer.family]
    except KeyError:
        raise UnsupportedSystemError(
            f"simulation supports the input-dependent families {', '.join(RUNNERS)}; layer {layer.index} is "
            f"{layer.family!r}" + (" (time-invariant: use layer.system())" if layer.kind == "LTI" else "")
        ) from None
    return cls(layer=layer, device=torch.device(device), slab=slab, backend=backend)
