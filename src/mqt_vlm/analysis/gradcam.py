"""Where do m visual tokens look? Grad-CAM over the vision patch grid, and the MQT's attention maps.

Shape glossary
    I   images (1 here)       N   vision patches (gh * gw)       C   vision width
    M   queries               m   the budget                     D   LLM hidden size

Grad-CAM (Selvaraju et al., 2017), on the features the MQT reads: the output of the vision tower's
layer `config.vision_feature_layer` (-2 in MQT-LLaVA), captured with a forward hook on that layer.
For a scalar target y: weights w_c = mean over patches of dy/dA[n, c]; map = ReLU(sum_c w_c A[n, c]),
divided by its maximum. Tokens play the role of a CNN's spatial positions, channels of its feature
maps; the CLS token is dropped, as the MQT never reads it.

The tower runs once per image: the hooked activation is the input of everything downstream, so each
budget only back-propagates through the MQT and the LLM (`retain_graph`), and by the prefix
property the first m rows of the M-token encoding are exactly what budget m feeds the LLM.

No grad-cam package: it drags in torchvision (DESIGN.md section 6); the hooks are a few lines here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mqt_vlm.budgets import check_budget
from mqt_vlm.errors import MQTError


def tower_layers(tower: nn.Module, num_layers: int) -> nn.ModuleList:
    """The tower's stack of transformer layers (CLIP, SigLIP and most ViTs keep one ModuleList)."""
    for name, module in tower.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == num_layers and name.split(".")[-1] in ("layers", "layer"):
            return module
    raise MQTError(f"Cannot find the {num_layers} transformer layers of the vision tower {type(tower).__name__}.")


class CaptureFeatures:
    """Forward hook that keeps the tensor the tower produces as hidden_states[k] and makes sure it
    tracks gradients (a frozen tower would otherwise hand over a tensor with no graph)."""

    def __init__(self, model: Any) -> None:
        k = model.feature_layer_index()
        layers = tower_layers(model.vision_tower, int(model.config.vision_config.num_hidden_layers))
        # hidden_states[0] is the input of layer 0; hidden_states[k] (k >= 1) the output of layer k-1
        self.module = layers[0] if k == 0 else layers[k - 1]
        self.on_input = k == 0
        self.activation: torch.Tensor | None = None
        self._handle: Any = None

    def _track(self, tensor: torch.Tensor) -> torch.Tensor:
        if not tensor.requires_grad:
            tensor.requires_grad_(True)  # a leaf here: no parameter upstream requires grad
        self.activation = tensor
        return tensor

    def _forward_hook(self, module: nn.Module, args: Any, output: Any) -> Any:
        if isinstance(output, tuple):
            return (self._track(output[0]), *output[1:])
        return self._track(output)

    def _pre_hook(self, module: nn.Module, args: Any) -> Any:
        return (self._track(args[0]), *args[1:])

    def __enter__(self) -> "CaptureFeatures":
        if self.on_input:
            self._handle = self.module.register_forward_pre_hook(self._pre_hook)
        else:
            self._handle = self.module.register_forward_hook(self._forward_hook)
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.remove()


def grad_cam(activation: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
    """activation, gradient [N, C] -> map [N] in [0, 1] (all zeros when no patch has positive
    evidence, which the caller reports rather than hides by rescaling)."""
    weights = gradient.mean(dim=0)  # [C], spatially averaged gradients
    cam = F.relu(activation @ weights)  # [N]
    peak = cam.max()
    return cam / peak if peak > 0 else torch.zeros_like(cam)


@dataclass
class GradCAMResult:
    """One budget's map on the patch grid, and what it explains."""

    budget: int
    cam: torch.Tensor  # [gh, gw], in [0, 1]
    target: str  # human-readable target, e.g. "logit of ' cat'" or "norm of visual token 3"
    token_id: int | None = None


def gradcam_maps(
    model: Any,
    pixel_values: torch.Tensor,
    input_ids_by_budget: dict[int, torch.Tensor],
    target_token: int | None = None,
    decode: Any = None,
) -> list[GradCAMResult]:
    """Grad-CAM for one image at each budget.

    `input_ids_by_budget[m]` is the prompt [1, L] with m image tokens (the processor's output).
    Target: the logit of the greedy first answer token at that budget, or, with `target_token=K`,
    the norm of visual token K (MQT output row K; by the prefix property it is the same at every
    budget that includes it, so the maps agree: a visual check of that property).
    """
    if pixel_values.ndim != 4 or pixel_values.shape[0] != 1:
        raise MQTError(f"Grad-CAM explains one image; got pixel_values of shape {tuple(pixel_values.shape)}.")
    budgets = [check_budget(m, model.num_queries) for m in input_ids_by_budget]
    if target_token is not None:
        if isinstance(target_token, bool) or not isinstance(target_token, int) or not 0 <= target_token < model.num_queries:
            raise MQTError(f"target_token must be a visual token index in 0..{model.num_queries - 1}, got {target_token!r}.")
        too_small = [m for m in budgets if m <= target_token]
        if too_small:
            raise MQTError(f"Visual token {target_token} is not among the first m tokens at budgets {too_small}; use budgets > {target_token}.")
    grid = model.mqt.key_grid(_num_patches(model))
    capture = CaptureFeatures(model)
    was_training = model.training
    model.eval()
    results = []
    try:
        with torch.enable_grad(), capture:
            features = model.get_image_features(pixel_values)  # [1, N, C], a view of the hooked tensor
            visual = model.mqt(features.to(model.mqt.query.dtype))  # [1, M, D]
        activation = capture.activation
        if activation is None:
            raise MQTError("The feature hook did not fire; the vision tower's layers were not found in its forward.")
        patches = activation[:, -features.shape[1]:]  # [1, N, C], CLS dropped like the model does
        for m in budgets:
            ids = input_ids_by_budget[m]
            with torch.enable_grad():
                if target_token is None:
                    embeds = model.embed_inputs(ids, visual_embeds=visual, num_visual_tokens=m)  # [1, L, D]
                    logits = model.language_model(inputs_embeds=embeds, logits_to_keep=1).logits[0, -1]  # [V]
                    token = int(logits.argmax())
                    target, label = logits[token], f"logit of {decode(token) if decode else token!r}"
                else:
                    token = None
                    target, label = visual[0, target_token].norm(), f"norm of visual token {target_token}"
                (gradient,) = torch.autograd.grad(target, activation, retain_graph=True)
            cam = grad_cam(patches[0].detach(), gradient[0, -features.shape[1]:])  # [N]
            results.append(GradCAMResult(m, cam.reshape(grid), label, token))  # [gh, gw]
    finally:
        model.train(was_training)
    return results


def _num_patches(model: Any) -> int:
    from mqt_vlm.modeling.configuration import vision_patch_grid

    rows, cols = vision_patch_grid(model.config.vision_config)
    return rows * cols


def attention_maps(model: Any, pixel_values: torch.Tensor, queries: list[int]) -> torch.Tensor:
    """The MQT's attention of the chosen queries over the patch grid, [len(queries), gh, gw]
    (averaged over heads; each query's map sums to 1 over the N patches)."""
    bad = [q for q in queries if isinstance(q, bool) or not isinstance(q, int) or not 0 <= q < model.num_queries]
    if bad or not queries:
        raise MQTError(f"Queries must be ints in 0..{model.num_queries - 1}, got {queries}.")
    with torch.no_grad():
        features = model.get_image_features(pixel_values[:1])  # [1, N, C]
        return model.mqt.attention_maps(features)[0, queries]  # [Q, gh, gw]


def upsample(cam: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[gh, gw] -> [H, W], bilinear, as the map is drawn over the image."""
    return F.interpolate(cam[None, None].float(), size=size, mode="bilinear", align_corners=False)[0, 0]


def model_view(pixel_values: torch.Tensor, image_processor: Any) -> torch.Tensor:
    """The image the model sees (padded to a square, resized, cropped), [H, W, 3] in [0, 1]:
    pixel_values with the normalisation undone."""
    mean = torch.tensor(image_processor.image_mean).reshape(3, 1, 1)
    std = torch.tensor(image_processor.image_std).reshape(3, 1, 1)
    return (pixel_values[0].float() * std + mean).clamp(0, 1).permute(1, 2, 0)  # [H, W, 3]
