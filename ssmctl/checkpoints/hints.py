"""Hints: settings a checkpoint does not record but its numbers depend on, given by the user, never guessed.

``ssmctl.load(path, **hints)`` and the CLI's hint flags (``--dt-transform`` ...) take them. :data:`HINTS` is the
one table of them: adding a hint is one :class:`Hint` line here (the CLI flag and the check of its value
follow from it); the layout that needs the setting reads it with :func:`recorded_or_hint`, which asks for it
through :func:`ssmctl.errors.require_hint` when the checkpoint does not record it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ..errors import CheckpointError, MissingHintError, require_hint, unknown_name

__all__ = ["Hint", "HINTS", "check_hints", "recorded_or_hint"]


@dataclass(frozen=True)
class Hint:
    """One setting a checkpoint may not record.

    Attributes
    ----------
    name : str
        Keyword of ``ssmctl.load`` (the CLI flag is ``--`` + name with ``-`` for ``_``).
    help : str
        What the setting is and where its values come from (the CLI help).
    choices : tuple of str, optional
        The values it can take; None for a number (then ``type`` converts it).
    type : callable
        Converts a CLI string (and checks a Python value) to the setting's type.
    """

    name: str
    help: str
    choices: tuple[str, ...] | None = None
    type: Callable[[Any], Any] = str

    @property
    def flag(self) -> str:
        """The CLI flag, e.g. ``--dt-transform``."""
        return "--" + self.name.replace("_", "-")


#: Every hint ssmctl knows, by keyword.
HINTS: dict[str, Hint] = {
    h.name: h
    for h in (
        Hint("dt_transform", "how a state-spaces/s4 S4/S4D kernel maps kernel.inv_dt to Δ: its Python classes "
             "default to exp, its Hydra configs to softplus; needed unless the checkpoint records it",
             ("exp", "softplus")),
        Hint("ngroups", "Mamba-2 B/C groups (n_groups of its config): tensors give only ngroups·d_state; needed for "
             "a bare Mamba-2 state dict without config.json", type=int),
        Hint("variant", "the DSF paper's mixers: softmax or linear attention (dsf-mqar / ssm-benchmark MHA store "
             "the same tensors for both: lin_att is not saved), standard or reversed qLSTM (reversed is not "
             "saved)", ("softmax", "linear", "standard", "reversed")),
        Hint("num_heads", "heads of a softmax/linear attention mixer (Wqk and Wv have the same shapes for any "
             "head count; normalized attention reads it from Wn)", type=int),
        Hint("eta", "the normalizer η of ssm-benchmark's normalized attention (norm_fn is not saved; dsf-mqar's "
             "is always exp)", ("exp", "softplus", "sigmoid")),
    )
}


def check_hints(hints: Mapping[str, Any] | None) -> dict[str, Any]:
    """The hints with None values dropped, each known and valid.

    Parameters
    ----------
    hints : mapping or None
        Keyword → value, as given to ``ssmctl.load``.

    Returns
    -------
    dict
        The hints that are set (not None), values converted by each :class:`Hint`'s ``type``.

    Raises
    ------
    UnknownNameError
        An unknown hint (the message lists the known ones) or a value outside its choices.
    CheckpointError
        A value its ``type`` cannot convert.
    """
    out: dict[str, Any] = {}
    for name, value in (hints or {}).items():
        if value is None:
            continue
        spec = HINTS.get(name)
        if spec is None:
            raise unknown_name("hint", name, list(HINTS))
        if spec.choices is not None:
            if value not in spec.choices:
                raise unknown_name(f"{name} ({spec.flag})", value, spec.choices)
        else:
            try:
                value = spec.type(value)
            except (TypeError, ValueError):
                raise CheckpointError(f"hint {name} ({spec.flag}): cannot read {value!r} as {spec.type.__name__}") from None
        out[name] = value
    return out


def recorded_or_hint(recorded: Mapping[str, Any], hints: Mapping[str, Any] | None, name: str, why: str,
                     choices: tuple[str, ...] | None = None) -> Any:
    """A setting as the checkpoint records it, else as the hint gives it, else an error naming it.

    Parameters
    ----------
    recorded : mapping
        What the checkpoint records (``config.json``, a Lightning checkpoint's ``hyper_parameters``).
    hints : mapping or None
        The hints given to ``ssmctl.load`` (checked by :func:`check_hints`).
    name : str
        The setting, a key of :data:`HINTS`.
    why : str
        What the checkpoint lacks, for the error message.
    choices : tuple of str, optional
        The values this layout's setting can take, where they are fewer than the hint's (``variant``:
        softmax/linear for attention, standard/reversed for qLSTM).

    Returns
    -------
    object
        The recorded value when there is one, else the hint's.

    Raises
    ------
    MissingHintError
        Neither recorded nor hinted (the message names the setting, its choices and the CLI flag).
    CheckpointError
        A hint that contradicts what the checkpoint records.
    """
    hinted = (hints or {}).get(name)
    if recorded.get(name) is not None:
        if hinted is not None and hinted != recorded[name]:
            raise CheckpointError(
                f"the checkpoint records {name}={recorded[name]!r} but the hint says {hinted!r}; drop the hint"
            )
        return recorded[name]
    spec = HINTS[name]
    if choices is not None or spec.choices is not None:
        return require_hint(hints, name, choices or spec.choices, why)
    if hinted is None:  # require_hint's message, for a number instead of a choice
        raise MissingHintError(f"{why}: pass {name}= to ssmctl.load (CLI: {spec.flag}), {_TYPE_WORDS.get(spec.type, 'a value')}")
    return hinted


_TYPE_WORDS = {int: "an integer", float: "a number"}
