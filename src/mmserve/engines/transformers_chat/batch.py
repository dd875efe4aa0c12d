"""The running batch's KV cache: rows of different lengths, left-padded into one ``DynamicCache``.

Every row's keys and values are right-aligned: a row shorter than the batch is padded on
the left with zeros that its attention mask hides, and its own position ids count only
its real tokens, so each row sees exactly what it would see alone. A row joins by
concatenation along the batch dimension (the narrower side is padded first); rows leave
by index selection, after which columns that are padding in every remaining row are cut.
This is the scheme of Text Generation Inference's first CausalLM batches, on the cache
layers of transformers 5.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("mmserve.engines.transformers_chat.batch")


class KVBatch:
    def __init__(self, cache: Any, mask: Any, positions: Any, last: Any) -> None:
        self.cache = cache  # DynamicCache whose layers hold [rows, heads, width, head_dim]
        self.mask = mask  # [rows, width] long: 1 for a real token, 0 for padding
        self.positions = positions  # [rows] long: the position id of each row's next token
        self.last = last  # [rows] long: each row's last token, the next step's input

    @classmethod
    def single(cls, cache: Any, mask: Any, token: int) -> KVBatch:
        """One prefilled row (``mask``: its prompt's attention mask, 1 x prompt) whose next input is ``token``."""
        import torch

        positions = mask.sum(-1)
        return cls(cache, mask.long(), positions, torch.tensor([token], device=mask.device))

    @property
    def size(self) -> int:
        return int(self.mask.shape[0])

    @property
    def width(self) -> int:
        return int(self.mask.shape[1])

    def step(self, model: Any, *, positions: bool = True, sdpa_mask: bool = False) -> Any:
        """Decode one token for every row; returns the next-token logits [rows, vocab].

        ``sdpa_mask``: the model attends with SDPA on plain causal layers (:func:`sdpa_masks`),
        so the step passes the 4-D boolean mask SDPA takes, which transformers uses as given.
        Built from the 2-D mask, it is what transformers' ``create_causal_mask`` would make for
        one new token per row (every cached column is in that token's past: only the padding
        is hidden), without its ~10% of a small model's step in mask-building Python.

        On failure the cache is cut back to what it held, so the batch stays usable (its rows
        can then be run one by one to find the one that failed).
        """
        import torch

        width = self.width
        mask = torch.cat([self.mask, self.mask.new_ones((self.size, 1))], dim=1)
        kwargs: dict[str, Any] = {"position_ids": self.positions[:, None]} if positions else {}
        try:
            out = model(
                input_ids=self.last[:, None],
                attention_mask=mask.bool()[:, None, None, :] if sdpa_mask else mask,
                cache=self.cache,
                use_cache=True,
                logits_to_keep=1,
                **kwargs,
            )
        except BaseException:
            self._crop(width)
            raise
        self.mask = mask
        self.positions = self.positions + 1
        return out.logits[:, -1]

    def extend(self, other: KVBatch) -> None:
        """Append ``other``'s rows (its cache is consumed)."""
        import torch

        width = max(self.width, other.width)
        self._pad_to(width)
        other._pad_to(width)
        for mine, theirs in zip(self.cache.layers, other.cache.layers, strict=True):
            mine.keys = torch.cat([mine.keys, theirs.keys])
            mine.values = torch.cat([mine.values, theirs.values])
        self.mask = torch.cat([self.mask, other.mask])
        self.positions = torch.cat([self.positions, other.positions])
        self.last = torch.cat([self.last, other.last])

    def select(self, keep: list[int]) -> None:
        """Keep only the rows at ``keep`` (in that order), then cut the columns no remaining row uses."""
        import torch

        idx = torch.tensor(keep, dtype=torch.long, device=self.mask.device)
        for layer in self.cache.layers:
            layer.keys = layer.keys.index_select(0, idx)
            layer.values = layer.values.index_select(0, idx)
        self.mask = self.mask.index_select(0, idx)
        self.positions = self.positions.index_select(0, idx)
        self.last = self.last.index_select(0, idx)
        used = self.mask.any(dim=0).nonzero()
        start = int(used[0]) if used.numel() else self.width
        if start:
            for layer in self.cache.layers:
                layer.keys = layer.keys[:, :, start:]
                layer.values = layer.values[:, :, start:]
            self.mask = self.mask[:, start:]

    def split(self) -> list[KVBatch]:
        """One batch per row, each without padding (the rows' caches are copied)."""
        import copy

        parts = []
        for i in range(self.size):
            part = KVBatch(copy.copy(self.cache), self.mask, self.positions, self.last)
            part.cache.layers = [copy.copy(layer) for layer in self.cache.layers]
            part.select([i])
            parts.append(part)
        return parts

    def _pad_to(self, width: int) -> None:
        import torch.nn.functional as F

        extra = width - self.width
        if extra <= 0:
            return
        for layer in self.cache.layers:
            layer.keys = F.pad(layer.keys, (0, 0, extra, 0))
            layer.values = F.pad(layer.values, (0, 0, extra, 0))
        self.mask = F.pad(self.mask, (extra, 0))

    def _crop(self, width: int) -> None:
        for layer in self.cache.layers:
            if getattr(layer, "keys", None) is not None and layer.keys.dim() == 4 and layer.keys.shape[2] > width:
                layer.keys = layer.keys[:, :, :width]
                layer.values = layer.values[:, :, :width]


def batchable(model: Any) -> bool:
    """Whether rows of this model can share a left-padded batch.

    Only caches made of plain attention layers can be padded and concatenated (sliding-window,
    linear-attention and quantized layers keep other state), and only models whose rotary
    positions are plain 1-D positions take per-row position ids (Qwen2-VL's multimodal RoPE
    does not). Other models decode one row at a time.
    """
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    config = model.config
    text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    for attr in ("rope_scaling", "rope_parameters"):
        rope = getattr(text, attr, None)
        if isinstance(rope, dict) and ("mrope_section" in rope or rope.get("rope_type") == "mrope"):
            return False
    try:
        probe = DynamicCache(config=config)
    except Exception:  # a config DynamicCache cannot read: nothing is known about its layers
        return False
    return bool(probe.layers) and all(type(layer) is DynamicLayer for layer in probe.layers)


def sdpa_masks(model: Any, new_cache: Any, pad_id: int) -> bool:
    """Whether a decoding step can hand the model a ready 4-D SDPA mask (see :meth:`KVBatch.step`).

    Only for causal text models attending with SDPA (an eager or flex implementation takes
    another kind of mask), on caches of plain attention layers (:func:`batchable`), and only
    if the model gives the very logits with it as with the 2-D mask: a family that reads the
    2-D mask for more than its causal mask (ALiBi biases...) keeps the 2-D mask. The check
    is two decoding steps of two rows, one left-padded, made of ``pad_id`` (never an image
    slot), once each way.
    """
    import torch

    config = model.config
    text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    if getattr(text, "_attn_implementation", None) != "sdpa" or not getattr(text, "is_causal", True):
        return False
    if not batchable(model):
        return False
    device = model.device
    logits = []
    try:
        with torch.inference_mode():
            for ready in (False, True):
                ids = torch.full((2, 3), pad_id, dtype=torch.long, device=device)
                mask = torch.tensor([[0, 1, 1], [1, 1, 1]], dtype=torch.long, device=device)
                cache = new_cache()
                positions = (mask.cumsum(-1) - 1).clamp(min=0)
                model(input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True)
                batch = KVBatch(cache, mask, mask.sum(-1), torch.full((2,), pad_id, device=device))
                logits.append(torch.stack([batch.step(model, sdpa_mask=ready) for _ in range(2)]).float())
    except Exception as e:
        log.info("decoding steps keep the 2-D attention mask (%s)", e)
        return False
    same = bool(torch.allclose(logits[0], logits[1], rtol=1e-4, atol=1e-4))
    if not same:
        log.info("decoding steps keep the 2-D attention mask (the 4-D one changes the logits)")
    return same
