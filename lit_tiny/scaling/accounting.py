"""Counting conventions: which parameters are "N" and which FLOPs are "C".

Kaplan et al. (2020) count non-embedding parameters and C = 6 N D; Chinchilla (Hoffmann et al. 2022)
counts all parameters and C = 6 N D; the exact count (PaLM convention, ``Config.flops_per_token``) adds
attention-score FLOPs and counts the output head but not the embedding lookup. At the scale this
project trains, these differ by tens of percent and move fitted exponents a lot, so every fit
records the convention it used.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from lit_tiny.config import Config
from lit_tiny.scaling.validation import check_positive

ParamCount = Literal["total", "non_embedding"]
FlopCount = Literal["6ND", "exact"]


@dataclass(frozen=True)
class Convention:
    """How N and C are counted.

    Args:
        name: Short name, recorded with every fit.
        params: ``total`` (embedding and output head included) or ``non_embedding`` (blocks and final norm).
        flops: ``6ND`` (6 x the counted N per token) or ``exact`` (PaLM convention: 6 x matmul parameters,
            output head included, plus 12 * n_layer * n_head * head_size * seq_len for attention).
    """

    name: str
    params: ParamCount
    flops: FlopCount

    def __post_init__(self) -> None:
        if self.params not in ("total", "non_embedding"):
            raise ValueError(
                f"Convention {self.name!r}: params must be 'total' or 'non_embedding', got {self.params!r}"
            )
        if self.flops not in ("6ND", "exact"):
            raise ValueError(f"Convention {self.name!r}: flops must be '6ND' or 'exact', got {self.flops!r}")

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


CONVENTIONS: dict[str, Convention] = {
    c.name: c
    for c in (
        Convention("kaplan", params="non_embedding", flops="6ND"),
        Convention("chinchilla", params="total", flops="6ND"),
        Convention("exact", params="total", flops="exact"),
        Convention("exact_non_embedding", params="non_embedding", flops="exact"),
    )
}


def get_convention(convention: str | Convention) -> Convention:
    """A ``Convention`` from itself or from one of the names in ``CONVENTIONS``."""
    if isinstance(convention, Convention):
        return convention
    if convention not in CONVENTIONS:
        raise ValueError(f"Unknown counting convention {convention!r}. Known: {', '.join(CONVENTIONS)}")
    return CONVENTIONS[convention]


def count_params(config: Config, convention: str | Convention) -> int:
    """N for ``config`` under ``convention``."""
    return config.num_params(non_embedding=get_convention(convention).params == "non_embedding")


def flops_per_token(config: Config, convention: str | Convention, seq_len: int | None = None) -> float:
    """Training FLOPs per token for ``config`` under ``convention`` (``seq_len`` matters only for ``exact``)."""
    convention = get_convention(convention)
    if convention.flops == "exact":
        return float(config.flops_per_token(seq_len))
    return 6.0 * count_params(config, convention)


def training_flops(config: Config, tokens: float, convention: str | Convention, seq_len: int | None = None) -> float:
    """C for training ``config`` on ``tokens`` tokens under ``convention``."""
    check_positive("tokens", tokens)
    return flops_per_token(config, convention, seq_len) * tokens
