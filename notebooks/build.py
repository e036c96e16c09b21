"""Build and execute the notebooks so that what they show is real output.

    python notebooks/build.py                          # writes notebooks/*.ipynb with fresh outputs
    python notebooks/build.py checkpoints.ipynb        # only the named notebooks
    python notebooks/build.py --out DIR                # somewhere else

Each notebook is a list of cells below; tests/test_notebooks.py executes the same cells. The kernel finds
ssmctl through PYTHONPATH (the repository root is put first), so no install is needed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import textwrap
import time

import nbformat
from nbclient import NotebookClient

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

QUICKSTART = [
    ("md", "# ssmctl quickstart\n\nEvery layer of a deep SSM becomes a linear system; every analysis is a function of systems."),
    ("code", "import numpy as np\nimport matplotlib.pyplot as plt\nimport ssmctl\n%matplotlib inline"),
    ("md", "## An S4D layer, freshly initialized\n`layer.system()` is a `DiagonalLTI` with one SISO system per channel (batch dim H)."),
    ("code", "model = ssmctl.init('s4d', d_model=64, d_state=32, n_layers=2, seed=0)\nlayer = model.layers[0]\nsys = layer.system()\nsys"),
    ("code", "fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), layout='constrained')  # room for the colour bar\nssmctl.plot.eigenvalues(layer, ax=axes[0])\nssmctl.plot.impulse(sys[:4], L=400, ax=axes[1]);"),
    ("md", "Norms and how many states each channel really uses (Hankel singular values above 1e-3·σ₁):"),
    ("code", "h2 = ssmctl.h2_norm(sys)\nhinf = ssmctl.hinf_norm(sys)\nhsv = ssmctl.hankel_singular_values(sys)\nused = (hsv > 1e-3 * hsv[:, :1]).sum(axis=1)\nprint('H2   ', np.round(h2[:6], 4))\nprint('Hinf ', np.round(hinf[:6], 4))\nprint('states used', used[:6], 'of', sys.n_states)"),
    ("code", "ssmctl.plot.bode(sys[:3]);"),
    ("md", "## The same channel in python-control\n`to_control` builds the real realization and translates the time convention."),
    ("code", "import control\ncs = ssmctl.to_control(sys[0])\nprint(cs.nstates, 'states; python-control H2 =', round(control.norm(cs, 2), 6), ' ssmctl H2 =', round(float(h2[0]), 6))"),
    ("md", "## Input-dependent layers: Mamba\n`layer.ltv(u)` gives Ā_t, B̄_t, C_t, Δ_t for an input; `layer.frozen(u, t)` the frozen-time LTI system."),
    ("code", "mamba = ssmctl.init('mamba', d_model=64, n_layers=1, seed=0)\nu = np.random.default_rng(0).standard_normal((1, 128, 64)).astype(np.float32)\nltv = mamba.layers[0].ltv(u)\nabs_lam = np.abs(np.asarray(ltv.lam))\nprint('|Ā_t| min/median/max:', abs_lam.min().round(4), np.median(abs_lam).round(4), abs_lam.max().round(4))\nfrozen = mamba.layers[0].frozen(u, 64)\nprint(frozen)\nprint('median memory horizon at t=64:', np.median(ssmctl.memory_horizon(frozen)).round(1), 'tokens')"),
    ("code", "ssmctl.plot.eigenvalues(mamba.layers[0], title='mamba: Ā_t over a random input');"),
]


_SETUP = (
    "import os, tempfile, warnings\n"
    "warnings.filterwarnings('ignore', message='IProgress not found')  # tqdm, imported by transformers\n"
    "import numpy as np\n"
    "import torch\n"
    "import matplotlib.pyplot as plt\n"
    "import transformers\n"
    "import ssmctl\n"
    "from ssmctl.report import format_table\n"
    "\n"
    "torch.set_num_threads(1)  # on a shared CPU, idle OpenMP threads wait on busy cores\n"
    "transformers.logging.set_verbosity_error()\n"
    "transformers.logging.disable_progress_bar()\n"
    "%matplotlib inline\n"
    "plt.rcParams['figure.dpi'] = 72"
)

LTV_SIMULATION = [
    ("md", "# Long inputs: Mamba as a linear time-varying system\n\n"
     "Channel by channel, a Mamba layer is the linear recurrence\n\n"
     "$$h_t = \\bar A_t h_{t-1} + \\bar B_t u_t,\\qquad y_t = C_t h_t + D u_t,\\qquad \\bar A_t = e^{\\Delta_t A}.$$\n\n"
     "$A$ is fixed (diagonal, negative) but the step size $\\Delta_t$ is computed from the input, so the eigenvalues "
     "$|\\bar A_t|$ move token by token: near 1 the channel holds its state, near 0 it forgets. "
     "`ssmctl.simulate` runs a model over a long input chunk by chunk and keeps, per layer, statistics of these "
     "eigenvalues whose size does not grow with the input length.\n\n"
     "The models here are **randomly initialized** (built from a config: no download, no training). The plots show "
     "the dynamics of an initialization, not of a trained model."),
    ("code", _SETUP),
    ("md", "## A small checkpoint\n`save_pretrained` writes the folder a hub download would hold; `ssmctl.load` reads "
     "it without executing code and keeps the embedding matrix, so `simulate` takes token ids."),
    ("code", "workdir = tempfile.TemporaryDirectory()  # deleted in the last cell\n"
     "torch.manual_seed(0)\n"
     "config = transformers.MambaConfig(hidden_size=128, num_hidden_layers=4, state_size=16, vocab_size=1000)\n"
     "mamba_path = os.path.join(workdir.name, 'mamba-tiny')\n"
     "transformers.MambaForCausalLM(config).save_pretrained(mamba_path)\n"
     "model = ssmctl.load(mamba_path)\n"
     "print(model, '| inner channels:', model.layers[0].config['d_inner'],\n"
     "      '| states per channel:', model.layers[0].config['d_state'])"),
    ("md", "## 8000 random tokens\n"
     "`device=\"auto\"` (the default) runs on CUDA when torch sees a GPU. `scan=\"auto\"` picks the `\"native\"` "
     "scan on the CPU (a small C kernel, compiled on first use, that runs the recurrence token after token with each "
     "channel's state in cache) and the `\"tensor\"` scan elsewhere (chunked cumulative sums, any device); both "
     "compute the same recurrence. `res.scan_backend` says which one ran."),
    ("code", "rng = np.random.default_rng(0)\n"
     "tokens = rng.integers(0, 1000, 8000)\n"
     "res = ssmctl.simulate(model, tokens)\n"
     "print(f'{res.n_tokens} tokens on {res.device}, scan {res.scan_backend!r}, {res.tokens_per_second:,.0f} tokens/s')"),
    ("md", "Per layer: $|\\bar A_t|$ over tokens, channels and states; the median step size; the frozen-time memory "
     "horizon (tokens until $|\\bar A_t|^k = 0.01$); and the norm of the transition product "
     "$\\bar A_t\\cdots\\bar A_{t-\\ell+1}$ of the slowest mode, averaged over $t$ and channels, at lag $\\ell$: "
     "how much of an input is left $\\ell$ tokens later."),
    ("code", "summary = res.summary()\n"
     "lags = summary['layers'][0]['transition_decay']['lags']\n"
     "rows = [dict(layer=r['index'], channels=r['channels'], abs_min=r['abs_min'], abs_med=r['abs_median'],\n"
     "             abs_max=r['abs_max'], dt_med=r['dt_median'], mem_med=r['memory_horizon_median'],\n"
     "             **{f'decay{l}': r['transition_decay']['norm_mean'][lags.index(l)] for l in (16, 1024)})\n"
     "        for r in summary['layers']]\n"
     "print(format_table(rows, list(rows[0]), ['layer', 'channels', '|Ā| min', '|Ā| median', '|Ā| max', 'Δ median',\n"
     "                                         'memory median', '‖ΠĀ‖ lag 16', '‖ΠĀ‖ lag 1024']))"),
    ("md", "`simulation_figure` draws four panels per layer: $|\\bar A_t|$ of each channel's slowest mode over tokens "
     "(a horizontal stripe is a channel whose memory barely depends on the input; speckle is input dependence), "
     "the histogram of $\\Delta_t$ over tokens and channels (its spread is how far the input moves the "
     "eigenvalues), the frozen-time memory horizon per token, and the transition-product decay discussed below."),
    ("code", "ssmctl.plot.simulation_figure(res, layers=[0, 3]);"),
    ("md", "## Full traces in a window\n"
     "`window=(start, stop)` keeps every per-token quantity of those tokens in every layer. "
     "`res.windows[i]['system']` is an `LTVSystem`: `lam` holds $\\bar A_t$ (batch, tokens, channels, states) and "
     "`dt` holds $\\Delta_t$; `states`, `ssm_output` and `layer_output` are there too. The input below switches "
     "from random tokens to one token repeated at token 512, and the window straddles the switch: a constant "
     "input gives a constant $\\Delta_t$, so after a transient of a few tokens the layer is an LTI system. "
     "Shown: the slowest mode of the four channels whose $|\\bar A_t|$ varies most."),
    ("code", "switch = np.concatenate([rng.integers(0, 1000, 512), np.full(512, 7)])\n"
     "res_w = ssmctl.simulate(model, switch, window=(448, 576))\n"
     "w = res_w.windows[0]\n"
     "ltv = w['system']\n"
     "t = np.arange(w['start'], w['stop'])\n"
     "slowest = ltv.lam[0].abs().amax(-1).numpy()     # (tokens, channels): |Ā_t| of each channel's slowest mode\n"
     "dt = ltv.dt[0].numpy()                          # (tokens, channels)\n"
     "ch = np.argsort(slowest.std(0))[-4:]\n"
     "fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))\n"
     "axes[0].plot(t, slowest[:, ch], lw=1)\n"
     "axes[0].set_ylabel('|Ā_t| (slowest mode)')\n"
     "axes[1].semilogy(t, dt[:, ch], lw=1)\n"
     "axes[1].set_ylabel('Δ_t')\n"
     "for ax in axes:\n"
     "    ax.axvline(512, color='k', ls='--', lw=0.8)\n"
     "    ax.set_xlabel('token t')\n"
     "axes[0].legend([f'channel {c}' for c in ch], fontsize=7)\n"
     "fig.tight_layout()"),
    ("md", "Any token of the window is an ordinary LTI system once frozen: `ltv.frozen(k)` (k counts from the window "
     "start) is a `DiagonalLTI`, so every LTI analysis applies, e.g. the memory horizon before and after the "
     "switch:"),
    ("code", "for k in (0, 127):\n"
     "    frozen = ltv.frozen(k)\n"
     "    print(f'token {w[\"start\"] + k}: median memory horizon {np.median(ssmctl.memory_horizon(frozen)):.1f} tokens')"),
    ("md", "## Mamba-2 side by side\n"
     "Mamba-2 shares one $\\Delta_t$ and one scalar $A$ per head: $\\bar A_t$ is a scalar times the identity on each "
     "head's states, so a layer has as many distinct eigenvalues per token as heads (8 here) instead of "
     "channels × states."),
    ("code", "torch.manual_seed(0)\n"
     "config2 = transformers.Mamba2Config(hidden_size=128, num_hidden_layers=4, state_size=16, vocab_size=1000,\n"
     "                                    num_heads=8, head_dim=32, n_groups=1)\n"
     "mamba2_path = os.path.join(workdir.name, 'mamba2-tiny')\n"
     "transformers.Mamba2ForCausalLM(config2).save_pretrained(mamba2_path)\n"
     "model2 = ssmctl.load(mamba2_path)\n"
     "res2 = ssmctl.simulate(model2, tokens)\n"
     "print(model2, f'| scan {res2.scan_backend!r}, {res2.tokens_per_second:,.0f} tokens/s')\n"
     "rows = [dict(family=r.family, layer=i, channels=r.stats[i].n_channels, abs_med=r.stats[i].abs_quantiles[0.5],\n"
     "             dt_med=r.stats[i].rate_quantiles[0.5], mem_med=r.stats[i].memory_horizon_quantiles[0.5])\n"
     "        for r in (res, res2) for i in r.layers]\n"
     "print(format_table(rows, list(rows[0]), ['family', 'layer', 'channels', '|Ā| median', 'Δ median', 'memory median']))"),
    ("code", "fig, axes = plt.subplots(2, 3, figsize=(15, 6.4))\n"
     "for row, r in zip(axes, (res, res2)):\n"
     "    s = r.stats[0]\n"
     "    ssmctl.plot.dt_histogram(s, ax=row[0], title=f'{r.family} layer 0: Δ_t')\n"
     "    ssmctl.plot.memory_trace(s, ax=row[1], title=f'{r.family} layer 0: memory horizon')\n"
     "    ssmctl.plot.transition_decay(s, ax=row[2], title=f'{r.family} layer 0: transition products')\n"
     "fig.tight_layout()"),
    ("md", "## Memory the frozen eigenvalues get wrong\n"
     "A frozen-time reading holds $\\bar A_t$ fixed: an input from $\\ell$ tokens ago survives as "
     "$|\\bar A_t|^\\ell$. The system really applies the product $\\bar A_t\\bar A_{t-1}\\cdots\\bar A_{t-\\ell+1}$. "
     "`res.stats[i]` keeps both, averaged over $t$ (slowest mode per channel, mean over channels): `decay_mean` "
     "(products) and `frozen_mean` ($|\\bar A_t|^\\ell$) at `lags`. Against the random tokens above, an input of "
     "one token repeated separates the effect of the time variation."),
    ("code", "constant = np.full(8000, 7)\n"
     "runs = {('mamba', 'random tokens'): res, ('mamba2', 'random tokens'): res2,\n"
     "        ('mamba', 'one token repeated'): ssmctl.simulate(model, constant, layers=[0]),\n"
     "        ('mamba2', 'one token repeated'): ssmctl.simulate(model2, constant, layers=[0])}\n"
     "fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))\n"
     "for ax, family in zip(axes, ('mamba', 'mamba2')):\n"
     "    for inp, color in (('random tokens', 'C0'), ('one token repeated', 'C1')):\n"
     "        s = runs[family, inp].stats[0]\n"
     "        ax.loglog(s.lags, s.decay_mean, 'o-', color=color, ms=3, label=f'{inp}: products')\n"
     "        ax.loglog(s.lags, s.frozen_mean, '^:', color=color, ms=4, label=f'{inp}: frozen |Ā_t|^ℓ')\n"
     "        products, frozen = s.decay_at(1024)\n"
     "        print(f'{family:6s} layer 0, {inp:18s} lag 1024: products {products:.2e}, frozen {frozen:.2e}')\n"
     "    ax.set_xscale('log', base=2)\n"
     "    ax.set_xlabel('lag ℓ (tokens)')\n"
     "    ax.set_title(f'{family} layer 0')\n"
     "    ax.legend(fontsize=7)\n"
     "axes[0].set_ylabel('‖Ā_t ⋯ Ā_(t−ℓ+1)‖, mean over t')\n"
     "fig.tight_layout()"),
    ("md", "With one token repeated, $\\Delta_t$ is constant, the product equals the power and the two curves "
     "coincide, as for any LTI system. With random tokens the products fall below the frozen guess at long lags: "
     "a snapshot taken at a token with a small $\\Delta_t$ promises a long memory, but the tokens that follow bring "
     "larger steps and erase it. The product sees the *sum* of the rates over the lag; the frozen average is "
     "dominated by the slowest snapshots. For a stationary input this ordering always holds (Hölder's "
     "inequality: the mean of a product of $\\ell$ identically distributed factors is at most the mean of one "
     "factor to the power $\\ell$). The gap is memory that frozen eigenvalues promise and the time-varying system "
     "does not keep. It grows with how much $\\Delta_t$ varies from token to token, which the full traces of a "
     "window measure:"),
    ("code", "for m in (model, model2):\n"
     "    sim = ssmctl.simulate(m, tokens[:2000], layers=[0], window=(0, 2000))\n"
     "    log_dt = sim.windows[0]['system'].dt[0].reshape(2000, -1).log10()  # (tokens, channels or heads)\n"
     "    spread = 10 ** (log_dt.quantile(0.95, dim=0) - log_dt.quantile(0.05, dim=0)).median()\n"
     "    print(f'{m.family:6s} layer 0: Δ_t of one channel varies by a factor {spread:.1f} over the tokens '\n"
     "          '(5 % to 95 % quantile, median over channels)')"),
    ("md", "A small variation per channel (Mamba here) gives a small gap; a large one (Mamba-2 here) a gap of orders "
     "of magnitude at long lags."),
    ("code", "workdir.cleanup()"),
]

INSPECT_A_CHECKPOINT = [
    ("md", "# Inspect a checkpoint\n\n"
     "`ssmctl.load` reads a checkpoint folder or file (safetensors, or `torch.load(weights_only=True)`: nothing is "
     "executed) and returns the same `Model` as `ssmctl.init`. The functions behind `ssmctl inspect` and "
     "`ssmctl compare` (`ssmctl.checkpoints.inspect.inspect_report` / `compare_report`) give each layer's eigenvalues and how "
     "they moved between two checkpoints."),
    ("code", _SETUP + "\n"
     "from ssmctl.checkpoints.inspect import inspect_report, inspect_text, compare_report, compare_text\n"
     "from ssmctl.plot.compare import plot_inspect, plot_compare"),
    ("md", "## Two Mamba checkpoints: an initialization and a synthetic \"trained\" one\n"
     "There is no trained model here (nothing is downloaded). The \"trained\" checkpoint is the initialization with "
     "a **synthetic perturbation** standing in for training: in layer $i$ a random half of the channels get their "
     "$\\Delta$ bias lowered by $(i+1)/2$ (smaller steps, eigenvalues closer to 1, longer memory) and `A_log` gets "
     "10 % noise. It shows how the tools report movement, not what training learns."),
    ("code", "workdir = tempfile.TemporaryDirectory()  # deleted in the last cell\n"
     "torch.manual_seed(0)\n"
     "config = transformers.MambaConfig(hidden_size=64, num_hidden_layers=4, state_size=16, vocab_size=1000)\n"
     "hf = transformers.MambaForCausalLM(config)\n"
     "init_path = os.path.join(workdir.name, 'mamba-init')\n"
     "hf.save_pretrained(init_path)\n"
     "\n"
     "gen = torch.Generator().manual_seed(1)\n"
     "with torch.no_grad():\n"
     "    for i, block in enumerate(hf.backbone.layers):\n"
     "        mixer = block.mixer\n"
     "        half = torch.rand(mixer.dt_proj.bias.shape, generator=gen) < 0.5\n"
     "        mixer.dt_proj.bias.sub_(half * (i + 1) / 2)\n"
     "        mixer.A_log.add_(0.1 * torch.randn(mixer.A_log.shape, generator=gen))\n"
     "trained_path = os.path.join(workdir.name, 'mamba-perturbed')\n"
     "hf.save_pretrained(trained_path)\n"
     "\n"
     "model = ssmctl.load(trained_path)\n"
     "print(model, '| layout:', model.extras['layouts'])"),
    ("md", "## `ssmctl inspect`\n"
     "Mamba's $\\bar A_t = e^{\\Delta_t A}$ depends on the input, so `inspect` reports *input-free* eigenvalues: "
     "$\\Delta$ at its bias alone, $\\Delta = \\mathrm{softplus}(b_{dt})$ (column `at`). $A$ is real and negative, so "
     "these eigenvalues lie on the real segment (0, 1). The memory horizon is the number of tokens until "
     "$|\\lambda|^k = 0.01$; the margin $1 -$ radius is the distance of the slowest mode to the stability boundary."),
    ("code", "report = inspect_report(trained_path, eigenvalues=True)\n"
     "eigs = report.pop('eigenvalues')  # layer -> complex array; the rest of the report is strict JSON\n"
     "print(inspect_text(report))"),
    ("code", "plot_inspect(report, eigs);"),
    ("md", "The input-free view is one point per (channel, state). Over an actual input the eigenvalues move: "
     "`ssmctl.plot.eigenvalues` of an LTV layer draws the cloud of $\\bar A_t$ over a random unit-RMS input, "
     "coloured by the frozen-time memory horizon. It spreads further along the segment: some tokens push modes "
     "towards 0 (they reset the state)."),
    ("code", "fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), layout='constrained')\n"
     "ssmctl.plot.eigenvalues(eigs[3].ravel(), ax=axes[0], view='disk', title='layer 3, input-free (Δ at its bias)')\n"
     "ssmctl.plot.eigenvalues(model.layers[3], ax=axes[1], view='disk', title='layer 3, Ā_t over a random input')"),
    ("md", "## Trained vs init\n"
     "`compare_report(A, B)` (`ssmctl compare A B`) pairs the layers and reports the radius and phase histograms "
     "(bins of Task-Level-Insights), the memory horizons of both sides and, when the shapes match, how far each "
     "eigenvalue moved. With the perturbation above the median memory grows from layer to layer and eigenvalues "
     "move into the (0.9, 1] bin."),
    ("code", "cmp = compare_report(trained_path, init_path, eigenvalues=True)\n"
     "cmp_eigs = cmp.pop('eigenvalues')\n"
     "print(compare_text(cmp))"),
    ("code", "plot_compare(cmp, cmp_eigs);"),
    ("md", "Mamba's eigenvalues are real and positive, so the phase histogram would put all of them at 0: for "
     "such pairs the third panel shows the distribution of memory horizons instead, layer by layer."),
    ("md", "Without the initial checkpoint, `compare_report(path, 'init')` (`ssmctl compare PATH init`) compares "
     "with a fresh `ssmctl.init` of the same family and sizes. That is a different random draw: compare the "
     "distributions (memory, histograms), not the per-eigenvalue movement."),
    ("code", "fresh = compare_report(trained_path, 'init')\n"
     "for e in fresh['layers']:\n"
     "    print(f\"layer {e['index']}: median memory {e['memory_horizon_median_a']:.1f} (checkpoint) vs \"\n"
     "          f\"{e['memory_horizon_median_b']:.1f} (fresh init) tokens\")"),
    ("md", "## A state-spaces/s4 S4D state dict\n"
     "Research code saves plain state dicts. The function below writes one with the keys and shapes of `S4Model` "
     "in state-spaces/s4's `example.py` (`s4_layers.{i}.kernel.log_dt`, `log_A_real`, `A_imag`, `C`, …) and its "
     "S4D-Lin initialization $A_n = -\\tfrac12 + i\\pi n$, saved with `torch.save`. S4D is LTI: its eigenvalues "
     "$e^{\\Delta A_n}$ are complex and do not depend on the input. A second copy gets a synthetic perturbation "
     "again: each mode's damping $-\\mathrm{Re}\\,A_n$ multiplied by $e^{|z|}$ and its frequency "
     "$\\mathrm{Im}\\,A_n$ by $1 + 0.05z$ ($z$ standard normal, drawn per mode)."),
    ("code", "def s4d_state_dict(H=32, N=64, n_layers=2, perturb=0.0):\n"
     "    rng, noise = np.random.default_rng(0), np.random.default_rng(1)\n"
     "    sd = {'encoder.weight': torch.randn(H, 1), 'encoder.bias': torch.zeros(H)}\n"
     "    for i in range(n_layers):\n"
     "        tensors = {\n"
     "            'kernel.log_dt': rng.uniform(np.log(1e-3), np.log(1e-1), H),\n"
     "            'kernel.log_A_real': np.log(0.5) + perturb * np.abs(noise.standard_normal((H, N // 2))),\n"
     "            'kernel.A_imag': np.pi * np.arange(N // 2) * (1 + 0.05 * perturb * noise.standard_normal((H, N // 2))),\n"
     "            'kernel.C': rng.standard_normal((H, N // 2, 2)) * np.sqrt(0.5),  # complex C as (re, im)\n"
     "            'D': rng.standard_normal(H),\n"
     "            'output_linear.0.weight': rng.standard_normal((2 * H, H, 1)),\n"
     "            'output_linear.0.bias': np.zeros(2 * H),\n"
     "        }\n"
     "        sd.update({f's4_layers.{i}.{k}': torch.as_tensor(v, dtype=torch.float32) for k, v in tensors.items()})\n"
     "        sd[f'norms.{i}.weight'], sd[f'norms.{i}.bias'] = torch.ones(H), torch.zeros(H)\n"
     "    sd['decoder.weight'], sd['decoder.bias'] = torch.randn(10, H), torch.zeros(10)\n"
     "    return sd\n"
     "\n"
     "s4d_init_path = os.path.join(workdir.name, 's4d-init.pt')\n"
     "s4d_path = os.path.join(workdir.name, 's4d-perturbed.pt')\n"
     "torch.save(s4d_state_dict(), s4d_init_path)\n"
     "torch.save(s4d_state_dict(perturb=1.0), s4d_path)\n"
     "\n"
     "s4d = ssmctl.load(s4d_path)\n"
     "print(s4d, '| layout:', s4d.extras['layouts'], '| init guess:', s4d.extras['init'])\n"
     "print(inspect_text(inspect_report(s4d_path)))"),
    ("code", "fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), layout='constrained')\n"
     "ssmctl.plot.eigenvalues(s4d.layers[0], ax=axes[0], view='disk')\n"
     "ssmctl.plot.impulse(s4d.layers[0].system()[:4], L=300, ax=axes[1])"),
    ("md", "Each channel's eigenvalues lie on a spiral of modulus $e^{-\\Delta/2}$ and angles $\\pi n\\Delta$: "
     "small-$\\Delta$ channels crowd near $z = 1$ (long memory, low frequencies; see the inset), large-$\\Delta$ "
     "channels wrap around the disk. The loaded layers are full systems (`s4d.layers[0].system()` is a "
     "`DiagonalLTI`), so impulse responses, norms and Bode plots work as in the quickstart.\n\n"
     "With complex eigenvalues the comparison shows on the disk: the stronger damping pulls modes inside the "
     "circle, some into the (0.5, 0.9] bin, and the median memory drops. The phases barely move (5 % noise)."),
    ("code", "cmp = compare_report(s4d_path, s4d_init_path, eigenvalues=True)\n"
     "cmp_eigs = cmp.pop('eigenvalues')\n"
     "print(compare_text(cmp))\n"
     "plot_compare(cmp, cmp_eigs);"),
    ("md", "## A frozen-time layer in python-control\n"
     "An LTV layer frozen at token $t$ is an ordinary diagonal LTI system (`layer.frozen(u, t)`), one SISO "
     "system per channel, with the layer's $\\bar A_t$, $\\bar B_t$, $C_t$. Below, layer 3 of the perturbed "
     "Mamba checkpoint frozen at token 64 of a random input: its longest-memory channel goes to python-control, "
     "and python-control's poles, DC gain and $H_2$ norm agree with ssmctl's."),
    ("code", "import control\n"
     "u = np.random.default_rng(0).standard_normal((1, 128, 64)).astype(np.float32)  # (batch, L, d_model)\n"
     "frozen = model.layers[3].frozen(u, 64)[0]  # batch (1, channels) -> the channels of sequence 0\n"
     "print(frozen)\n"
     "c = int(np.argmax(ssmctl.memory_horizon(frozen).max(-1)))  # the channel that remembers longest\n"
     "cs = ssmctl.to_control(frozen[c])\n"
     "print(f'channel {c}: {cs.nstates} states, dt = {cs.dt}')\n"
     "print('poles agree:', np.allclose(np.sort(control.poles(cs).real), np.sort(ssmctl.eigenvalues(frozen[c]).real)))\n"
     "print(f'DC gain  ssmctl {float(ssmctl.dc_gain(frozen[c]).squeeze()):.6f}  python-control {float(np.squeeze(control.dcgain(cs))):.6f}')\n"
     "print(f'H2       ssmctl {float(ssmctl.h2_norm(frozen[c])):.6f}  python-control {control.norm(cs, 2):.6f}')"),
    ("code", "fig = plt.figure(figsize=(13, 4.5), layout='constrained')\n"
     "sub = fig.subfigures(1, 2)\n"
     "ssmctl.plot.bode(frozen, axes=sub[0].subplots(2, 1, sharex=True), title='layer 3 frozen at token 64')\n"
     "ssmctl.plot.step(frozen[c], L=400, ax=sub[1].subplots(), title=f'channel {c}: step response');"),
    ("code", "workdir.cleanup()"),
]



def _md(text: str) -> tuple[str, str]:
    return ("md", textwrap.dedent(text).strip("\n"))


def _code(text: str) -> tuple[str, str]:
    return ("code", textwrap.dedent(text).strip("\n"))


# Notebooks that need no transformers: numpy, matplotlib, ssmctl (and python-control where they say so).
_LIGHT_SETUP = (
    "import numpy as np\n"
    "import torch\n"
    "import matplotlib.pyplot as plt\n"
    "import ssmctl\n"
    "from ssmctl.report import format_table\n"
    "\n"
    "torch.set_num_threads(1)  # on a shared CPU, idle OpenMP threads wait on busy cores\n"
    "%matplotlib inline\n"
    "plt.rcParams['figure.dpi'] = 72"
)

EIGENVALUE_INITIALIZATIONS = [
    _md(r"""
        # Eigenvalues at initialization, family by family

        Every deep SSM starts from a designed spectrum. This notebook draws each family's initial discrete
        eigenvalues $\lambda$ (one layer of `ssmctl.init(family)`, the reference code's defaults), shows how the
        hyperparameters that place them — the step-size range $[\Delta_{\min}, \Delta_{\max}]$, the LRU's ring
        $[r_{\min}, r_{\max}]$, the papers' presets — move them, and what that means for memory: the **memory
        horizon** $k_\varepsilon(\lambda) = \ln\varepsilon / \ln|\lambda|$, the number of tokens until a mode's free
        response has decayed to $\varepsilon = 0.01$ (the overview paper's Lemma II.2 ties memory to $|\lambda|$
        this way).

        **Two views.** Long-memory modes sit within a hair of the unit circle, where the unit disk draws a line
        at its right edge. `ssmctl.plot.eigenvalues(..., view=...)` also draws the views control theorists use
        there: `"margin"`, $1 - |\lambda|$ on a log axis against $\arg\lambda$, and `"splane"`, the
        continuous-time view $s = \ln\lambda$ per token ($\mathrm{Re}\,s = \ln|\lambda|$, the decay rate, against
        $\mathrm{Im}\,s = \arg\lambda$). With `view="auto"` (the default) the margin view is used when at least half
        of the eigenvalues lie within 0.01 of the unit circle, the disk otherwise. Colour is the memory horizon
        throughout; LTV families (Mamba, Mamba-2, RG-LRU) show the cloud of $\bar A_t$ over a random unit-RMS
        input.
    """),
    _code(_LIGHT_SETUP + "\nfrom ssmctl.plot.views import choose_view"),
    _md("""
        ## Every family at its defaults
        Left of each pair: the unit disk (with a zoom near $z = 1$); right: the margin view of the same
        eigenvalues. `d_model=64` keeps the LTV clouds small; the spectra of the LTI families do not depend on it.
    """),
    _code("""
        names = list(ssmctl.families())
        layers = {name: ssmctl.init(name, d_model=64, n_layers=1, seed=0).layers[0] for name in names}
        clouds = {name: ssmctl.eigenvalue_cloud(layer) for name, layer in layers.items()}
        n_rows = -(-2 * len(names) // 4)  # two panels per family, four per row
        fig, axes = plt.subplots(n_rows, 4, figsize=(18, 4 * n_rows), layout='constrained')
        for i, name in enumerate(names):
            kind = 'LTV: Ā_t' if layers[name].kind == 'LTV' else 'LTI'
            disk, near = axes.flat[2 * i], axes.flat[2 * i + 1]
            ssmctl.plot.eigenvalues(clouds[name], ax=disk, view='disk', title=f'{name} ({kind})', colorbar=False)
            ssmctl.plot.eigenvalues(clouds[name], ax=near, view='margin', title=f'{name}: near-1 view')
        for ax in axes.flat[2 * len(names):]:
            ax.axis('off')
    """),
    _code("""
        rows = []
        for name, lam in clouds.items():
            k = ssmctl.memory_horizon(lam)
            rows.append(dict(family=name, kind=layers[name].kind, n=lam.size,
                             near=np.mean(1 - np.abs(lam) < 0.01), view=choose_view(lam),
                             kmin=k.min(), kmed=np.median(k), kmax=k.max()))
        print(format_table(rows, list(rows[0]), ['family', 'kind', 'eigenvalues', 'share within 0.01 of |z|=1',
                                                 'auto view', 'memory min', 'memory median', 'memory max']))
    """),
    _md(r"""
        S4, S4D and S5 start from HiPPO-like spectra $A_n = -\tfrac12 + i\pi n$ (S4D-Lin) or their DPLR / block
        versions, discretized with a per-channel step $\Delta$: every channel puts all its modes on one circle of
        radius $e^{-\Delta/2}$, which for small $\Delta$ hugs the unit circle. The LRU draws $|\lambda|$ uniformly
        on a ring. Mamba's $\bar A_t = e^{\Delta_t A}$ is real and positive ($A = -1, \dots, -16$); Mamba-2 has one
        scalar per head; RG-LRU's $a^{c\,r_t}$ is real too.

        ## The step-size range moves the memory
        With zero-order hold, $\lambda = e^{\Delta A}$, so $|\lambda| = e^{\Delta\,\mathrm{Re}A}$ and

        $$k_\varepsilon = \frac{\ln(1/\varepsilon)}{\Delta\,|\mathrm{Re}\,A|}:$$

        the memory horizon is inversely proportional to the step. For S4D-Lin, $\mathrm{Re}A = -\tfrac12$ for every
        mode, so a channel's horizon is $2\ln(100)/\Delta$ whatever $n$. The channels' $\Delta$ are drawn
        log-uniformly in $[\Delta_{\min}, \Delta_{\max}]$ (`dt_min`, `dt_max`); the checkpoint stores $\log\Delta$
        (`kernel.log_dt`).
    """),
    _code("""
        ranges = [(1e-3, 1e-1), (1e-4, 1e-2), (1e-2, 1.0)]
        s4d = {r: ssmctl.init('s4d', d_model=64, d_state=32, n_layers=1, dt_min=r[0], dt_max=r[1], seed=0).layers[0]
               for r in ranges}
        lam_all = np.concatenate([ssmctl.eigenvalues(layer).ravel() for layer in s4d.values()])
        norm = ssmctl.plot.lti.memory_norm(ssmctl.memory_horizon(lam_all))  # one colour scale for the three
        fig, axes = plt.subplots(1, 4, figsize=(20, 4.4), layout='constrained')
        for ax, (r, layer) in zip(axes, s4d.items()):
            ssmctl.plot.eigenvalues(layer, ax=ax, view='margin', norm=norm, colorbar=ax is axes[2],
                                    title=f'S4D, Δ in [{r[0]:g}, {r[1]:g}]')
        for r, layer in s4d.items():
            dt = np.exp(np.asarray(layer.params['kernel.log_dt'], dtype=float))              # (channels,)
            k = np.median(ssmctl.memory_horizon(layer.system()), axis=-1)            # (channels,)
            axes[3].loglog(dt, k, 'o', ms=3, label=f'Δ in [{r[0]:g}, {r[1]:g}]')
        grid = np.logspace(-4, 0, 50)
        axes[3].loglog(grid, 2 * np.log(100) / grid, 'k--', lw=1, label='2 ln(100) / Δ')
        axes[3].set_xlabel('Δ of the channel (log_dt stored in the checkpoint)')
        axes[3].set_ylabel('memory horizon (tokens, ε = 0.01)')
        axes[3].set_title('memory against step: closed form')
        axes[3].legend(fontsize=8);
    """),
    _md("""
        Every channel lands on the closed-form line: a smaller $\\Delta_{\\min}$ buys longer memory, a larger
        $\\Delta_{\\max}$ lets some channels forget within a few tokens. In the margin view each channel is one
        vertical column (one radius, the phases $\\pi n\\Delta$ of its modes).

        ## The LRU's ring and the presets
        The LRU samples $|\\lambda|$ in $[r_{\\min}, r_{\\max}]$ (uniformly on the ring's area) and the phase in
        $[0, \\theta_{\\max}]$; its defaults fill the whole disk, while the long-range preset
        (`r_min=0.9, r_max=0.999, max_phase=π/10`) puts every mode near $z = 1$, where the auto view switches to
        the margin view. S5's `lra_pathx` preset lowers $\\Delta_{\\min}$ to $10^{-4}$ (Path-X needs memory over 16k
        tokens); RG-LRU's `min_rad`/`max_rad` bound $a$ before the input-dependent power $c\\,r_t$.
    """),
    _code("""
        variants = {
            'LRU default': ssmctl.init('lru', d_model=64, n_layers=1, seed=0),
            'LRU long_range': ssmctl.init('lru', d_model=64, n_layers=1, seed=0, preset='long_range'),
            'S5 default': ssmctl.init('s5', d_model=64, n_layers=1, seed=0),
            'S5 lra_pathx': ssmctl.init('s5', d_model=64, n_layers=1, seed=0, preset='lra_pathx'),
            'RG-LRU default': ssmctl.init('rglru', d_model=64, n_layers=1, seed=0),
            'RG-LRU min_rad=0.99, max_rad=0.9999': ssmctl.init('rglru', d_model=64, n_layers=1, seed=0,
                                                               min_rad=0.99, max_rad=0.9999),
        }
        vclouds = {name: ssmctl.eigenvalue_cloud(m.layers[0]) for name, m in variants.items()}
        fig, axes = plt.subplots(2, 3, figsize=(16, 9.5), layout='constrained')
        for ax, (name, lam) in zip(axes.T.flat, vclouds.items()):
            ssmctl.plot.eigenvalues(lam, ax=ax, title=f'{name} (view: {choose_view(lam)})')
    """),
    _md("## Memory horizons, all variants"),
    _code("""
        fig, ax = plt.subplots(figsize=(10, 4), layout='constrained')
        bins = np.logspace(-1, 6, 57)
        table = []
        for name, lam in {**{f'{n} default': clouds[n] for n in ('s4d', 'mamba', 'mamba2')}, **vclouds}.items():
            k = ssmctl.memory_horizon(lam)
            ax.hist(k[np.isfinite(k)], bins=bins, histtype='step', lw=1.4, density=True, label=name)
            table.append(dict(name=name, q10=np.quantile(k, 0.1), med=np.median(k), q90=np.quantile(k, 0.9)))
        ax.set_xscale('log')
        ax.set_xlabel('memory horizon (tokens until |λ|^k = 0.01)')
        ax.set_ylabel('density (per token, log bins)')
        ax.legend(fontsize=7, ncols=2)
        print(format_table(table, list(table[0]), ['initialization', '10 %', 'median', '90 %']))
    """),
]

LTI_ANALYSIS = [
    _md(r"""
        # An LTI layer as a control theorist reads it

        An S4D layer is, channel by channel, a single-input single-output discrete-time system
        $h_k = \bar A h_{k-1} + \bar B u_k$, $y_k = C h_k + D u_k$ with diagonal complex $\bar A$. This notebook runs
        the classical toolbox on one: impulse and step responses (the layer *is* a convolution with its impulse
        response), Bode, Nyquist and singular-value plots, $H_2$ and $H_\infty$ norms, gramians, Hankel singular
        values and balanced truncation (how many states a channel really uses), zeros, stability margins, and the
        round trip through python-control. Every number is checked against an independent computation in the cell
        that prints it.
    """),
    _code(_LIGHT_SETUP + "\nimport control"),
    _code("""
        model = ssmctl.init('s4d', d_model=16, d_state=16, n_layers=1, seed=0)
        sys = model.layers[0].system()     # DiagonalLTI, batch (16,): one SISO system per channel
        ch = sys[3]                         # one channel
        print(sys)
        print(ch)
    """),
    _md(r"""
        ## Impulse responses are the convolution kernels
        $K_0 = C\bar B + D$, $K_k = C\bar A^k\bar B$: the layer's output is $y = K * u$ (a causal convolution). Below,
        the convolution with `ssmctl.impulse_response` against python-control's simulation of the same channel
        (`to_control` gives the textbook realization).
    """),
    _code("""
        L = 300
        K = ssmctl.impulse_response(ch, L)[:, 0, 0]                 # (L,)
        u = np.random.default_rng(0).standard_normal(L)
        y_conv = np.convolve(u, K)[:L]
        y_ctrl = control.forced_response(ssmctl.to_control(ch), T=np.arange(L), U=u).outputs
        print('max |conv - python-control| =', np.abs(y_conv - y_ctrl).max())
        fig, axes = plt.subplots(1, 2, figsize=(12, 4), layout='constrained')
        ssmctl.plot.impulse(sys, L=L, ax=axes[0])                  # 16 channels: an evenly spaced 8, named
        ssmctl.plot.step(sys[:4], L=L, ax=axes[1]);
    """),
    _md(r"""
        ## Frequency domain: Bode, Nyquist, singular values
        $G(z) = z\,C(zI-\bar A)^{-1}\bar B + D$ on the unit circle $z = e^{i\omega}$, $\omega$ in rad/sample (one
        sample = one token). Nyquist draws $G(e^{i\omega})$ in the complex plane with the critical point $-1$. For
        MIMO systems the singular values of $G(e^{i\omega})$ replace the magnitude: an S5 layer is one MIMO system
        (all channels share the state), and its largest singular value peaks at the $H_\infty$ norm.
    """),
    _code("""
        s5 = ssmctl.init('s5', d_model=4, d_state=16, blocks=2, n_layers=1, seed=0).layers[0].system()
        print(s5)
        fig = plt.figure(figsize=(16, 4.5), layout='constrained')
        sub = fig.subfigures(1, 3)
        ssmctl.plot.bode(sys[:4], axes=sub[0].subplots(2, 1, sharex=True))
        ssmctl.plot.nyquist(ch, ax=sub[1].subplots())
        ssmctl.plot.sigma(s5, ax=sub[2].subplots());
    """),
    _md(r"""
        ## Norms
        $\|G\|_{H_2}^2 = \sum_k \|K_k\|_F^2$ (Parseval: the energy of the impulse response) and
        $\|G\|_{H_\infty} = \max_\omega \sigma_{\max}(G(e^{i\omega}))$ (the largest gain over frequency, the peak
        of the sigma plot), checked against the truncated kernel sum and python-control.
    """),
    _code("""
        h2 = ssmctl.h2_norm(ch)
        hinf, w_peak = ssmctl.hinf_norm(ch, return_frequency=True)
        K_long = ssmctl.impulse_response(ch, 20000)[:, 0, 0]
        cs = ssmctl.to_control(ch)
        print(f'H2   {float(h2):.8f}  sqrt(sum K_k^2) {np.sqrt((K_long ** 2).sum()):.8f}  python-control {control.norm(cs, 2):.8f}')
        print(f'Hinf {float(hinf):.8f} at ω = {float(w_peak):.4f}  python-control {control.norm(cs, "inf"):.8f}')
        s5_hinf, s5_w = ssmctl.hinf_norm(s5, return_frequency=True)
        print(f'S5 layer (MIMO 4×4): Hinf {float(s5_hinf):.6f} at ω = {float(s5_w):.4f}, '
              f'python-control {control.norm(ssmctl.to_control(s5), "inf"):.6f}')
    """),
    _md(r"""
        ## Gramians, Hankel singular values, balanced truncation
        The controllability and observability gramians $P$, $Q$ solve the discrete Lyapunov equations; the Hankel
        singular values $\sigma_i = \sqrt{\lambda_i(PQ)}$ measure how much each state of a balanced realization
        carries. Balanced truncation to $r$ states keeps the largest and guarantees
        $\|G - G_r\|_{H_\infty} \le 2\sum_{i>r}\sigma_i$. A channel whose $\sigma_i$ fall off quickly uses few of
        its 16 real states.
    """),
    _code("""
        P, Q = ssmctl.gramians(ch)
        hsv = ssmctl.hankel_singular_values(ch)
        from_gramians = np.sqrt(np.sort(np.abs(np.linalg.eigvals(P @ Q)))[::-1])
        print('max |HSV - sqrt(eig(PQ))| =', np.abs(hsv - from_gramians).max())
        rows = []
        for r in (2, 4, 8, 12):
            red = ssmctl.balanced_truncation(ch, r)
            w = np.linspace(0, np.pi, 4001)
            err = np.abs(ssmctl.frequency_response(ch, w) - ssmctl.frequency_response(red, w)).max()
            rows.append(dict(r=r, err=err, bound=2 * hsv[r:].sum(), h2=float(ssmctl.h2_norm(red))))
        print(format_table(rows, list(rows[0]), ['states kept', 'max |G - G_r| on a grid', '2 Σ tail σ', 'H2 of G_r']))
        fig, axes = plt.subplots(1, 2, figsize=(12, 4), layout='constrained')
        ssmctl.plot.hankel(sys, ax=axes[0])
        w = np.logspace(-4, np.log10(np.pi), 400)
        for r in (2, 4, 8):
            red = ssmctl.balanced_truncation(ch, r)
            axes[1].semilogx(w, 20 * np.log10(np.abs(ssmctl.frequency_response(red, w)[:, 0, 0])), lw=1, label=f'{r} states')
        axes[1].semilogx(w, 20 * np.log10(np.abs(ssmctl.frequency_response(ch, w)[:, 0, 0])), 'k--', lw=1, label='all 16')
        axes[1].set_xlabel('ω  (rad/sample)')
        axes[1].set_ylabel('|G(e^iω)|  (dB)')
        axes[1].set_title('channel 3 and its balanced truncations')
        axes[1].legend(fontsize=8);
    """),
    _md(r"""
        ## Zeros, poles and stability margins
        Poles are the eigenvalues; the transmission zeros (`ssmctl.zeros`) are where $G(z)$ vanishes. The pole-zero
        map draws circles of constant memory horizon. `stability_margins` gives the classical margins of the
        unity-feedback loop around $G$: gain margin $g_m$ at the phase crossover $\omega_{pc}$, where
        $G(e^{i\omega_{pc}}) = -1/g_m$, and phase margin at the gain crossover $\omega_{gc}$, where
        $|G(e^{i\omega_{gc}})| = 1$ — both checked on the frequency response below.
    """),
    _code("""
        z = ssmctl.zeros(ch)
        z_ctrl = control.zeros(ssmctl.to_control(ch))
        print(len(z), 'zeros; farthest from a python-control zero:', np.abs(z[:, None] - z_ctrl[None, :]).min(1).max())
        cancel = np.isclose(z[:, None], ssmctl.eigenvalues(ch)[None, :], rtol=0, atol=1e-9).any(1)
        print(cancel.sum(), 'zero cancels a pole: the real n = 0 mode of S4D-Lin, whose pair partner is never excited')
        print('max |G(z_i)| at the other zeros:', np.abs(ssmctl.transfer_function(ch, z[~cancel])).max())
        m = ssmctl.stability_margins(ch)
        print(f'gain margin {float(m.gm):.4f} at ω = {float(m.wpc):.4f}: G there = '
              f'{complex(ssmctl.frequency_response(ch, [float(m.wpc)])[0, 0, 0]):.4f}, -1/gm = {-1 / float(m.gm):.4f}')
        print(f'phase margin {float(m.pm):.2f}° at ω = {float(m.wgc):.4f}: |G| there = '
              f'{abs(ssmctl.frequency_response(ch, [float(m.wgc)])[0, 0, 0]):.6f}')
        print(f'stability margin (min distance of G to -1) {float(m.sm):.4f} at ω = {float(m.wms):.4f}')
        fig, axes = plt.subplots(1, 2, figsize=(11, 5), layout='constrained')
        ssmctl.plot.pzmap(ch, ax=axes[0])
        ssmctl.plot.nyquist(ch, ax=axes[1])
        axes[1].set_xlim(-3, 3)
        axes[1].set_ylim(-3, 3);
    """),
    _md(r"""
        ## python-control, both ways
        `ssmctl.to_control` builds python-control's real state-space model in the textbook time convention
        ($x_{k+1} = Ax_k + Bu_k$, $y_k = Cx_k + Du_k$ with $A = \bar A$, $B = \bar A\bar B$,
        $D = C\bar B + D$); `ssmctl.from_control` brings any discrete python-control system back as a `DenseLTI`, so
        every analysis and plot applies to it. Here a 4th-order discrete Butterworth-like filter designed in
        python-control.
    """),
    _code("""
        cs = ssmctl.to_control(ch)
        print(type(cs).__name__, cs.nstates, 'states, dt =', cs.dt)
        print('poles agree:', np.allclose(np.sort_complex(control.poles(cs)), np.sort_complex(ssmctl.eigenvalues(ch))))
        import scipy.signal
        b, a = scipy.signal.butter(4, 0.2)                       # digital low-pass, cutoff 0.2·π rad/sample
        filt = ssmctl.from_control(control.tf(b, a, dt=1))
        print(filt)
        print(f'H2 {float(ssmctl.h2_norm(filt)):.6f}  python-control {control.norm(control.tf(b, a, dt=1), 2):.6f}')
        fig = plt.figure(figsize=(12, 4.5), layout='constrained')
        sub = fig.subfigures(1, 2)
        ssmctl.plot.bode(filt, axes=sub[0].subplots(2, 1, sharex=True), title='Butterworth from python-control')
        ssmctl.plot.step(filt, L=60, ax=sub[1].subplots());
    """),
    _md(r"""
        ## Non-normal layers: pseudospectra
        S4's state matrix is diagonal plus low rank (DPLR): strongly non-normal, so its eigenvalues say little about
        transient growth. The $\varepsilon$-pseudospectra $\{z : \sigma_{\min}(zI - \bar A) \le \varepsilon\}$ do:
        they bulge far beyond the eigenvalues.
    """),
    _code("""
        s4 = ssmctl.init('s4', d_model=2, d_state=16, n_layers=1, seed=0).layers[0].system()
        print(s4, ' eigenvalue condition numbers up to', f'{ssmctl.eigenvalue_condition(s4[0]).max():.3g}')
        ssmctl.plot.pseudospectrum(s4[0], resolution=120);
    """),
]

TRAINED_VS_INIT = [
    _md(r"""
        # What training does to the spectrum

        Two small models are trained here, on the CPU, for a few seconds each: an **S4D** on a delay task (output
        the input of 32 tokens ago) and a **Mamba** on associative recall (read key–value pairs, then answer the
        value of a queried key). Training is short and need not converge; the point is to compare each trained
        checkpoint with its own initialization using the same tools as for any checkpoint: eigenvalues, memory
        horizons, and for Mamba the statistics of its input-dependent $\bar A_t$ over a long input.
    """),
    _code(_SETUP + "\n"
          "import time\n"
          "import torch.nn as nn\n"
          "import torch.nn.functional as F\n"
          "from ssmctl.checkpoints.inspect import compare_report, compare_text\n"
          "from ssmctl.plot.compare import plot_compare\n"
          "workdir = tempfile.TemporaryDirectory()  # deleted in the last cell"),
    _md(r"""
        ## S4D on a delay task
        A minimal S4D model in plain torch, written the way state-spaces/s4's `example.py` writes it (parameter
        names `s4_layers.0.kernel.log_dt`, `log_A_real`, `A_imag`, `C`, …), so its `state_dict` saved with
        `torch.save` is a checkpoint `ssmctl.load` reads. The kernel is the S4D-Lin ZOH kernel
        $K_k = 2\,\mathrm{Re}\big(C\,(e^{\Delta A}-1)/A\; e^{k\Delta A}\big)$, applied by FFT convolution.
    """),
    _code("""
        class S4DKernel(nn.Module):
            def __init__(self, H, N, dt_min=1e-3, dt_max=1e-1):
                super().__init__()
                self.log_dt = nn.Parameter(torch.rand(H) * (np.log(dt_max) - np.log(dt_min)) + np.log(dt_min))
                self.C = nn.Parameter(torch.view_as_real(torch.randn(H, N // 2, dtype=torch.cfloat)))
                self.log_A_real = nn.Parameter(torch.log(0.5 * torch.ones(H, N // 2)))
                self.A_imag = nn.Parameter(np.pi * torch.arange(N // 2).float().repeat(H, 1))

            def forward(self, L):
                A = -self.log_A_real.exp() + 1j * self.A_imag
                dtA = A * self.log_dt.exp()[:, None]
                C = torch.view_as_complex(self.C) * (dtA.exp() - 1) / A
                return 2 * torch.einsum('hn,hnl->hl', C, (dtA[..., None] * torch.arange(L)).exp()).real


        class S4DLayer(nn.Module):
            def __init__(self, H, N):
                super().__init__()
                self.kernel = S4DKernel(H, N)
                self.D = nn.Parameter(torch.randn(H))
                self.output_linear = nn.Sequential(nn.Conv1d(H, 2 * H, 1), nn.GLU(dim=-2))

            def forward(self, u):                                   # (batch, H, L)
                L = u.shape[-1]
                k = self.kernel(L)
                y = torch.fft.irfft(torch.fft.rfft(u, 2 * L) * torch.fft.rfft(k, 2 * L), 2 * L)[..., :L]
                return self.output_linear(F.gelu(y + u * self.D[:, None]))


        class S4DModel(nn.Module):
            def __init__(self, H=32, N=32):
                super().__init__()
                self.encoder = nn.Linear(1, H)
                self.s4_layers = nn.ModuleList([S4DLayer(H, N)])
                self.norms = nn.ModuleList([nn.LayerNorm(H)])
                self.decoder = nn.Linear(H, 1)

            def forward(self, u):                                   # (batch, L, 1)
                x = self.encoder(u)
                for layer, norm in zip(self.s4_layers, self.norms):
                    x = norm(x + layer(x.transpose(1, 2)).transpose(1, 2))
                return self.decoder(x)
    """),
    _code("""
        torch.manual_seed(0)
        DELAY, L = 32, 128
        s4d_net = S4DModel()
        s4d_init_path = os.path.join(workdir.name, 's4d-init.pt')
        s4d_trained_path = os.path.join(workdir.name, 's4d-trained.pt')
        torch.save(s4d_net.state_dict(), s4d_init_path)
        opt = torch.optim.AdamW(s4d_net.parameters(), lr=3e-3)
        t0 = time.perf_counter()
        for step in range(250):
            u = torch.randn(32, L, 1)
            target = F.pad(u, (0, 0, DELAY, 0))[:, :L]              # u delayed by DELAY tokens
            loss = F.mse_loss(s4d_net(u)[:, DELAY:], target[:, DELAY:])
            opt.zero_grad(); loss.backward(); opt.step()
            if step % 50 == 0 or step == 249:
                print(f'step {step:3d}  mse {loss.item():.4f}')
        print(f'{time.perf_counter() - t0:.1f} s (the mse of predicting 0 is 1)')
        torch.save(s4d_net.state_dict(), s4d_trained_path)
    """),
    _md(r"""
        The checkpoint `ssmctl.load` reads is the same system the torch model runs: its impulse response equals
        the torch kernel (plus $D$ at lag 0) to float32 precision.
    """),
    _code("""
        s4d_init, s4d_trained = ssmctl.load(s4d_init_path), ssmctl.load(s4d_trained_path)
        print(s4d_trained, '| layout:', s4d_trained.extras['layouts'])
        layer = s4d_net.s4_layers[0]
        with torch.no_grad():
            k_torch = layer.kernel(200).double().numpy()
            k_torch[:, 0] += layer.D.double().numpy()
        k_ssmctl = ssmctl.impulse_response(s4d_trained.layers[0].system(), 200)[:, :, 0, 0]
        print('max |ssmctl kernel - torch kernel| =', np.abs(k_ssmctl - k_torch).max())
    """),
    _md(r"""
        ### Eigenvalues and memory, init against trained
        `compare_report` pairs the layers and reports how far each eigenvalue moved ($|\Delta\lambda|$); the
        near-1 view shows where. At initialization every mode of a channel shares one radius $e^{-\Delta/2}$ (a
        vertical column in the margin view); training adjusts each mode's damping $\mathrm{Re}A_n$ and frequency
        on its own, so the columns break up, while the channels' steps $\Delta$ (right) barely move in this short
        run. The delay itself is mostly learned in $C$ and the output layers: the kernels below change far more
        than the eigenvalues.
    """),
    _code("""
        cmp = compare_report(s4d_trained_path, s4d_init_path, eigenvalues=True)
        cmp_eigs = cmp.pop('eigenvalues')
        print(compare_text(cmp))
        lam_i = ssmctl.eigenvalues(s4d_init.layers[0])
        lam_t = ssmctl.eigenvalues(s4d_trained.layers[0])
        norm = ssmctl.plot.lti.memory_norm(ssmctl.memory_horizon(np.concatenate([lam_i.ravel(), lam_t.ravel()])))
        fig, axes = plt.subplots(1, 3, figsize=(17, 4.5), layout='constrained')
        ssmctl.plot.eigenvalues(lam_i, ax=axes[0], view='margin', norm=norm, colorbar=False, title='S4D at init')
        ssmctl.plot.eigenvalues(lam_t, ax=axes[1], view='margin', norm=norm, title='S4D trained (delay 32)')
        dt_i = np.exp(np.asarray(s4d_init.layers[0].params['kernel.log_dt'], dtype=float))
        dt_t = np.exp(np.asarray(s4d_trained.layers[0].params['kernel.log_dt'], dtype=float))
        axes[2].loglog(dt_i, np.median(ssmctl.memory_horizon(s4d_init.layers[0].system()), -1), 'o', ms=4, label='init')
        axes[2].loglog(dt_t, np.median(ssmctl.memory_horizon(s4d_trained.layers[0].system()), -1), 's', ms=4, label='trained')
        axes[2].axhline(DELAY, color='k', ls=':', lw=1, label=f'delay = {DELAY} tokens')
        axes[2].set_xlabel('Δ of the channel')
        axes[2].set_ylabel('median memory horizon (tokens, ε = 0.01)')
        axes[2].set_title('per channel: step against memory')
        axes[2].legend(fontsize=8);
    """),
    _code("""
        fig, axes = plt.subplots(1, 2, figsize=(12, 4), layout='constrained')
        ssmctl.plot.impulse(s4d_init.layers[0].system()[::8], L=100, ax=axes[0], title='S4D kernels at init')
        ssmctl.plot.impulse(s4d_trained.layers[0].system()[::8], L=100, ax=axes[1], title='S4D kernels trained')
        for ax in axes:
            ax.axvline(DELAY, color='k', ls=':', lw=1)
    """),
    _md(r"""
        ## Mamba on associative recall
        Sequences of `PAIRS` key–value token pairs followed by a query key; the loss is the cross-entropy of the
        value at the last position. A 2-layer transformers `MambaForCausalLM` (hidden size 32) trains for 150
        steps: far from solving the task (chance is 1/16), enough to move its parameters.
    """),
    _code("""
        N_KEYS, N_VALUES, PAIRS = 16, 16, 4

        def recall_batch(batch, gen):
            keys = torch.argsort(torch.rand(batch, N_KEYS, generator=gen), dim=1)[:, :PAIRS]
            values = N_KEYS + torch.randint(0, N_VALUES, (batch, PAIRS), generator=gen)
            which = torch.randint(0, PAIRS, (batch,), generator=gen)
            rows = torch.arange(batch)
            seq = torch.stack([keys, values], dim=2).reshape(batch, 2 * PAIRS)
            return torch.cat([seq, keys[rows, which][:, None]], dim=1), values[rows, which]

        torch.manual_seed(0)
        config = transformers.MambaConfig(hidden_size=32, num_hidden_layers=2, state_size=16,
                                          vocab_size=N_KEYS + N_VALUES)
        hf = transformers.MambaForCausalLM(config)
        mamba_init_path = os.path.join(workdir.name, 'mamba-init')
        mamba_trained_path = os.path.join(workdir.name, 'mamba-trained')
        hf.save_pretrained(mamba_init_path)
        opt = torch.optim.AdamW(hf.parameters(), lr=1e-2)
        gen = torch.Generator().manual_seed(0)
        t0 = time.perf_counter()
        for step in range(150):
            x, y = recall_batch(32, gen)
            logits = hf(x).logits[:, -1]
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(); loss.backward(); opt.step()
            if step % 50 == 0 or step == 149:
                print(f'step {step:3d}  loss {loss.item():.3f}  accuracy {(logits.argmax(-1) == y).float().mean():.2f}')
        print(f'{time.perf_counter() - t0:.1f} s')
        hf.save_pretrained(mamba_trained_path)
    """),
    _md(r"""
        ### Input-free eigenvalues
        `compare` reads Mamba's eigenvalues at the input-free bias point ($\Delta = \mathrm{softplus}(b_{dt})$):
        real, in $(0, 1)$, so the movement shows in the memory horizons.
    """),
    _code("""
        mcmp = compare_report(mamba_trained_path, mamba_init_path, eigenvalues=True)
        mcmp_eigs = mcmp.pop('eigenvalues')
        print(compare_text(mcmp))
        plot_compare(mcmp, mcmp_eigs);
    """),
    _md(r"""
        ### LTV statistics over task-like inputs
        The eigenvalues a Mamba layer actually uses are those of $\bar A_t = e^{\Delta_t A}$, with $\Delta_t$
        computed from each token. `simulate` runs both checkpoints over 4000 tokens of recall sequences and keeps
        per layer the quantiles of $|\bar A_t|$ and $\Delta_t$, the frozen-time memory and the decay of the
        transition products.
    """),
    _code("""
        tokens = recall_batch(400, torch.Generator().manual_seed(1))[0].reshape(-1)[:4000].numpy()
        runs = {'init': ssmctl.simulate(ssmctl.load(mamba_init_path), tokens),
                'trained': ssmctl.simulate(ssmctl.load(mamba_trained_path), tokens)}
        rows = []
        for name, res in runs.items():
            for i in res.layers:
                s = res.stats[i]
                products, frozen = s.decay_at(16)
                rows.append(dict(model=name, layer=i, abs_med=s.abs_quantiles[0.5], dt_med=s.rate_quantiles[0.5],
                                 dt_95=s.rate_quantiles[0.95], mem=s.memory_horizon_quantiles[0.5], prod=products,
                                 frozen=frozen))
        print(format_table(rows, list(rows[0]), ['model', 'layer', '|Ā| median', 'Δ median', 'Δ 95 %',
                                                 'memory median', '‖ΠĀ‖ lag 16', 'frozen lag 16']))
        fig, axes = plt.subplots(1, 3, figsize=(16, 4), layout='constrained')
        for name, res in runs.items():
            s = res.stats[0]
            edges = np.exp(s.rate_edges)
            axes[0].stairs(s.rate_hist / s.rate_hist.sum(), edges, label=name)
            axes[1].loglog(s.lags, s.decay_mean, 'o-', ms=3, label=f'{name}: products')
            axes[1].loglog(s.lags, s.frozen_mean, '^:', ms=3, label=f'{name}: frozen |Ā_t|^ℓ')
        occupied = np.flatnonzero(sum(r.stats[0].rate_hist for r in runs.values()))
        axes[0].set_xscale('log')
        axes[0].set_xlim(edges[occupied[0]] / 1.5, edges[occupied[-1] + 1] * 1.5)
        axes[0].set_xlabel('Δ_t  (step size, in tokens)')
        axes[0].set_ylabel('fraction of (token, channel)')
        axes[0].set_title('layer 0: Δ_t')
        axes[1].set_xlabel('lag ℓ (tokens)')
        axes[1].set_ylabel('‖Ā_t ⋯ Ā_(t−ℓ+1)‖, mean over t')
        axes[1].set_title('layer 0: transition products')
        for ax in axes[:2]:
            ax.legend(fontsize=7)
        ssmctl.plot.memory_trace(runs['trained'].stats[0], ax=axes[2], title='trained layer 0: memory per token')
        axes[2].set_xlim(0, 400);
    """),
    _md(r"""
        After 150 steps the Mamba has moved little: the distribution of $\Delta_t$ shifts, the memory quantiles
        change by a few percent, and the transition products stay close to the frozen-time guess (where they part,
        $\Delta_t$ varies from token to token). Longer training moves the spectrum much further; the same cells
        measure it.
    """),
    _code("workdir.cleanup()"),
]

DYNAMICAL_SYSTEMS_FRAMEWORK = [
    _md(r"""
        # The Dynamical Systems Framework: attention, RNNs and SSMs as one matrix

        Every sequence mixer here can be written as $h_i = \Lambda_i h_{i-1} + B_i u_i$, $y_i = C_i h_i + D_i u_i$,
        and its input-output map as one causal matrix $y = \Phi u$ with
        $\Phi_{ij} = C_i \Lambda_i\cdots\Lambda_{j+1} B_j$ ($j < i$). This notebook puts softmax and linear
        attention, qLSTM, S6, SSD, RG-LRU and the LRU side by side **on one input**: their $\Phi$, their transitions
        $\Lambda_i$ over tokens, and the numerical rank of the Hankel blocks $\Phi[t{:}, {:}t]$ — the state each
        layer actually uses across the cut $t$ (at most $N$ for a finite-state layer, generically
        $\min(t, L-t)$ for softmax). Then a checkpoint written by `transformers` and read back with `ssmctl.load`,
        and softmax as an infinite state: the error of its order-$p$ Taylor features against their state size.

        All models are **randomly initialized** (no download, no training).
    """),
    _code(_LIGHT_SETUP + "\nimport os, tempfile, warnings\n"
          "warnings.filterwarnings('ignore', message='IProgress not found')  # tqdm, imported by transformers\n"
          "import transformers\ntransformers.logging.set_verbosity_error()\ntransformers.logging.disable_progress_bar()"),
    _md("## Seven fresh layers, one input"),
    _code("""
        d, L = 16, 48
        u = torch.from_numpy(np.random.default_rng(0).standard_normal((1, L, d)).astype(np.float32))
        specs = {
            'softmax attention': ('attention', dict(variant='softmax', num_heads=2, d_qk=16)),
            'linear attention': ('attention', dict(variant='linear', num_heads=2, d_qk=16)),
            'qLSTM': ('qlstm', {}),
            'S6': ('s6', dict(d_state=8)),
            'SSD': ('s6', dict(variant='ssd', d_state=8)),
            'RG-LRU': ('rglru', {}),
            'LRU': ('lru', dict(d_state=8)),
        }
        layers = {name: ssmctl.init(fam, d_model=d, n_layers=1, seed=0, **kw).layers[0] for name, (fam, kw) in specs.items()}
        phis = {name: ssmctl.materialize(layer, u) for name, layer in layers.items()}
        for name, phi in phis.items():
            print(f'{name:18s} {phi}')
    """),
    _md(r"""
        $|\Phi_{ij}|$ averaged over channels (`ssmctl.attention_map`), on one log colour scale; the blank
        triangle is causality ($\Phi_{ij} = 0$ for $j > i$). The LRU is time-invariant: its $\Phi$ is Toeplitz.
    """),
    _code("ssmctl.plot.phi_heatmaps(phis, ncols=4);"),
    _md(r"""
        ## Where $\Lambda_i$ lies

        S6, SSD, qLSTM and RG-LRU keep $\Lambda_i \in (0, 1)$ by construction and the LRU's constant
        eigenvalues sit inside the unit disk; attention's $\Lambda_i = \eta_{i-1}/\eta_i$ exceeds 1 wherever its
        normalizer falls (`ssmctl.lambda_bounds` counts how often).
    """),
    _code("""
        rows = []
        for name, layer in layers.items():
            b = ssmctl.lambda_bounds(layer, u)
            rows.append({'layer': name, 'min': b.min, 'max': b.max, 'above': f'{100 * b.frac_above:.1f}%',
                         'inside': f'{100 * b.frac_inside:.1f}%'})
        print(format_table(rows, ['layer', 'min', 'max', 'above', 'inside'],
                           ['layer', '|Λ| min', '|Λ| max', 'Λ > 1', 'Λ in (0, 1)']))
        ssmctl.plot.lambda_traces(layers, u);
    """),
    _md(r"""
        ## The state each layer uses: the Hankel-rank profile

        At each cut $t$, $\Phi[t{:}, {:}t]$ maps the inputs before $t$ to the outputs from $t$ on; everything passes
        through $h_{t-1}$, so its rank is at most $N$ per channel. Softmax attention has no finite state: its
        blocks have full rank $\min(t, L-t)$. (Linear attention's state per value channel is its head's key size,
        8; the LRU's is $2N = 16$ real states, for all its channels at once.)
    """),
    _code("""
        profiles = {name: ssmctl.hankel_profile(phi) for name, phi in phis.items()}
        for name, prof in profiles.items():
            rank = prof.rank.reshape(-1, len(prof.cuts)).max(axis=0)
            print(f'{name:18s} max rank {rank.max():3d}; cuts at min(t, L − t): {(rank == prof.max_rank).sum()}/{len(prof.cuts)}')
        ssmctl.plot.hankel_rank_profile(profiles, n_states=8);
    """),
    _md(r"""
        ## A loaded checkpoint

        A `transformers` Mamba written with `save_pretrained` and read back by `ssmctl.load` (safetensors, no code
        executed). Its layers take the same $u$; the finite-state bound holds at $N = 8$. `ssmctl dsf` prints
        the same measures per layer from the command line.
    """),
    _code("""
        workdir = tempfile.TemporaryDirectory()  # deleted in the last cell
        torch.manual_seed(0)
        config = transformers.MambaConfig(hidden_size=d, num_hidden_layers=2, state_size=8, vocab_size=100)
        path = os.path.join(workdir.name, 'mamba-tiny')
        hf_mamba = transformers.MambaForCausalLM(config)
        hf_mamba.save_pretrained(path)
        loaded = ssmctl.load(path)
        loaded_phis = {f'loaded Mamba layer {i}': ssmctl.materialize(layer, u) for i, layer in enumerate(loaded.layers)}
        loaded_profiles = {k: ssmctl.hankel_profile(v) for k, v in loaded_phis.items()}
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), layout='constrained')
        ssmctl.plot.phi_heatmaps(loaded_phis, axes=list(axes[:2]))
        ssmctl.plot.hankel_rank_profile({**loaded_profiles, 'softmax attention': profiles['softmax attention']},
                                        n_states=8, ax=axes[2]);
    """),
    _code("""
        from ssmctl.cli import main
        main(['dsf', path, '--random-tokens', str(L)]);
    """),
    _md(r"""
        ## Softmax as an infinite state

        $\exp(q\cdot k/\sqrt m) = \sum_r (q\cdot k/\sqrt m)^r/r!$: truncating at order $p$ gives a finite DSF with
        $\sum_{r\le p} m^r$ states per value channel. The error of its $\Phi$ falls with $p$ while the state grows
        geometrically (`ssmctl.taylor_error`).
    """),
    _code("""
        err = ssmctl.taylor_error(layers['softmax attention'], u, [0, 1, 2, 3])
        print(format_table([{'p': p, 'n': n, 'e': e} for p, n, e in zip(err.orders, err.state_size, err.rel_error)],
                           ['p', 'n', 'e'], ['order p', 'states per value channel', '‖Φ_p − Φ‖_F / ‖Φ‖_F']))
        ssmctl.plot.taylor_error_curve(err);
    """),
    _md(r"""
        ## Linear attention vs SSD

        Un-normalized linear attention ($\eta \equiv 1$, values = inputs) has $\Lambda_i = I$ and
        $\Phi_{ij} = \psi(q_i)\cdot\phi(k_j)$. SSD's $b_i = W_B u_i$, $c_i = W_C u_i$ are linear in $u$, so the two
        give one $\Phi$ exactly when the feature maps are linear: $W_B = W_K$, $W_C = W_Q$, a zero $\delta$ weight
        with equal dt biases $\log(e-1)$ ($\Delta_i \equiv 1$) and $a = 0$ ($\Lambda_i = I$)
        (`ssmctl.linear_attention_as_ssd`, both cores built in float64).
    """),
    _code("""
        rng = np.random.default_rng(1)
        d_la, N_la, L_la = 3, 4, 25
        w_q, w_k = rng.standard_normal((2, N_la, d_la))
        u_la = rng.standard_normal((2, L_la, d_la))
        match = ssmctl.linear_attention_as_ssd(w_q, w_k, u_la)
        print(f'SSD: dt bias {match.dt_bias[0]:.6f} = log(e − 1), a = {match.a}; max |Φ_attention − Φ_SSD| = {match.max_abs_diff:.1e}')
    """),
    _md(r"""
        With $\mathrm{elu}+1$ features no SSD matches: with $\Lambda_i = I$, $\Delta_i \equiv 1$ any SSD's $\Phi_{ij}$
        is a bilinear form $u_i^\top M u_j$, and the best least-squares $M$ over all causal pairs
        (`ssmctl.ssd_bilinear_fit`) leaves a residual — zero for linear features, not for $\mathrm{elu}+1$.
    """),
    _code("""
        q, k = u_la @ w_q.T, u_la @ w_k.T
        elu1 = lambda x: np.where(x > 0, x + 1, np.exp(x))
        for name, (fq, fk) in {'linear features': (q, k), 'elu + 1 features': (elu1(q), elu1(k))}.items():
            _, residual = ssmctl.ssd_bilinear_fit(np.tril(np.einsum('bin,bjn->bij', fq, fk)), u_la)
            print(f'{name:17s} best SSD fit: ‖fit − Φ‖ / ‖Φ‖ = {residual:.2e}')
    """),
    _md(r"""
        ## The reversed-sigmoid identity

        $e^{a\,\mathrm{softplus}(x)} = (1+e^x)^{a} = \sigma(-x)^{-a}$, since $\sigma(-x) = 1/(1+e^x)$: S6/SSD's
        transition $e^{a\Delta}$ with $\Delta = \mathrm{softplus}(x)$ is a reversed sigmoid raised to the power
        $-a$, which is the form reversed qLSTM (the DSF paper's eq. (23)) takes for its forget gate,
        $\Lambda_i = \sigma(-f_i)^{\mathrm{relu}(\alpha)}$. `ssmctl.reversed_sigmoid_identity` computes both sides
        on separate paths; below, the qLSTM layer's $\Lambda_i$ against $\sigma(-f_i)^{\mathrm{relu}(\alpha)}$.
    """),
    _code("""
        x = np.linspace(-30, 30, 601)
        for a in (-0.1, -1.0, -3.7):
            lhs, rhs = ssmctl.reversed_sigmoid_identity(x, a)
            print(f'a = {a:5}: max |exp(a·softplus(x)) − σ(−x)^(−a)| / σ(−x)^(−a) = {np.max(np.abs(lhs - rhs) / rhs):.1e}')
        qlstm = layers['qLSTM']
        p = {key: val.double() for key, val in qlstm.params.items()}
        x_conv = ssmctl.dsf(qlstm, u).inputs[..., 0].double()  # the qLSTM core's input: the conv output
        f = torch.nn.functional.linear(x_conv, p['gates.weight'], p['gates.bias']).chunk(3, dim=-1)[0].numpy()
        alpha = float(p['alpha'])
        _, rhs = ssmctl.reversed_sigmoid_identity(f, -max(alpha, 0.0))
        lam = ssmctl.dsf_eigenvalues(qlstm, u)[..., 0]
        print(f'qLSTM (α = {alpha}): max relative |Λ_i − σ(−f_i)^relu(α)| = {np.max(np.abs(lam - rhs) / rhs):.1e}')
    """),
    _md(r"""
        ## Explainability

        `ssmctl.attention_map` turns any layer's $\Phi$ into a token-to-token map: $|\Phi_{ij}|$ averaged over the
        channels (`aggregate='mean'`), here with each row divided by its sum (`normalize='row'`).
        `ssmctl.rollout` composes the loaded Mamba's two maps with the residual stream as the identity,
        $\hat A_l = \tfrac12\,\mathrm{rownorm}(A_l) + \tfrac12 I$, $R = \hat A_1 \hat A_0$; each layer's $\Phi$ is
        taken at its own input (the residual stream `transformers` reports). `ssmctl.attribution` splits one
        output token exactly into the contributions $\Phi_{ij} x_j$ of the input tokens (their norm over channels).
        At initialization $\Delta$ is small (0.001–0.1), so the skip $D u_i$ on the diagonal dominates: log scales.
    """),
    _code("""
        import matplotlib.colors
        with torch.no_grad():
            hidden = hf_mamba(inputs_embeds=u, output_hidden_states=True).hidden_states  # the input of each layer
        stack_phis = [ssmctl.materialize(layer, hidden[i]) for i, layer in enumerate(loaded.layers)]
        maps = [ssmctl.attention_map(phi, aggregate='mean', normalize='row') for phi in stack_phis]
        rolled = ssmctl.rollout(maps)
        token = L - 1
        contrib = ssmctl.attribution(stack_phis[0], token)[0]
        print(f'rollout rows sum to 1: max |Σ_j R_ij − 1| = {np.abs(rolled.sum(-1) - 1).max():.1e}')
        print(f'output token {token}, layer 0: top input tokens by |Φ_ij x_j|: {np.argsort(contrib)[::-1][:5].tolist()}')
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), layout='constrained')
        im = axes[0].imshow(rolled[0], cmap='magma', norm=matplotlib.colors.LogNorm(vmin=1e-6, vmax=1))
        axes[0].set(title='rollout over the 2 Mamba layers', xlabel='input token j', ylabel='output token i')
        fig.colorbar(im, ax=axes[0])
        axes[1].bar(np.arange(L), contrib / contrib.sum(), label='layer 0: |Φ_ij x_j| (share)')
        axes[1].plot(np.arange(L), rolled[0, token], 'k.-', label='rollout row')
        axes[1].set(title=f'attribution of output token {token}', xlabel='input token j', yscale='log', ylim=(1e-6, 2))
        axes[1].legend();
    """),
    _code("workdir.cleanup()"),
]


def _cells(spec):
    cells = []
    for kind, src in spec:
        cells.append(nbformat.v4.new_markdown_cell(src) if kind == "md" else nbformat.v4.new_code_cell(src))
    return cells


NOTEBOOKS = {
    "quickstart.ipynb": QUICKSTART,
    "eigenvalue_initializations.ipynb": EIGENVALUE_INITIALIZATIONS,
    "lti_analysis.ipynb": LTI_ANALYSIS,
    "inspect_a_checkpoint.ipynb": INSPECT_A_CHECKPOINT,
    "trained_vs_init.ipynb": TRAINED_VS_INIT,
    "ltv_simulation.ipynb": LTV_SIMULATION,
    "dynamical_systems_framework.ipynb": DYNAMICAL_SYSTEMS_FRAMEWORK,
}


def build(name: str, spec, out_dir: str = HERE, timeout: int = 300) -> str:
    """Execute the cells of ``spec`` in a fresh kernel and write the notebook ``out_dir/name``.

    The notebook is written only when every cell ran (to a temporary file first, then renamed), so a failed
    build never leaves a half-executed notebook in place of a good one. A failing cell raises nbclient's
    ``CellExecutionError`` naming the cell and the error.
    """
    nb = nbformat.v4.new_notebook()
    nb.cells = _cells(spec)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": out_dir}})
    client.execute(env=env)
    path = os.path.join(out_dir, name)
    fd, tmp = tempfile.mkstemp(suffix=".ipynb", dir=out_dir)
    os.close(fd)
    try:
        nbformat.write(nb, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Execute the notebooks and write them with their outputs.")
    parser.add_argument("names", nargs="*", help=f"notebooks to build (default all: {', '.join(NOTEBOOKS)})")
    parser.add_argument("--out", default=HERE, help="output folder (default: notebooks/)")
    parser.add_argument("--timeout", type=int, default=300, help="seconds one cell may run (default 300)")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in NOTEBOOKS]
    if unknown:
        parser.error(f"unknown notebook(s) {unknown}; known: {', '.join(NOTEBOOKS)}")
    failed = []
    for name in args.names or NOTEBOOKS:
        t0 = time.perf_counter()
        try:
            path = build(name, NOTEBOOKS[name], args.out, timeout=args.timeout)
        except Exception as exc:  # report it and build the others: one broken notebook should not hide the rest
            failed.append(name)
            print(f"FAILED {name} after {time.perf_counter() - t0:.1f} s (kept the previous file):\n{exc}",
                  file=sys.stderr)
            continue
        print(f"wrote {path} ({os.path.getsize(path) / 1024:.0f} KiB, {time.perf_counter() - t0:.1f} s)")
    if failed:
        print(f"{len(failed)} notebook(s) failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
