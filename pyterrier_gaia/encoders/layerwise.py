"""Running an encoder layer by layer over many inputs, on a shrinking set of them.

:class:`LayerRun` tokenises its inputs once, in length-sorted batches, and keeps each batch's
hidden states between calls. ``advance(layer, active)`` runs the layers up to ``layer`` for the
inputs still ``active``; inputs dropped once never come back, so each batch is cut down to its
active rows (and trailing padding) for good. Operation counts follow what actually ran.
"""
import numpy as np

from ..cost.counts import counting, report


class LayerRun:
    """The hidden states of an encoder's input ``items`` (see ``Encoder.inputs``), advanced layer by
    layer (made by ``Encoder.layer_run``).

    >>> run = encoder.layer_run(encoder.inputs(queries, texts))
    >>> run.advance(2, np.ones(len(run), bool))                 # layers 1 and 2 for every input
    >>> rows, values = run.features(encoder.layer_output, 2)    # the model's own output at layer 2
    """

    def __init__(self, encoder, items, batch_size=32):
        self.encoder = encoder
        self._count = len(items)
        # similar lengths share a batch
        order = np.argsort([-encoder.item_length(item) for item in items], kind="stable")
        self._batches = []
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            batch = encoder.tokenize_items([items[i] for i in rows])
            hidden, mask = encoder.embed(batch)
            self._batches.append({"rows": rows, "batch": dict(batch), "hidden": hidden, "mask": mask,
                                  "layers": 0})
        self._right_padded = encoder.tokenizer.padding_side == "right"

    def __len__(self):
        return self._count

    def advance(self, layer: int, active) -> None:
        """Run every active input (``active``: a bool array over inputs) up to ``layer`` (1-based)."""
        for part in self._batches:
            keep = np.asarray(active)[part["rows"]]
            if not keep.any() or part["layers"] >= layer:
                continue
            if not keep.all():
                self._cut(part, keep)
            for index in range(part["layers"], layer):
                part["hidden"] = self.encoder.layer(index, part["hidden"], part["mask"])
            self._report(part, layer - part["layers"], first=part["layers"] == 0)
            part["layers"] = layer

    def features(self, pool, layer: int):
        """``(indices, values)``: ``pool(hidden, attention_mask)`` of the inputs that have reached
        ``layer``, as a float32 array whose rows follow ``indices``."""
        import torch

        rows, values = [], []
        for part in self._batches:
            if part["layers"] == layer and len(part["rows"]):
                rows.append(part["rows"])
                with torch.inference_mode():
                    values.append(pool(part["hidden"], part["batch"]["attention_mask"]).float().cpu().numpy())
        if not rows:
            return np.zeros(0, dtype=int), np.zeros(0, dtype=np.float32)
        return np.concatenate(rows), np.concatenate(values)

    def _cut(self, part, keep) -> None:
        """Keep only the rows ``keep`` of a batch, and only the positions some kept row uses."""
        import torch

        rows = torch.as_tensor(np.flatnonzero(keep))
        attention = part["batch"]["attention_mask"][rows]
        length = int(attention.sum(dim=1).max()) if self._right_padded else attention.shape[1]
        part["rows"] = part["rows"][keep]
        part["batch"] = {name: value[rows][:, :length] for name, value in part["batch"].items()}
        part["hidden"] = part["hidden"][rows][:, :length]
        if part["mask"] is not None:
            part["mask"] = part["mask"][rows][..., :length, :length]

    def _report(self, part, layers: int, first: bool) -> None:
        """Counts of ``layers`` more layers over a batch: FLOPs and layer tokens from the encoder's own
        formula; tokens and one forward pass when the batch starts; the weights of the layers run."""
        with counting() as chunk:
            self.encoder.report_counts(part["batch"], layers)
            counts = dict(chunk.counts)
            chunk.counts.clear()  # only what is reported below reaches the enclosing scope
        report(flops=counts["flops"], layer_tokens=counts["layer_tokens"],
               weight_bytes=self.encoder.weight_bytes * layers // self.encoder.num_layers)
        if first:
            report(tokens=counts["tokens"], forward_passes=1)
