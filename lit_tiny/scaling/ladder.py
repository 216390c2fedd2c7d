"""Llama-style model shapes for a target parameter count, for building scaling ladders."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from lit_tiny.config import Config, default_head_size, llama_shape


def ladder_config(
    target_params: float,
    count: Literal["non_embedding", "total"] = "non_embedding",
    aspect_ratio: float = 32.0,
    aspect_band: float = 2.0,
    mlp_slack: float = 0.1,
    tolerance: float = 0.03,
    head_size: int | None = None,
    heads_per_group: int = 4,
    intermediate_multiple: int = 8,
    vocab_size: int = 32000,
    block_size: int = 2048,
    max_layers: int = 128,
    name: str | None = None,
) -> Config:
    """A Llama shape with ``target_params`` parameters (within ``tolerance``).

    Depth and width come in coarse steps (widths are multiples of the head size), so the SwiGLU width
    may move up to ``mlp_slack`` away from its default 8/3 d to hit the count. Among the shapes that
    hit it, the one chosen minimises the summed log-ratio misses of: width/depth against
    ``aspect_ratio``, SwiGLU width against its default, and query heads per key/value head against
    ``heads_per_group``.

    Small-model studies use width/depth of roughly 30 to 130 (the ``ladder_*`` presets 32, Pythia 43 to
    128, TinyLlama 93); Kaplan et al. found the loss nearly flat across that range at fixed N, so the
    aspect ratio is a free choice to hold roughly fixed along a ladder.

    Args:
        target_params: Parameter count aimed for, counted as ``count`` says.
        count: ``non_embedding`` (Kaplan) or ``total`` (Chinchilla; depends on ``vocab_size``).
        aspect_ratio: Target n_embd / n_layer.
        aspect_band: Only shapes with width/depth within this factor of ``aspect_ratio`` are considered.
        mlp_slack: Largest relative move of the SwiGLU width away from 8/3 n_embd.
        tolerance: Largest accepted relative miss of the parameter count.
        head_size, heads_per_group, intermediate_multiple, vocab_size, block_size: See ``llama_shape``.
        max_layers: Deepest shape considered.
        name: Config name (default: ``scaling_<count>``, e.g. ``scaling_12.9M``).
    """
    if not (math.isfinite(target_params) and target_params > 0):
        raise ValueError(f"target_params must be positive, got {target_params}")
    if count not in ("non_embedding", "total"):
        raise ValueError(f"count must be 'non_embedding' or 'total', got {count!r}")
    if not (0 < tolerance < 1 and 0 <= mlp_slack < 1 and aspect_ratio > 0 and aspect_band >= 1):
        raise ValueError(
            "Need 0 < tolerance < 1, 0 <= mlp_slack < 1, aspect_ratio > 0 and aspect_band >= 1; got "
            f"{tolerance}, {mlp_slack}, {aspect_ratio}, {aspect_band}"
        )

    def params(config: Config) -> int:
        return config.num_params(non_embedding=count == "non_embedding")

    def shape(n_layer: int, n_embd: int, intermediate_size: int | None = None, config_name: str = "custom") -> Config:
        return llama_shape(
            n_layer,
            n_embd,
            head_size,
            heads_per_group,
            intermediate_multiple,
            intermediate_size,
            vocab_size,
            block_size,
            config_name,
        )

    step = head_size or 32
    widths = [w for w in range(step, 65536, step) if w % (head_size or default_head_size(w)) == 0]
    best, closest = None, None
    for n_layer in range(1, max_layers + 1):
        for n_embd in widths:
            aspect_miss = abs(math.log(n_embd / n_layer / aspect_ratio))
            if aspect_miss > math.log(aspect_band):
                if n_embd / n_layer > aspect_ratio:
                    break
                continue
            default = shape(n_layer, n_embd)
            # The count is affine in the SwiGLU width (3 * n_embd weights per unit per layer): solve for it.
            exact = default.intermediate_size + (target_params - params(default)) / (3 * n_embd * n_layer)
            intermediate = max(intermediate_multiple, round(exact / intermediate_multiple) * intermediate_multiple)
            if abs(intermediate / (8 * n_embd / 3) - 1) > mlp_slack:
                intermediate = default.intermediate_size
            config = shape(n_layer, n_embd, intermediate)
            count_miss = abs(math.log(params(config) / target_params))
            if closest is None or count_miss < closest[0]:
                closest = (count_miss, config)
            if count_miss <= math.log1p(tolerance):
                score = (
                    aspect_miss
                    + abs(math.log(intermediate / default.intermediate_size))
                    + abs(math.log(config.n_head / config.n_query_groups / heads_per_group))
                )
                if best is None or (score, count_miss) < best[:2]:
                    best = (score, count_miss, config)
            if params(default) > target_params * (1 + tolerance) / (1 - mlp_slack):
                break  # wider shapes only overshoot further
    if best is None:
        message = (
            f"No Llama shape with up to {max_layers} layers and width/depth within a factor {aspect_band} of "
            f"{aspect_ratio} has {count} parameters within {tolerance:.0%} of {target_params:.4g}"
        )
        if closest is not None:
            near = closest[1]
            message += f"; the closest has {params(near):,} ({near.n_layer} layers x {near.n_embd})"
        raise ValueError(message + ". Raise tolerance, aspect_band or mlp_slack, or change the target.")
    config = best[2]
    return shape(config.n_layer, config.n_embd, config.intermediate_size, name or f"scaling_{_short(params(config))}")


def make_ladder(smallest: float, largest: float, n_models: int, **kwargs: object) -> list[Config]:
    """``n_models`` shapes with parameter counts log-spaced from ``smallest`` to ``largest``;
    ``kwargs`` go to ``ladder_config`` (``name`` excepted: rungs are named by their size)."""
    if n_models < 2 or not 0 < smallest < largest:
        raise ValueError(f"Need n_models >= 2 and 0 < smallest < largest, got {n_models}, {smallest}, {largest}")
    if "name" in kwargs:
        raise ValueError("make_ladder names its rungs itself; do not pass name")
    ladder = [ladder_config(float(target), **kwargs) for target in np.geomspace(smallest, largest, n_models)]
    counts = [c.num_params() for c in ladder]
    if any(b <= a for a, b in zip(counts, counts[1:])):
        raise ValueError(f"Rungs do not grow ({counts}); use fewer models or a wider range")
    return ladder


def _short(count: int) -> str:
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if count >= scale:
            return f"{count / scale:.3g}{suffix}"
    return str(count)
