"""Where the model runs: PyTorch (CUDA when asked for and present, else CPU) with the weights of
the module's model.onnx, or onnxruntime on the CPU when PyTorch is not installed. Both take token
batches and return L2-normalised mean-pooled embeddings, like the graph the module runs."""

from __future__ import annotations

import os

import numpy as np

from .model_files import BertWeights


def _pad(batch: list[tuple[list[int], list[int]]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    longest = max(len(ids) for ids, _ in batch)
    ids = np.zeros((len(batch), longest), dtype=np.int64)
    types = np.zeros_like(ids)
    mask = np.zeros_like(ids)
    for i, (t, ty) in enumerate(batch):
        ids[i, : len(t)] = t
        types[i, : len(ty)] = ty
        mask[i, : len(t)] = 1
    return ids, types, mask


class TorchEncoder:
    """BERT encoder + masked mean pooling + L2 normalisation, written against torch ops."""

    def __init__(self, model_dir: str, device: str):
        import torch

        self.torch = torch
        self.device = torch.device(device)
        w = BertWeights.from_onnx(os.path.join(model_dir, "model.onnx"))
        self.cfg = w
        t = lambda a: torch.from_numpy(np.array(a, dtype=np.float32)).to(self.device)  # noqa: E731  (a writable copy)
        self.word = t(w.tensors["embeddings.word_embeddings.weight"])
        self.pos = t(w.tensors["embeddings.position_embeddings.weight"])
        self.type = t(w.tensors["embeddings.token_type_embeddings.weight"])
        self.ln_emb = (t(w.tensors["embeddings.LayerNorm.weight"]), t(w.tensors["embeddings.LayerNorm.bias"]))
        self.layers = []
        for n in range(w.layers):
            p = f"encoder.layer.{n}."
            lin = lambda name: tuple(t(x) for x in w.linear(p + name))  # noqa: E731
            ln = lambda name: (t(w.tensors[p + name + ".weight"]), t(w.tensors[p + name + ".bias"]))  # noqa: E731
            self.layers.append(
                {
                    "q": lin("attention.self.query"),
                    "k": lin("attention.self.key"),
                    "v": lin("attention.self.value"),
                    "o": lin("attention.output.dense"),
                    "ln1": ln("attention.output.LayerNorm"),
                    "i": lin("intermediate.dense"),
                    "out": lin("output.dense"),
                    "ln2": ln("output.LayerNorm"),
                }
            )
        self.dim = w.hidden

    def embed(self, batch: list[tuple[list[int], list[int]]]) -> np.ndarray:
        torch = self.torch
        F = torch.nn.functional
        cfg = self.cfg
        ids, types, mask = (torch.from_numpy(a).to(self.device) for a in _pad(batch))
        b, s = ids.shape
        nh, dh = cfg.heads, cfg.hidden // cfg.heads
        with torch.inference_mode():
            x = self.word[ids] + self.pos[:s].unsqueeze(0) + self.type[types]
            x = F.layer_norm(x, (cfg.hidden,), *self.ln_emb, eps=cfg.eps)
            maskf = mask.to(torch.float32)
            bias = ((1.0 - maskf) * cfg.mask_bias)[:, None, None, :]
            for L in self.layers:
                q = (x @ L["q"][0] + L["q"][1]).view(b, s, nh, dh).transpose(1, 2)
                k = (x @ L["k"][0] + L["k"][1]).view(b, s, nh, dh).transpose(1, 2)
                v = (x @ L["v"][0] + L["v"][1]).view(b, s, nh, dh).transpose(1, 2)
                probs = torch.softmax(q @ k.transpose(-1, -2) + bias, dim=-1)
                ctx = (probs @ v).transpose(1, 2).reshape(b, s, cfg.hidden)
                x = F.layer_norm(ctx @ L["o"][0] + L["o"][1] + x, (cfg.hidden,), *L["ln1"], eps=cfg.eps)
                inter = x @ L["i"][0] + L["i"][1]
                gelu = inter * 0.5 * (1.0 + torch.erf(inter / 2**0.5))
                x = F.layer_norm(gelu @ L["out"][0] + L["out"][1] + x, (cfg.hidden,), *L["ln2"], eps=cfg.eps)
            m = maskf.unsqueeze(-1)
            mean = (x * m).sum(1) / m.sum(1).clamp(min=1e-9)
            out = mean / mean.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        return out.float().cpu().numpy()


class OnnxRuntimeEncoder:
    """The module's graph itself, on the CPU."""

    def __init__(self, model_dir: str, threads: int = 0):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        # Idle intra-op threads spin by default: between batches that burned most of a core here
        # and delayed Valkey on the same host (PING p99 of ms in `make soak`).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(os.path.join(model_dir, "model.onnx"), opts, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.dim = int(self.session.get_outputs()[0].shape[-1])

    def embed(self, batch: list[tuple[list[int], list[int]]]) -> np.ndarray:
        ids, types, mask = _pad(batch)
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        out = self.session.run(None, {k: v for k, v in feed.items() if k in self.inputs})[0]
        return np.asarray(out, dtype=np.float32)


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def choose(model_dir: str, use_cuda: str, backend: str = "auto"):
    """Returns (encoder, device label). `use_cuda` is ENRICH_USE_CUDA: "1" needs a GPU, "0" uses
    the CPU, "auto" takes a GPU when PyTorch sees one. `backend` forces torch or onnxruntime."""
    if backend not in ("auto", "torch", "onnxruntime"):
        raise ValueError(f"SIDECAR_BACKEND must be auto, torch or onnxruntime, not {backend!r}")
    has_torch = torch_available()
    if use_cuda == "1" or (use_cuda == "auto" and backend != "onnxruntime" and has_torch):
        if has_torch:
            import torch

            if torch.cuda.is_available():
                return TorchEncoder(model_dir, "cuda:0"), "cuda:0"
        if use_cuda == "1":
            raise RuntimeError("ENRICH_USE_CUDA=1 but " + ("PyTorch sees no CUDA device" if has_torch else "PyTorch is not installed"))
    if backend == "torch" or (backend == "auto" and has_torch):
        if not has_torch:
            raise RuntimeError("SIDECAR_BACKEND=torch but PyTorch is not installed")
        return TorchEncoder(model_dir, "cpu"), "cpu"
    return OnnxRuntimeEncoder(model_dir), "cpu"
