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
    ("code", "fig, axes = plt.subplots(1, 2, figsize=(10, 4))\nssmctl.plot.eigenvalues(layer, ax=axes[0])\nssmctl.plot.impulse(sys[:4], L=400, ax=axes[1]);"),
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

CHECKPOINTS = [
    ("md", "# Opening a checkpoint\n\n"
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
    ("code", "fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))\n"
     "ssmctl.plot.eigenvalues(eigs[3].ravel(), ax=axes[0], title='layer 3, input-free (Δ at its bias)')\n"
     "ssmctl.plot.eigenvalues(model.layers[3], ax=axes[1], title='layer 3, Ā_t over a random input')\n"
     "fig.tight_layout()"),
    ("md", "## Trained vs init\n"
     "`compare_report(A, B)` (`ssmctl compare A B`) pairs the layers and reports the radius and phase histograms "
     "(bins of Task-Level-Insights), the memory horizons of both sides and, when the shapes match, how far each "
     "eigenvalue moved. With the perturbation above the median memory grows from layer to layer and eigenvalues "
     "move into the (0.9, 1] bin."),
    ("code", "cmp = compare_report(trained_path, init_path, eigenvalues=True)\n"
     "cmp_eigs = cmp.pop('eigenvalues')\n"
     "print(compare_text(cmp))"),
    ("code", "plot_compare(cmp, cmp_eigs);"),
    ("md", "Mamba's eigenvalues are real, so on the disk A and B overlap on one segment and every phase is 0. The "
     "movement reads better as the distribution of memory horizons, layer by layer:"),
    ("code", "fig, axes = plt.subplots(1, len(cmp_eigs['pairs']), figsize=(15, 3), sharey=True)\n"
     "bins = np.logspace(0, 5, 41)\n"
     "for ax, (ia, ib) in zip(axes, cmp_eigs['pairs']):\n"
     "    for side, index, label in (('b', ib, 'init'), ('a', ia, 'perturbed')):\n"
     "        ax.hist(ssmctl.memory_horizon(cmp_eigs[side][index]).ravel(), bins=bins, histtype='step', lw=1.5, label=label)\n"
     "    ax.set_xscale('log')\n"
     "    ax.set_xlabel('memory horizon (tokens)')\n"
     "    ax.set_title(f'layer {ia}')\n"
     "axes[0].set_ylabel('eigenvalues')\n"
     "axes[0].legend(fontsize=8)\n"
     "fig.tight_layout()"),
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
    ("code", "fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))\n"
     "ssmctl.plot.eigenvalues(s4d.layers[0], ax=axes[0])\n"
     "ssmctl.plot.impulse(s4d.layers[0].system()[:4], L=300, ax=axes[1])\n"
     "fig.tight_layout()"),
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
    ("code", "workdir.cleanup()"),
]


def _cells(spec):
    cells = []
    for kind, src in spec:
        cells.append(nbformat.v4.new_markdown_cell(src) if kind == "md" else nbformat.v4.new_code_cell(src))
    return cells


NOTEBOOKS = {
    "quickstart.ipynb": QUICKSTART,
    "ltv_simulation.ipynb": LTV_SIMULATION,
    "checkpoints.ipynb": CHECKPOINTS,
}


def build(name: str, spec, out_dir: str = HERE, timeout: int = 300) -> str:
    """Execute the cells of ``spec`` in a fresh kernel and write the notebook ``out_dir/name``."""
    nb = nbformat.v4.new_notebook()
    nb.cells = _cells(spec)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": out_dir}})
    client.execute(env=env)
    path = os.path.join(out_dir, name)
    nbformat.write(nb, path)
    return path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Execute the notebooks and write them with their outputs.")
    parser.add_argument("names", nargs="*", help=f"notebooks to build (default all: {', '.join(NOTEBOOKS)})")
    parser.add_argument("--out", default=HERE, help="output folder (default: notebooks/)")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in NOTEBOOKS]
    if unknown:
        parser.error(f"unknown notebook(s) {unknown}; known: {', '.join(NOTEBOOKS)}")
    for name in args.names or NOTEBOOKS:
        t0 = time.perf_counter()
        path = build(name, NOTEBOOKS[name], args.out)
        print(f"wrote {path} ({os.path.getsize(path) / 1024:.0f} KiB, {time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
