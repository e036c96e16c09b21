"""Test-only re-statements of the DSF authors' mixers, for comparison — not package code.

Each forward below restates, in plain torch, the forward pass of a mixer in the authors' repositories
(IntelligentControlSystems/dsf-mqar ``zoology/mixers/attention.py``, ``lstm.py``, ``mamba.py``; jsie7/ssm-benchmark
``models/transformer.py``), written from reading that code: the same projections, the same einsum masks, the
−1e4 additive softmax mask, a sequential loop in place of their parallel scans. ssmctl's families are computed
differently (log-space normalizers, the DSF recurrence, cumulative-sum Φ) and are held to these.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _split_heads(layer_params, x, d_qk, num_heads, d_model):
    qk = F.linear(x, layer_params["Wqk.weight"], layer_params.get("Wqk.bias"))
    v = F.linear(x, layer_params["Wv.weight"], layer_params.get("Wv.bias"))
    b, L = x.shape[:2]
    qk = qk.view(b, L, 2, num_heads, d_qk // num_heads)
    v = v.view(b, L, num_heads, d_model // num_heads)
    q, k = qk.unbind(dim=2)
    return q, k, v


def mha_forward(params, x, *, d_qk, num_heads, lin_att):
    """dsf-mqar ``MHA.forward`` with ``SelfAttention`` (softmax) or ``SelfLinAttention`` (linear), eval mode."""
    d_model = x.shape[-1]
    q, k, v = _split_heads(params, x, d_qk, num_heads, d_model)
    L = x.shape[1]
    if lin_att:
        q, k = F.elu(q) + 1, F.elu(k) + 1
        scores = torch.einsum("bthd,bshd->bhts", q, k)
        scores = scores * torch.tril(torch.ones(L, L, dtype=scores.dtype))
        attention = scores / scores.sum(dim=-1)[..., None]
    else:
        scale = 1.0 / math.sqrt(q.shape[-1])
        scores = torch.einsum("bthd,bshd->bhts", q, k * scale)
        scores = scores + torch.triu(torch.full((L, L), -10000.0, dtype=scores.dtype), 1)
        attention = torch.softmax(scores, dim=-1)
    out = torch.einsum("bhts,bshd->bthd", attention, v)
    return F.linear(out.reshape(*x.shape[:2], -1), params["out_proj.weight"], params["out_proj.bias"])


def mhna_forward(params, x, *, d_qk, num_heads, norm_fn="exp"):
    """ssm-benchmark ``MHNA.forward`` with ``SelfNormAttention2`` (dsf-mqar's ``MHNA`` is the norm_fn="exp" case)."""
    d_model = x.shape[-1]
    q, k, v = _split_heads(params, x, d_qk, num_heads, d_model)
    n = F.linear(x, params["Wn.weight"], params.get("Wn.bias"))
    inv = {"exp": lambda t: torch.exp(-t), "softplus": lambda t: 1 / F.softplus(t),
           "sigmoid": lambda t: 1 + torch.exp(-t)}[norm_fn]
    kv = torch.cumsum(torch.einsum("bshd,bsht->bshdt", k, v), dim=1)
    out = torch.einsum("bshd,bshdt->bsht", q, kv) * inv(n)[..., None]
    return F.linear(out.reshape(*x.shape[:2], -1), params["out_proj.weight"], params["out_proj.bias"])


def qlstm_forward(params, x, *, reversed_sigmoid):
    """dsf-mqar ``qLSTM.forward`` with a sequential loop in place of accelerated_scan."""
    T = x.shape[1]
    gate, xx = F.linear(x, params["input.weight"]).chunk(2, dim=-1)
    conv_w = params["conv.weight"]
    xx = F.conv1d(xx.mT, conv_w, params["conv.bias"], padding=conv_w.shape[-1] - 1, groups=conv_w.shape[0])
    xx = xx[..., :T].mT
    forget, inp, output = F.linear(xx, params["gates.weight"], params["gates.bias"]).chunk(3, dim=-1)
    if reversed_sigmoid:
        alpha = torch.pow(torch.sigmoid(-forget), F.relu(params["alpha"]))
    else:
        alpha = forget.sigmoid()
    xx = inp.sigmoid() * xx
    h = torch.zeros_like(xx[:, 0])
    hs = []
    for t in range(T):
        h = alpha[:, t] * h + xx[:, t]
        hs.append(h)
    h = output.sigmoid() * torch.stack(hs, dim=1)
    return F.linear(F.gelu(gate) * h, params["output.weight"])


def s6_forward(params, x, *, ssd: bool):
    """dsf-mqar ``S6.forward`` / ``S6_2.forward`` (bare selective scan, no conv, no gate), sequential scan."""
    b, L, d = x.shape
    if ssd:
        A = -torch.exp(params["A_log"] * params["Id"])
        N = A.shape[1]
        dt, B, C = torch.split(F.linear(x, params["x_proj.weight"]), [1, N, N], dim=-1)
        dt = dt.repeat_interleave(d, dim=-1)
    else:
        A = -torch.exp(params["A_log"])
        N = A.shape[1]
        r = params["dt_proj.weight"].shape[1]
        dt, B, C = torch.split(F.linear(x, params["x_proj.weight"]), [r, N, N], dim=-1)
        dt = F.linear(dt, params["dt_proj.weight"])
    delta = F.softplus(dt + params["dt_proj.bias"])
    h = torch.zeros(b, d, N, dtype=x.dtype)
    ys = []
    for t in range(L):
        h = torch.exp(delta[:, t, :, None] * A) * h + delta[:, t, :, None] * B[:, t, None, :] * x[:, t, :, None]
        ys.append((h * C[:, t, None, :]).sum(-1) + params["D"] * x[:, t])
    y = torch.stack(ys, dim=1)
    return F.linear(y, params["out_proj.weight"], params.get("out_proj.bias"))


def rglru_forward(params, x):
    """jsie7/ssm-benchmark ``RGLRU.forward`` (models/hawk.py) with a sequential loop in place of accelerated_scan."""
    T = x.shape[1]
    gate, xx = F.linear(x, params["input.weight"]).chunk(2, dim=-1)
    conv_w = params["conv.weight"]
    xx = F.conv1d(xx.mT, conv_w, params["conv.bias"], padding=conv_w.shape[-1] - 1, groups=conv_w.shape[0])
    xx = xx[..., :T].mT
    forget, inp = F.linear(xx, params["gates.weight"], params["gates.bias"]).chunk(2, dim=-1)
    alpha = (params["alpha_log_scale"] * F.softplus(params["forget_base"]) * forget.sigmoid()).exp()
    beta = (1 - alpha**2 + 1e-6).sqrt()
    xx = beta * inp.sigmoid() * xx
    h = torch.zeros_like(xx[:, 0])
    hs = []
    for t in range(T):
        h = alpha[:, t] * h + xx[:, t]
        hs.append(h)
    return F.linear(F.gelu(gate) * torch.stack(hs, dim=1), params["output.weight"])
