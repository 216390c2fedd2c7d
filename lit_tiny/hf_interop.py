"""Hugging Face Llama <-> lit_tiny: config mapping, weight renaming, folder conversion both ways.

Our model keeps Hugging Face's half-rotation RoPE layout, so no weight is permuted: the query, key
and value projections are concatenated into ``qkv`` and gate/up into ``gate_up``, and that is all.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Optional

import torch

from lit_tiny.checkpoint import check_state_dict, load_checkpoint, load_tokenizer, save_checkpoint
from lit_tiny.config import Config
from lit_tiny.devices import DtypeName, dtype_from_name
from lit_tiny.files import atomic_write_dir
from lit_tiny.tokenizer import TOKENIZER_FILES, hf_tokenizer_config

HF_TOKENIZER_FILES = (*TOKENIZER_FILES, "tokenizer_config.json", "special_tokens_map.json")


# ------------------------------------------------------------------ configs


def config_from_hf(hf: dict, name: str = "hf_import", source: str = "config.json") -> Config:
    """Our Config from the fields of a Hugging Face Llama ``config.json``."""
    if hf.get("model_type", "llama") != "llama":
        raise ValueError(f"{source}: model_type is {hf.get('model_type')!r}; only 'llama' checkpoints convert")
    unsupported = {
        "hidden_act": hf.get("hidden_act", "silu") != "silu",
        "attention_bias": bool(hf.get("attention_bias", False)),
        "mlp_bias": bool(hf.get("mlp_bias", False)),
        "rope_scaling": hf.get("rope_scaling") not in (None, {}) and hf["rope_scaling"].get("rope_type") != "default",
    }
    bad = [k for k, v in unsupported.items() if v]
    if bad:
        raise ValueError(f"{source}: unsupported Llama options {bad} (lit_tiny implements plain Llama 2)")
    n_embd, n_head = hf["hidden_size"], hf["num_attention_heads"]
    head_dim = hf.get("head_dim") or n_embd // n_head
    if head_dim * n_head != n_embd:
        raise ValueError(f"{source}: head_dim {head_dim} x {n_head} heads != hidden_size {n_embd}; not supported")
    rope_base = hf.get("rope_theta") or (hf.get("rope_parameters") or {}).get("rope_theta") or 10000.0
    return Config(
        name=name,
        block_size=hf.get("max_position_embeddings", 2048),
        vocab_size=hf["vocab_size"],
        n_layer=hf["num_hidden_layers"],
        n_embd=n_embd,
        n_head=n_head,
        n_query_groups=hf.get("num_key_value_heads") or n_head,
        intermediate_size=hf["intermediate_size"],
        norm_eps=hf.get("rms_norm_eps", 1e-5),
        rope_base=float(rope_base),
    )


def config_to_hf(config: Config, bos_id: int = 1, eos_id: int = 2, dtype: str = "float32") -> dict:
    """A ``config.json`` for ``LlamaForCausalLM`` (read by transformers 4.x and 5.x alike)."""
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": config.vocab_size,
        "hidden_size": config.n_embd,
        "intermediate_size": config.intermediate_size,
        "num_hidden_layers": config.n_layer,
        "num_attention_heads": config.n_head,
        "num_key_value_heads": config.n_query_groups,
        "head_dim": config.head_size,
        "max_position_embeddings": config.block_size,
        "rms_norm_eps": config.norm_eps,
        "rope_theta": config.rope_base,
        "rope_parameters": {"rope_type": "default", "rope_theta": config.rope_base},
        "rope_scaling": None,
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": False,
        "bos_token_id": bos_id,
        "eos_token_id": eos_id,
        "torch_dtype": dtype,
    }


# ------------------------------------------------------------------ weights


def state_dict_from_hf(hf: dict[str, torch.Tensor], config: Config, source: str = "weights",
                       shard_of: Optional[dict[str, str]] = None) -> dict[str, torch.Tensor]:
    """Our state dict from a Hugging Face Llama one. Every tensor is checked against the shape the
    ``config.json`` fields imply, and a missing one is named with the shard file that should hold it
    (``shard_of``: the index's ``weight_map``)."""
    hf = {k.removeprefix("model."): v for k, v in hf.items()}
    missing = [k for k in hf_names(config) if k.removeprefix("model.") not in hf and k != "lm_head.weight"]
    if missing:
        where = [f"{k} (in {shard_of[k]})" if shard_of and k in shard_of else k for k in missing[:6]]
        raise ValueError(f"{source}: tensors missing for a {config.n_layer}-layer Llama: {where}")
    for name, (shape, fields) in hf_shapes(config).items():
        tensor = hf.get(name.removeprefix("model."))
        if tensor is not None and tuple(tensor.shape) != shape:
            raise ValueError(f"{source}: {name} has shape {tuple(tensor.shape)} but config.json ({fields}) implies "
                             f"{shape}: the config.json does not belong to these weights")
    out = {
        "wte.weight": hf.pop("embed_tokens.weight"),
        "norm.weight": hf.pop("norm.weight"),
    }
    # Checkpoints with tied embeddings store no head; untie by copying.
    out["lm_head.weight"] = hf.pop("lm_head.weight", None)
    if out["lm_head.weight"] is None:
        out["lm_head.weight"] = out["wte.weight"].clone()
    for i in range(config.n_layer):
        p = f"layers.{i}."
        a, m = p + "self_attn.", p + "mlp."
        q, k, v = hf.pop(a + "q_proj.weight"), hf.pop(a + "k_proj.weight"), hf.pop(a + "v_proj.weight")
        out[f"blocks.{i}.attn.qkv.weight"] = torch.cat((q, k, v))
        out[f"blocks.{i}.attn.proj.weight"] = hf.pop(a + "o_proj.weight")
        out[f"blocks.{i}.mlp.gate_up.weight"] = torch.cat((hf.pop(m + "gate_proj.weight"), hf.pop(m + "up_proj.weight")))
        out[f"blocks.{i}.mlp.proj.weight"] = hf.pop(m + "down_proj.weight")
        out[f"blocks.{i}.norm_1.weight"] = hf.pop(p + "input_layernorm.weight")
        out[f"blocks.{i}.norm_2.weight"] = hf.pop(p + "post_attention_layernorm.weight")
    leftovers = [k for k in hf if not k.endswith("rotary_emb.inv_freq")]
    if leftovers:
        raise ValueError(f"{source}: tensors that do not belong to a {config.n_layer}-layer Llama: {leftovers[:6]}")
    return out


def hf_names(config: Config) -> list[str]:
    per_layer = [
        "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
        "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj", "input_layernorm", "post_attention_layernorm",
    ]
    layers = [f"model.layers.{i}.{n}.weight" for i in range(config.n_layer) for n in per_layer]
    return ["model.embed_tokens.weight", *layers, "model.norm.weight", "lm_head.weight"]


def hf_shapes(config: Config) -> dict[str, tuple[tuple[int, ...], str]]:
    """Each Hugging Face Llama tensor's shape, and the config.json fields that imply it."""
    d, hs, ff = config.n_embd, config.head_size, config.intermediate_size
    q, kv = config.n_head * hs, config.n_query_groups * hs
    heads = f"num_attention_heads={config.n_head}, hidden_size={d}"
    groups = f"num_key_value_heads={config.n_query_groups}, head_dim={hs}, hidden_size={d}"
    mlp = f"intermediate_size={ff}, hidden_size={d}"
    shapes = {"model.embed_tokens.weight": ((config.vocab_size, d), f"vocab_size={config.vocab_size}, hidden_size={d}"),
              "model.norm.weight": ((d,), f"hidden_size={d}"),
              "lm_head.weight": ((config.vocab_size, d), f"vocab_size={config.vocab_size}, hidden_size={d}")}
    for i in range(config.n_layer):
        p = f"model.layers.{i}."
        shapes |= {
            p + "self_attn.q_proj.weight": ((q, d), heads),
            p + "self_attn.k_proj.weight": ((kv, d), groups),
            p + "self_attn.v_proj.weight": ((kv, d), groups),
            p + "self_attn.o_proj.weight": ((d, q), heads),
            p + "mlp.gate_proj.weight": ((ff, d), mlp),
            p + "mlp.up_proj.weight": ((ff, d), mlp),
            p + "mlp.down_proj.weight": ((d, ff), mlp),
            p + "input_layernorm.weight": ((d,), f"hidden_size={d}"),
            p + "post_attention_layernorm.weight": ((d,), f"hidden_size={d}"),
        }
    return shapes


def state_dict_to_hf(sd: dict[str, torch.Tensor], config: Config) -> dict[str, torch.Tensor]:
    hs, nq, nkv = config.head_size, config.n_head, config.n_query_groups
    out = {
        "model.embed_tokens.weight": sd["wte.weight"],
        "model.norm.weight": sd["norm.weight"],
        "lm_head.weight": sd["lm_head.weight"],
    }
    for i in range(config.n_layer):
        b, p = f"blocks.{i}.", f"model.layers.{i}."
        q, k, v = sd[b + "attn.qkv.weight"].split((nq * hs, nkv * hs, nkv * hs))
        gate, up = sd[b + "mlp.gate_up.weight"].chunk(2)
        out |= {
            p + "self_attn.q_proj.weight": q,
            p + "self_attn.k_proj.weight": k,
            p + "self_attn.v_proj.weight": v,
            p + "self_attn.o_proj.weight": sd[b + "attn.proj.weight"],
            p + "mlp.gate_proj.weight": gate,
            p + "mlp.up_proj.weight": up,
            p + "mlp.down_proj.weight": sd[b + "mlp.proj.weight"],
            p + "input_layernorm.weight": sd[b + "norm_1.weight"],
            p + "post_attention_layernorm.weight": sd[b + "norm_2.weight"],
        }
    return {k: v.contiguous() for k, v in out.items()}


def load_hf_weights(hf_dir: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """All tensors of a Hugging Face folder (one or many ``*.safetensors`` or ``pytorch_model*.bin`` files),
    and which file the folder's index says holds each tensor (empty without an index)."""
    from safetensors.torch import load_file

    files = sorted(hf_dir.glob("*.safetensors"))
    index, loader = hf_dir / "model.safetensors.index.json", lambda f: load_file(str(f))
    if not files and sorted(hf_dir.glob("pytorch_model*.bin")):
        files = sorted(hf_dir.glob("pytorch_model*.bin"))
        index = hf_dir / "pytorch_model.bin.index.json"
        loader = lambda f: torch.load(f, map_location="cpu", weights_only=True, mmap=True)  # noqa: E731
    shard_of: dict[str, str] = {}
    if index.is_file():
        try:
            shard_of = {k: str(hf_dir / v) for k, v in json.loads(index.read_text())["weight_map"].items()}
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"{index} is not a readable index ({e}): download it again") from None
        absent = sorted({f for f in shard_of.values() if not Path(f).is_file()})
        if absent:
            held = [t for t, f in shard_of.items() if f == absent[0]][:3]
            more = f" and {len(absent) - 1} more shard(s)" if len(absent) > 1 else ""
            raise FileNotFoundError(f"{absent[0]} is missing: {index.name} lists it (holding {held} ...){more}. "
                                    "Download it again.")
    if not files:
        raise FileNotFoundError(
            f"No weights in {hf_dir}: expected model.safetensors, model-*-of-*.safetensors or pytorch_model*.bin"
        )
    weights: dict[str, torch.Tensor] = {}
    for f in files:
        try:
            weights.update(loader(f))
        except Exception as e:
            raise ValueError(f"{f} could not be read (truncated download?): {e}") from e
    return weights, shard_of


# ------------------------------------------------------------------ commands


def convert_from_hf(hf_dir: Path, out_dir: Path, dtype: Optional[DtypeName] = None, name: Optional[str] = None) -> Path:
    """Convert a Hugging Face Llama checkpoint folder into a lit_tiny checkpoint folder.

    Args:
        hf_dir: Folder as downloaded from the hub: config.json, weights (safetensors or .bin shards) and tokenizer files.
        out_dir: Folder to write (replaced atomically if it exists).
        dtype: Cast the weights to float32, bfloat16 or float16; default keeps the stored dtype.
        name: Name recorded in the model config; defaults to the folder name.
    """
    hf_dir = Path(hf_dir)
    config_file = hf_dir / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{config_file} is missing: a Hugging Face checkpoint folder needs its config.json")
    config = config_from_hf(json.loads(config_file.read_text()), name=name or hf_dir.name, source=str(config_file))
    weights, shard_of = load_hf_weights(hf_dir)
    sd = state_dict_from_hf(weights, config, source=str(hf_dir), shard_of=shard_of)
    check_state_dict(sd, config, source=str(hf_dir))
    if dtype is not None:
        sd = {k: v.to(dtype_from_name(dtype)) for k, v in sd.items()}
    tokenizer_files = [hf_dir / f for f in HF_TOKENIZER_FILES if (hf_dir / f).is_file()]
    if not any(f.name in TOKENIZER_FILES for f in tokenizer_files):
        print(f"warning: {hf_dir} has no tokenizer.json or tokenizer.model; the checkpoint will lack a tokenizer")
    out = save_checkpoint(out_dir, sd, config, tokenizer_files)
    print(f"Wrote {out} ({config.num_params():,} parameters, {len(tokenizer_files)} tokenizer files)")
    return out


def convert_to_hf(checkpoint_dir: Path, out_dir: Path, dtype: Optional[DtypeName] = None) -> Path:
    """Export a lit_tiny checkpoint folder so that ``transformers.AutoModelForCausalLM.from_pretrained``
    and ``AutoTokenizer.from_pretrained`` load it offline.

    Args:
        checkpoint_dir: A lit_tiny checkpoint folder (model.safetensors, model_config.yaml, tokenizer files).
        out_dir: Folder to write (replaced atomically if it exists).
        dtype: float32, bfloat16 or float16 for the exported weights (default: the stored dtype).
    """
    from safetensors.torch import save_file

    checkpoint_dir = Path(checkpoint_dir)
    config, sd = load_checkpoint(checkpoint_dir)
    tokenizer = load_tokenizer(checkpoint_dir)
    tokenizer.check_fits(config.vocab_size)
    stored = {str(v.dtype).removeprefix("torch.") for v in sd.values()}
    if dtype is None:
        if len(stored) != 1:
            raise ValueError(f"{checkpoint_dir}: the weights mix dtypes {sorted(stored)}; pass --dtype")
        dtype = stored.pop()
    hf_sd = {k: v.to(dtype_from_name(dtype)) for k, v in state_dict_to_hf(sd, config).items()}

    def fill(tmp: Path) -> None:
        save_file(hf_sd, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        hf_config = config_to_hf(config, tokenizer.bos_id, tokenizer.eos_id, dtype)
        (tmp / "config.json").write_text(json.dumps(hf_config, indent=2))
        generation = {"bos_token_id": tokenizer.bos_id, "eos_token_id": tokenizer.eos_id}
        (tmp / "generation_config.json").write_text(json.dumps(generation, indent=2))
        for f in HF_TOKENIZER_FILES:
            if (checkpoint_dir / f).is_file():
                shutil.copy2(checkpoint_dir / f, tmp / f)
        if not (tmp / "tokenizer_config.json").is_file():
            (tmp / "tokenizer_config.json").write_text(json.dumps(hf_tokenizer_config(), indent=2))

    out = atomic_write_dir(out_dir, fill)
    print(f"Wrote {out}: load it with transformers.AutoModelForCausalLM.from_pretrained({str(out)!r})")
    return out
